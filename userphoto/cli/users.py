"""`userphoto user ...`: add, list, show and change users."""

from __future__ import annotations

import json
import uuid

import click

from ..errors import InvalidArgument
from ..model import Account, PhotoState, Picture, User, Visibility, is_address
from ..resolve import URL_RULE, usable_url
from ..store import UserQuery
from .root import Context, cli, pass_ctx

ACCOUNT = click.Choice([a.value for a in Account])
PICTURE = click.Choice([p.value for p in Picture])
VISIBILITY = click.Choice([v.value for v in Visibility])


def _check_address(address: str) -> str:
    if not is_address(address):
        raise InvalidArgument(f"{address!r} is not a mail address (expected name@domain).")
    return address.strip().lower()


def _check_url(picture: Picture, url: str | None) -> None:
    if picture is Picture.URL and not usable_url(url):
        raise InvalidArgument("--picture url needs --url https://... (the photo's web address).")


@cli.group()
def user() -> None:
    """Add, list, show and change users (accounts, picture options, visibility).

    \b
    Examples:
      userphoto user list --search ada
      userphoto user show ada@contoso.example
    """


@user.command("add")
@click.argument("address")
@click.option("--name", required=True, help='Display name, e.g. "Ada Lovelace".')
@click.option("--alias", "aliases", multiple=True, help="Another address (repeatable).")
@click.option(
    "--account",
    type=ACCOUNT,
    default="hd",
    show_default=True,
    help="Photo-store account: hd, sd_only (sizes <= 96), disabled or absent.",
)
@click.option("--id", "user_id", help="Stable id (default: a new random one).")
@pass_ctx
def user_add(
    ctx: Context,
    address: str,
    name: str,
    aliases: tuple[str, ...],
    account: str,
    user_id: str | None,
) -> None:
    """Add a local user with ADDRESS as primary address.

    \b
    Example:
      userphoto user add ada@contoso.example --name "Ada Lovelace" --alias al@contoso.example
    """
    new = User(
        id=user_id or uuid.uuid4().hex,
        address=_check_address(address),
        display_name=name,
        aliases=[_check_address(a) for a in aliases],
        account=Account(account),
    )
    ctx.app.store.add_user(new)
    click.echo(f"added {new.address} (id {new.id})")


@user.command("list")
@click.option("--search", default="", help="Only users whose address, alias or name contains this.")
@click.option("--limit", default=1000, show_default=True)
@click.option("--offset", default=0)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: users, total, offset.")
@pass_ctx
def user_list(ctx: Context, search: str, limit: int, offset: int, as_json: bool) -> None:
    """List users, one a line, under a header:

    \b
      ADDRESS     primary mail address (aliases: `user show ADDRESS`)
      ACCOUNT     photo-store account: hd, sd_only (sizes <= 96), disabled, absent
      PICTURE     what others are shown: photo, default (initials), hidden, url
      VISIBILITY  who may see it: everyone, organization, nobody
      PHOTO       "photo" when an HD photo is saved, "-" when not
      NAME        display name

    --json prints {"users": [...], "total": N, "offset": N, "limit": N}, each user with
    address, id, name, aliases, account, picture, visibility and photo (true / false).

    \b
    Examples:
      userphoto user list
      userphoto user list --search vance
      userphoto user list --json | jq -r '.users[] | select(.photo | not) | .address'
    """
    store = ctx.app.store
    users = store.list_users(UserQuery(search, offset, limit))
    if as_json:
        listing = {
            "users": [_user_record(u, store.get_photo(u.id) is not None) for u in users],
            "total": store.count_users(search),
            "offset": offset,
            "limit": limit,
        }
        click.echo(json.dumps(listing, indent=2, ensure_ascii=False))
        return
    if not users:
        click.echo(
            "no users"
            + (f" matching {search!r}" if search else "")
            + " (add one with `userphoto user add` or load `userphoto demo`)"
        )
        return
    width = max(len("ADDRESS"), *(len(u.address) for u in users))
    columns = ("ACCOUNT", "PICTURE", "VISIBILITY", "PHOTO", "NAME")
    click.echo(f"{'ADDRESS':<{width}}  " + _row(*columns))
    for u in users:
        has = "photo" if store.get_photo(u.id) else "-"
        click.echo(
            f"{u.address:<{width}}  "
            + _row(u.account.value, u.picture.value, u.visibility.value, has, u.display_name)
        )
    total = store.count_users(search)
    if total > offset + len(users):
        click.echo(f"... {total - offset - len(users)} more (use --offset/--limit)")


def _user_record(u: User, photo: bool) -> dict[str, object]:
    return {
        "address": u.address,
        "id": u.id,
        "name": u.display_name,
        "aliases": list(u.aliases),
        "account": u.account.value,
        "picture": u.picture.value,
        "visibility": u.visibility.value,
        "photo": photo,
    }


def _row(account: str, picture: str, visibility: str, photo: str, name: str) -> str:
    return f"{account:<8}  {picture:<7}  {visibility:<12}  {photo:<5}  {name}"


@user.command("show")
@click.argument("address")
@pass_ctx
def user_show(ctx: Context, address: str) -> None:
    """Show one user: settings, current photo, preview, removal record, directory thumbnail.

    \b
    Example:
      userphoto user show ada@contoso.example
    """
    app = ctx.app
    u = ctx.user(address)
    photo = app.store.get_photo(u.id)
    preview = app.store.get_photo(u.id, PhotoState.PREVIEW)
    thumb = app.store.get_directory_thumbnail(u.id)
    lines = [
        ("address", u.address),
        ("id", u.id),
        ("name", u.display_name),
        ("aliases", ", ".join(u.aliases) or "-"),
        ("account", u.account.value),
        ("picture", u.picture.value + (f" ({u.picture_url})" if u.picture_url else "")),
        ("visibility", u.visibility.value),
        ("source", u.source + (" (gone from directory)" if u.directory_gone else "")),
        (
            "photo",
            f"version {photo.version}, sizes {','.join(map(str, photo.sizes))}, "
            f"crop {photo.crop} ({photo.crop_decision}), "
            f"set {photo.created:%Y-%m-%d %H:%M} by {photo.actor} via "
            f"{photo.via}"
            if photo
            else "none",
        ),
        ("preview", f"version {preview.version}, pending" if preview else "none"),
        (
            "removal record",
            f"since {u.removal_record:%Y-%m-%d %H:%M} (blocks the directory "
            "fallback; clear with `remove --clear-record`)"
            if u.removal_record
            else "none",
        ),
        (
            "directory photo",
            (
                f"{thumb.width}×{thumb.height}, {thumb.raw_size} bytes"
                + (f", problem: {thumb.problem}" if thumb.problem else "")
            )
            if thumb
            else "none",
        ),
    ]
    for key, value in lines:
        click.echo(f"{key + ':':<17}{value}")


@user.command("set")
@click.argument("address")
@click.option("--account", type=ACCOUNT, help="Photo-store account state.")
@click.option(
    "--picture", type=PICTURE, help="What to show: photo, default (initials), hidden, url."
)
@click.option("--url", help="The picture's web address (with --picture url).")
@click.option(
    "--visibility", type=VISIBILITY, help="Who may see it: everyone, organization, nobody."
)
@click.option("--name", help="New display name.")
@pass_ctx
def user_set(
    ctx: Context,
    address: str,
    account: str | None,
    picture: str | None,
    url: str | None,
    visibility: str | None,
    name: str | None,
) -> None:
    """Change a user's account state, picture option, visibility or name.

    \b
    Examples:
      userphoto user set ada@contoso.example --visibility everyone
      userphoto user set ada@contoso.example --picture url --url https://example.org/ada.jpg
    """
    u = ctx.user(address)
    if account:
        u.account = Account(account)
    if picture:
        u.picture = Picture(picture)
    if url and not usable_url(url):  # a new address: the rule the web form and resolve use
        raise InvalidArgument(f"--url {url[:80]!r}: {URL_RULE}")
    if url is not None:
        u.picture_url = url or None
    if visibility:
        u.visibility = Visibility(visibility)
    if name:
        u.display_name = name
    if picture or url is not None:  # a stored bad address must not block other changes
        _check_url(u.picture, u.picture_url)
    ctx.app.store.update_user(u)
    click.echo(
        f"updated {u.address}: account {u.account.value}, picture {u.picture.value}, "
        f"visibility {u.visibility.value}"
    )
