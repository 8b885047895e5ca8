"""`userphoto config check | docs`: validate the settings and show what is in effect."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import config as conf
from ..errors import UserPhotoError
from ..redaction import redact
from .root import Context, cli, pass_ctx, require_data_folder


@cli.group("config")
def config_group() -> None:
    """Check userphoto.toml and USERPHOTO_* overrides; print the settings reference.

    \b
    Examples:
      userphoto config check
      userphoto config docs > docs/configuration.md
    """


@config_group.command("check")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The file to check (default: userphoto.toml in the data folder).",
)
@click.option(
    "--connect",
    is_flag=True,
    help="Also connect: open the store, fetch the OpenID provider's discovery document "
    "([oidc]) and bind to the directory ([directory]); one line each.",
)
@pass_ctx
def config_check(ctx: Context, file: Path | None, connect: bool) -> None:
    """Validate a config file and the USERPHOTO_<SECTION>_<KEY> environment overrides, then
    print every setting in effect and where it comes from (file, environment, default).

    Checked: each value's type and range (ports, address ranges such as metrics_allow,
    store URLs: sqlite:///PATH or postgresql://...), keys that only work together (tls_cert
    with tls_key; oidc issuer with client_id and a client secret), and that files named by
    the settings exist and can be read. A secret file, or a config file holding a password,
    that others may read is a warning. Secrets are never printed: set ones are masked,
    others show as (empty) or (not set).

    With --connect, each configured part is reached too: the store (a missing database or
    role is named with the command that creates it), the OpenID provider's discovery
    document, and the directory bind. Exits 1 on any error or failed connection.

    \b
    Examples:
      userphoto config check
      userphoto config check --connect
      userphoto config check --file /etc/userphoto/userphoto.toml
      USERPHOTO_SERVER_PORT=9090 userphoto config check
    """
    if file is None:
        require_data_folder(ctx.home)
    settings = conf.Settings.load(ctx.home, file)
    errors: list[str] = []
    warnings: list[str] = []
    for level, message in settings.file_problems():
        (errors if level == "error" else warnings).append(message)
    directory, oidc = _parsed(settings, errors)

    shown = settings.config_path if settings.config_path.exists() else "none (all defaults)"
    click.echo(f"# config file: {shown}")
    click.echo("# the settings in effect (secrets masked):")
    section = None
    for key, value, origin in settings.effective():
        if key.section != section:
            section = key.section
            click.echo(f"\n[{section}]")
        where = f"environment {key.env}" if origin == "environment" else origin
        if value is None:
            click.echo(f"# {key.name} is unset")
        elif value in (conf.NOT_SET, conf.EMPTY) and key.secret:
            click.echo(f"{key.name} = {value}   # {where}")
        else:
            click.echo(f"{key.name} = {conf.toml_value(value)}   # {where}")
    click.echo("")
    for message in warnings:
        click.echo(f"warning: {message}", err=True)
    for message in errors:
        click.echo(f"error: {message}", err=True)
    if errors:
        click.echo(f"# not valid: {len(errors)} error(s)")
        sys.exit(1)
    click.echo("# valid" + (f", {len(warnings)} warning(s)" if warnings else ""))
    if connect and not _connected(settings, directory, oidc):
        sys.exit(1)


def _parsed(settings: conf.Settings, errors: list[str]) -> tuple[Any, Any]:
    """[directory] and [oidc] as their own code reads them (its rules: sizes, claims...)."""
    from ..directory.config import DirectoryConfig
    from ..oidc import OidcConfig

    parsed: list[Any] = []
    parsers: list[tuple[str, Callable[[conf.Settings], Any]]] = [
        ("directory", DirectoryConfig.from_settings),
        ("oidc", OidcConfig.from_settings),
    ]
    for name, parse in parsers:
        try:
            parsed.append(parse(settings))
        except UserPhotoError as exc:
            # A file already reported missing (its key leads that line) is not said twice.
            if not any(e.split(" ", 1)[0] in str(exc) for e in errors):
                errors.append(str(exc))
            parsed.append(None)
        except Exception as exc:  # a value nothing foresaw: reported, never a traceback
            errors.append(f"[{name}] has a value that cannot be used ({type(exc).__name__})")
            parsed.append(None)
    return parsed[0], parsed[1]


def _connected(settings: conf.Settings, directory: Any, oidc: Any) -> bool:
    """One line for each configured part reached; False when any failed."""
    from ..store import reach

    checks: list[tuple[str, Callable[[], str]]] = [
        ("store", lambda: reach(settings.store_url)),
    ]
    read_url = settings.store_read_url
    if read_url:
        checks.append(("store read_url", lambda: reach(read_url, read=True)))
    if oidc is not None:
        checks.append(("oidc", lambda: _discover(oidc)))
    if directory is not None:
        checks.append(("directory", lambda: _bind(directory)))
    ok = True
    for name, check in checks:
        try:
            click.echo(f"{name}: ok, {check()}")
        except UserPhotoError as exc:
            click.echo(f"{name}: FAILED: {redact(str(exc))}")
            ok = False
        except Exception as exc:
            click.echo(f"{name}: FAILED: {type(exc).__name__}: {redact(str(exc))[:200]}")
            ok = False
    return ok


def _discover(config: Any) -> str:
    import httpx

    from ..oidc import OidcProvider

    with httpx.Client(timeout=config.timeout, follow_redirects=False) as http:
        _ = OidcProvider(config, http).metadata
    return f"discovery document of {config.issuer}"


def _bind(config: Any) -> str:
    from ..directory.client import DirectoryClient

    with DirectoryClient(config) as client:
        client.connect()
        uri = client.info.uri if client.info else config.uris[0]
    return f"bound to {uri} as {config.bind_dn or '(anonymous)'}"


@config_group.command("docs")
def config_docs() -> None:
    """Print the settings reference (docs/configuration.md) from the one declaration.

    \b
    Example:
      userphoto config docs > docs/configuration.md
    """
    click.echo(conf.markdown(), nl=False)
