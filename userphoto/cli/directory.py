"""`userphoto directory ...`: talk to the directory directly (upload a thumbnailPhoto, check)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import imaging
from ..errors import InvalidArgument, UnknownUser
from ..model import normalize_address
from .root import Context, cli, pass_ctx, read_photo_file
from .sync import directory_config

if TYPE_CHECKING:
    from ..directory.client import DirectoryClient


@cli.group("directory")
def directory() -> None:
    """Write photos straight into the directory and check the connection.

    \b
    Examples:
      userphoto directory check
      userphoto directory upload ada@contoso.example ada.jpg
      userphoto directory push ada@contoso.example
    """


@directory.command("upload")
@click.argument("address")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def upload(ctx: Context, address: str, file: Path) -> None:
    """Validate FILE (JPEG or PNG), render the directory thumbnail, write it to thumbnailPhoto.

    What the modeled system's PowerShell script did, with the checks it lacked: the photo is
    validated, turned upright, cropped square and rendered at `writeback_size` within 100 KB.
    The next sync (seconds under `sync --watch`) shows it as the user's directory photo.

    \b
    Example:
      userphoto directory upload ada@contoso.example ada.jpg
    """
    from ..directory.client import DirectoryClient

    config = directory_config(ctx)
    data = read_photo_file(file, ctx.app.settings.limits.max_bytes)
    kind = imaging.sniff(data)
    if kind not in ("JPEG", "PNG"):
        raise InvalidArgument(
            f"{file} is {kind or 'not a JPEG or PNG'}; the directory takes JPEG or PNG here."
        )
    rendered = ctx.app.pool.run(  # bounded memory and CPU, as every upload
        imaging.render,
        data,
        limits=ctx.app.settings.limits,
        thumbnail_size=config.writeback_size,
        quality=ctx.app.settings.jpeg_quality,
    )
    thumb = rendered.thumbnail
    with DirectoryClient(config) as client:
        dn = _find_dn(ctx, client, address)
        client.write_photo(dn, thumb)
        uri = client.info.uri if client.info else config.uris[0]
    click.echo(
        f"wrote a {config.writeback_size}×{config.writeback_size} JPEG ({len(thumb):,} bytes, "
        f"limit {imaging.DIRECTORY_LIMIT:,}) to {config.photo_attribute} of {dn} on {uri}"
    )
    click.echo("the next `userphoto sync` (seconds under `sync --watch`) picks it up")


def _find_dn(ctx: Context, client: DirectoryClient, address: str) -> str:
    from ..directory.entry import Flavour

    user = ctx.app.store.find_user(address)
    if user is not None and user.attributes.get("dn"):
        return user.attributes["dn"]
    config = client.config
    client.connect()
    assert client.info is not None
    flavour = Flavour.of(config, client.info.is_ad)
    mail = normalize_address(address)
    escaped = (
        mail.replace("\\", "\\5c").replace("*", "\\2a").replace("(", "\\28").replace(")", "\\29")
    )
    search = (
        f"(&{flavour.user_filter}(|({config.mail_attribute}={escaped})"
        f"(proxyAddresses=smtp:{escaped})))"
    )
    for page in client.search(search, [config.mail_attribute]):
        for dn, _attrs in page:
            return dn
    raise UnknownUser(f"No directory entry has the address {mail} (searched {config.base_dn}).")


@directory.command("check")
@pass_ctx
def check(ctx: Context) -> None:
    """Connect, bind and count the users the filter matches (nothing is written).

    \b
    Example:
      userphoto directory check
    """
    from ..directory.client import DirectoryClient
    from ..directory.entry import Flavour

    config = directory_config(ctx)
    with DirectoryClient(config) as client:
        client.connect()
        info = client.info
        assert info is not None
        flavour = Flavour.of(config, info.is_ad)
        count = sum(len(page) for page in client.search(flavour.user_filter, ["1.1"]))
    click.echo(
        f"connected to {info.uri} ({'Active Directory' if info.is_ad else 'LDAP'}), "
        f"bound as {config.bind_dn or '(anonymous)'}"
    )
    click.echo(
        f"{count} entries match {flavour.user_filter} under {config.base_dn}; "
        f"id {flavour.id_attribute}, photo {config.photo_attribute}, "
        f"write-back {'on' if config.writeback else 'off'}"
    )


@directory.command("push")
@click.argument("address")
@pass_ctx
def push(ctx: Context, address: str) -> None:
    """Write ADDRESS's HD photo to the directory now (or clear it when there is none).

    What write-back does on every save, on demand and whatever `writeback` says: it brings a
    directory photo that disagrees with the HD photo back in step.

    \b
    Example:
      userphoto directory push ada@contoso.example
    """
    from ..directory.writeback import WriteBack

    config = directory_config(ctx)
    user = ctx.app.photos.user(address)
    if not WriteBack.applies(user):
        raise InvalidArgument(
            f"{user.address} did not come from the directory (or is gone from it); "
            "only synced users have a directory entry to write."
        )
    data = WriteBack(ctx.app.store, config).write(user)
    if data is None:
        click.echo(f"cleared {config.photo_attribute} of {user.attributes['dn']} (no HD photo)")
    else:
        click.echo(
            f"wrote the HD photo's {len(data):,}-byte thumbnail to "
            f"{config.photo_attribute} of {user.attributes['dn']}"
        )
