"""The `userphoto` command line. Each command group lives in its own module here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..app import App
from ..errors import UserPhotoError


class Context:
    """What every command needs: the data folder's settings and a lazily opened store."""

    def __init__(self, home: Path | None):
        self.home = home
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = App.load(self.home)
        return self._app


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="USERPHOTO_HOME",
    help="Data folder (default $USERPHOTO_HOME or ~/.local/share/userphoto).",
)
@click.version_option(package_name="userphoto")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """userphoto: contact photos that work everywhere, and say why when they don't.

    \b
    Start here:
      userphoto init                      create the data folder and config
      userphoto demo                      load the contoso.example demo organization
      userphoto user list                 who is there
      userphoto set ADDRESS photo.jpg     upload and save a photo
      userphoto get ADDRESS -o out.jpg    fetch it back (any size: --size 240)
      userphoto serve                     serve Graph, EWS and Libravatar APIs and the web pages
    """
    ctx.obj = Context(home)
    ctx.call_on_close(lambda: ctx.obj._app and ctx.obj._app.close())


def main() -> None:
    """Entry point: one-line errors and non-zero exit codes, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserPhotoError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so in one line; details only on request
        if os.environ.get("USERPHOTO_DEBUG"):
            raise
        click.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (set USERPHOTO_DEBUG=1 for details)",
            err=True,
        )
        sys.exit(2)


# Command modules register themselves on `cli` when imported.
from . import bulk, demo, diagnose, directory, photos, serve, setup, store, sync, tokens, users  # noqa: E402,F401
