"""The `userphoto` command line. Each command group lives in its own module here; the
`cli` group and what the modules share are in `root.py`."""

from __future__ import annotations

import os
import sys

import click

from ..errors import UserPhotoError
from .root import (
    CREATES_HOME,
    Context,
    NoDataFolder,
    cli,
    pass_ctx,
    read_photo_file,
    require_data_folder,
)

__all__ = [
    "CREATES_HOME",
    "Context",
    "NoDataFolder",
    "cli",
    "main",
    "pass_ctx",
    "read_photo_file",
    "require_data_folder",
]


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
        if isinstance(exc, OSError) and exc.filename is not None:
            # A file or folder the user named: one line with the path and the reason.
            click.echo(f"error: {exc.filename}: {exc.strerror or exc}", err=True)
            sys.exit(1)
        if os.environ.get("USERPHOTO_DEBUG"):
            raise
        click.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (set USERPHOTO_DEBUG=1 for details)",
            err=True,
        )
        sys.exit(2)


# Command modules register themselves on `cli` when imported.
from . import (  # noqa: E402,F401
    bulk,
    config,
    demo,
    diagnose,
    directory,
    photos,
    serve,
    setup,
    store,
    sync,
    tokens,
    users,
)
