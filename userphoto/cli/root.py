"""The command line's root: the `cli` group, its `Context` (the data folder and the `App`)
and the helpers every command module shares. The command modules import this, never the
package (`cli/__init__.py` imports them to register their commands: no import circle)."""

from __future__ import annotations

from pathlib import Path

import click

from ..app import App
from ..config import CONFIG_NAME, DB_NAME, default_home
from ..errors import InvalidArgument, UnknownUser, UserPhotoError
from ..model import User

# Only these commands create a data folder (`serve` and `demo` say so); every other command
# on a missing one stops with "run `userphoto init`" instead of leaving an empty store behind.
CREATES_HOME = frozenset({"init", "serve", "demo"})


class NoDataFolder(UserPhotoError):
    code = "no_data_folder"


class Context:
    """What every command needs: the data folder's settings and a lazily opened store."""

    def __init__(self, home: Path | None, may_create: bool = True):
        self.home = home
        self.may_create = may_create
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            if not self.may_create:
                require_data_folder(self.home)
            self._app = App.load(self.home)
        return self._app

    def user(self, address: str) -> User:
        """The user ADDRESS names (address, alias or id), or an error with near misses,
        the same suggestions `diagnose` gives."""
        found = self.app.store.find_user(address)
        if found is None:
            from ..diagnose import not_found  # the one near-miss search, shared with diagnose

            cause = not_found(self.app, address)
            listing = "".join(f" List them: `{c}`." for c in cause.fix)
            raise UnknownUser(cause.message + listing)
        return found


def require_data_folder(home: Path | None) -> Path:
    """The data folder, which must exist: holding a userphoto.toml or a store."""
    folder = (home or default_home()).expanduser()
    if not ((folder / CONFIG_NAME).is_file() or (folder / DB_NAME).is_file()):
        raise NoDataFolder(
            f"no userphoto data folder at {folder}; run `userphoto init` "
            "(or give the right one with --home DIR or USERPHOTO_HOME)"
        )
    return folder


pass_ctx = click.make_pass_decorator(Context)


def read_photo_file(file: Path, limit: int) -> bytes:
    """FILE's bytes, reading no more than one past `limit` (a device or pipe never ends).

    Pipes are fine (`userphoto set ADDRESS /dev/stdin`); a file over the limit comes back
    cut at limit + 1 bytes, which the image checks refuse as too large.
    """
    try:
        with file.open("rb") as f:
            return f.read(limit + 1)
    except OSError as exc:
        raise InvalidArgument(f"Cannot read {file}: {exc.strerror}.") from None


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
    Examples (start here):
      userphoto init                      create the data folder and config
      userphoto demo                      load the contoso.example demo organization
      userphoto user list                 who is there
      userphoto set ADDRESS photo.jpg     upload and save a photo
      userphoto get ADDRESS -o out.jpg    fetch it back (any size: --size 240)
      userphoto serve                     serve Graph, EWS and Libravatar APIs and the web pages
      userphoto config check              the settings in effect, validated
    """
    ctx.obj = Context(home, may_create=ctx.invoked_subcommand in CREATES_HOME)
    ctx.call_on_close(lambda: ctx.obj._app and ctx.obj._app.close())
