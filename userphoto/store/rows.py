"""Rows to values and back, shared by the SQLite and PostgreSQL stores.

Rows are read by column name (`sqlite3.Row`, psycopg's `dict_row`). The two databases keep a
few column types differently (SQLite: times as ISO text, JSON as text, size lists as "48,96",
flags as 0/1; PostgreSQL: native types); each store describes its own in a `Codec`, and the
rest of each conversion is written once, here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ..errors import Conflict
from ..model import (
    Account,
    ApiToken,
    AuditEntry,
    CropBox,
    CropDecision,
    CropReason,
    DirectoryThumbnail,
    Partner,
    Photo,
    PhotoState,
    Picture,
    Rendered,
    User,
    Visibility,
)
from . import columns
from . import serving_sql as q
from .base import PhotoStatus, Serving

USER_COLUMNS = ", ".join(columns.USER_COLUMNS)
PHOTO_COLUMNS = ", ".join(columns.PHOTO_COLUMNS)
THUMBNAIL_COLUMNS = ", ".join(columns.THUMBNAIL_COLUMNS)


class Row(Protocol):
    """A row read by column name."""

    def __getitem__(self, name: str, /) -> Any: ...


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Codec:
    """How one database keeps the values whose column type differs between the two."""

    read_time: Callable[[Any], datetime | None] = _same
    write_time: Callable[[datetime | None], Any] = _same
    read_json: Callable[[Any], dict[str, Any]] = _same
    write_json: Callable[[dict[str, Any]], Any] = _same
    read_sizes: Callable[[Any], tuple[int, ...]] = tuple
    write_sizes: Callable[[tuple[int, ...]], Any] = list
    write_flag: Callable[[bool], Any] = _same
    read_blob: Callable[[Any], bytes | None] = _same


def now() -> datetime:
    return datetime.now(UTC)


# --- users ---------------------------------------------------------------------------------
def clean(user: User) -> None:
    """Addresses as stored: trimmed, lower case, aliases sorted without the main address."""
    user.address = user.address.strip().lower()
    user.aliases = sorted({a.strip().lower() for a in user.aliases} - {user.address})


def new_users(users: list[User], at: datetime) -> tuple[list[str], list[str]]:
    """Users about to be added together, cleaned and stamped; their addresses and ids.
    Conflict when two of them share an id or an address."""
    for user in users:
        clean(user)
        user.created = user.updated = at
    addresses = [a for u in users for a in u.addresses]
    ids = [u.id for u in users]
    if len(set(addresses)) != len(addresses) or len(set(ids)) != len(ids):
        raise Conflict("Two of the new users share an id or an address.")
    return addresses, ids


def user(row: Row, aliases: Iterable[str], codec: Codec) -> User:
    return User(
        id=row["id"],
        address=row["address"],
        display_name=row["display_name"],
        account=Account(row["account"]),
        picture=Picture(row["picture"]),
        picture_url=row["picture_url"],
        visibility=Visibility(row["visibility"]),
        removal_record=codec.read_time(row["removal_record"]),
        directory_gone=bool(row["directory_gone"]),
        source=row["source"],
        attributes=codec.read_json(row["attributes"]),
        created=codec.read_time(row["created"]),
        updated=codec.read_time(row["updated"]),
        aliases=list(aliases),
    )


def user_values(user: User, codec: Codec) -> tuple[Any, ...]:
    """The user's row in `USER_COLUMNS` order."""
    return (
        user.id,
        user.address,
        user.display_name,
        user.account.value,
        user.picture.value,
        user.picture_url,
        user.visibility.value,
        codec.write_time(user.removal_record),
        codec.write_flag(user.directory_gone),
        user.source,
        codec.write_json(user.attributes),
        codec.write_time(user.created),
        codec.write_time(user.updated),
    )


# --- photos --------------------------------------------------------------------------------
def photo(row: Row, codec: Codec) -> Photo:
    x, y, size = (int(v) for v in row["crop"].split(","))
    return Photo(
        id=row["id"],
        user_id=row["user_id"],
        version=row["version"],
        state=PhotoState(row["state"]),
        crop=CropBox(x, y, size),
        source_hash=row["source_hash"],
        source_format=row["source_format"],
        source_width=row["source_width"],
        source_height=row["source_height"],
        sizes=codec.read_sizes(row["sizes"]),
        created=codec.read_time(row["created"]),  # type: ignore[arg-type]  # NOT NULL
        actor=row["actor"],
        via=row["via"],
        crop_decision=CropDecision(
            CropReason(row["crop_reason"]), row["crop_confidence"], row["crop_note"]
        ),
    )


def photo_values(
    user_id: str,
    version: int,
    state: PhotoState,
    rendered: Rendered,
    at: datetime,
    actor: str,
    via: str,
    codec: Codec,
) -> tuple[Any, ...]:
    """A new photo's row: `PHOTO_COLUMNS` without `id` (the database numbers it), then the
    thumbnail."""
    return (
        user_id,
        version,
        state.value,
        str(rendered.crop),
        rendered.source.sha256,
        rendered.source.format,
        rendered.source.width,
        rendered.source.height,
        codec.write_sizes(rendered.sizes),
        codec.write_time(at),
        actor,
        via,
        rendered.decision.reason.value,
        rendered.decision.confidence,
        rendered.decision.note,
        rendered.thumbnail,
    )


def status(row: Row, codec: Codec) -> PhotoStatus:
    """A row of `queries.STATUS_SELECT`."""
    return PhotoStatus(
        user=user(row, [], codec),
        sizes=codec.read_sizes(row["photo_sizes"]) if row["photo_sizes"] else (),
        photo_created=codec.read_time(row["photo_created"]),
        has_preview=bool(row["has_preview"]),
        directory_usable=bool(row["directory_usable"]) if row["has_directory"] else None,
        directory_problem=row["directory_problem"],
        directory_seen=codec.read_time(row["directory_seen"]),
        directory_written_by_us=bool(row["directory_written_by_us"]),
        crop_reason=row["crop_reason"],
    )


# --- the directory thumbnail slot ----------------------------------------------------------
def thumbnail(row: Row, codec: Codec) -> DirectoryThumbnail:
    return DirectoryThumbnail(
        user_id=row["user_id"],
        jpeg=codec.read_blob(row["jpeg"]),
        raw_hash=row["raw_hash"],
        raw_size=row["raw_size"],
        width=row["width"],
        height=row["height"],
        problem=row["problem"],
        seen=codec.read_time(row["seen"]),  # type: ignore[arg-type]  # NOT NULL
        written_by_us=bool(row["written_by_us"]),
    )


def thumbnail_values(thumb: DirectoryThumbnail, codec: Codec) -> tuple[Any, ...]:
    """The slot's row in `THUMBNAIL_COLUMNS` order."""
    return (
        thumb.user_id,
        thumb.jpeg,
        thumb.raw_hash,
        thumb.raw_size,
        thumb.width,
        thumb.height,
        thumb.problem,
        codec.write_time(thumb.seen),
        codec.write_flag(thumb.written_by_us),
    )


# --- credentials and audit -----------------------------------------------------------------
def token(row: Row, codec: Codec) -> ApiToken:
    return ApiToken(
        row["id"],
        row["digest"],
        row["address"],
        bool(row["admin"]),
        codec.read_time(row["created"]),  # type: ignore[arg-type]  # NOT NULL
        codec.read_time(row["expires"]),
        codec.read_time(row["last_used"]),
    )


def partner(row: Row, codec: Codec) -> Partner:
    created = codec.read_time(row["created"])
    return Partner(row["domain"], row["algorithm"], row["key"], created)  # type: ignore[arg-type]


def audit_entry(row: Row, codec: Codec) -> AuditEntry:
    return AuditEntry(
        codec.read_time(row["at"]),  # type: ignore[arg-type]  # NOT NULL
        row["actor"],
        row["user_id"],
        row["action"],
        row["via"],
        row["detail"],
    )


def serving(row: Sequence[Any], aliases: Iterable[str], codec: Codec) -> Serving:
    """A `serving_sql` row: read by position, as its column names repeat across the joins."""
    photo_row = row[q.PHOTO_AT : q.DIRECTORY_AT]
    slot = row[q.DIRECTORY_AT : q.RENDITION_AT]
    size, jpeg = row[q.RENDITION_AT :]
    return Serving(
        user(dict(zip(q.USER_COLUMNS, row[: q.ALIASES_AT], strict=True)), aliases, codec),
        photo(dict(zip(q.PHOTO_COLUMNS, photo_row, strict=True)), codec)
        if photo_row[0] is not None
        else None,
        thumbnail(dict(zip(q.DIRECTORY_COLUMNS, slot, strict=True)), codec)
        if slot[0] is not None
        else None,
        (size, bytes(jpeg)) if jpeg is not None else None,
    )
