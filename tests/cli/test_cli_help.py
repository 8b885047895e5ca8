"""Every command's --help teaches by example (README: "every command has --help with examples").

The convention: a `\\b`-protected block headed "Examples:" (or "Example:", or a heading that
starts so, such as "Examples (start here):"), whose lines show the command as typed, starting
with `userphoto <the command's path>`. The test walks the whole click command tree, so a new
command without examples fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest

from userphoto.cli import cli

HEADING = re.compile(r"^\s*Examples?\b[^:]*:\s*$")


def walk(
    command: click.Command, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(cli, ("userphoto",)))


def rendered_help(path: tuple[str, ...], command: click.Command) -> str:
    """The help as `userphoto ... --help` prints it (click's formatting, `\\b` blocks kept)."""
    ctx = click.Context(command, info_name=" ".join(path), terminal_width=100)
    return command.get_help(ctx)


def example_lines(text: str) -> list[str]:
    """The lines of every Examples block (up to the next blank line)."""
    found: list[str] = []
    inside = False
    for line in text.splitlines():
        if HEADING.match(line):
            inside = True
        elif inside and not line.strip():
            inside = False
        elif inside:
            found.append(line.strip())
    return found


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    # The ones the issue named, and a group's subcommand, so the walk cannot silently shrink.
    for expected in (
        "userphoto get",
        "userphoto remove",
        "userphoto init",
        "userphoto export",
        "userphoto sync",
        "userphoto user list",
        "userphoto token list",
        "userphoto partner add",
        "userphoto store copy",
    ):
        assert expected in names
    assert len(names) >= 30


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_examples(path: tuple[str, ...], command: click.Command) -> None:
    text = rendered_help(path, command)
    lines = example_lines(text)
    assert lines, f"`{' '.join(path)} --help` has no Examples: block:\n{text}"
    typed = " ".join(path)
    shows_itself = [ln for ln in lines if re.search(rf"(^|[\s|;&$(])\b{re.escape(typed)}\b", ln)]
    assert shows_itself, f"no example of `{typed}` in:\n" + "\n".join(lines)


def test_examples_keep_their_lines() -> None:
    """`\\b` keeps each example on its own line (click would otherwise rewrap them)."""
    text = rendered_help(("userphoto", "user", "list"), cli.commands["user"].commands["list"])  # type: ignore[attr-defined]
    assert "\n    userphoto user list\n" in text
    assert "\n    userphoto user list --search vance\n" in text
