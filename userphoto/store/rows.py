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
from enum import Enum
from operator import itemgetter
from typing import Any, Protocol, TypeVar

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


E = TypeVar("E", bound=Enum)


def _same(value: Any) -> Any:
    return value


def _reader(kind: type[E]) -> Callable[[Any], E]:
    """`kind(value)` through a table: an enum's own lookup costs a miss's decode several µs
    (one per enum column); an unknown value still raises as `kind(value)` does."""
    members = {member.value: member for member in kind}

    def read(value: Any) -> E:
        found = members.get(value)
        return found if found is not None else kind(value)

    return read


_ACCOUNT = _reader(Account)
_PICTURE = _reader(Picture)
_VISIBILITY = _reader(Visibility)
_STATE = _reader(PhotoState)
_CROP_REASON = _reader(CropReason)
# A row's columns in `columns` order, by name (`sqlite3.Row`, `dict_row`): the by-name
# readers pick them so each value is decoded once, by position (`serving` reads by position).
_USER_AT = itemgetter(*columns.USER_COLUMNS)
_PHOTO_AT = itemgetter(*columns.PHOTO_COLUMNS)
_THUMBNAIL_AT = itemgetter(*columns.THUMBNAIL_COLUMNS)


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
    return user_at(_USER_AT(row), aliases, codec)


def user_at(values: Sequence[Any], aliases: Iterable[str], codec: Codec) -> User:
    """A user from its columns in `USER_COLUMNS` order."""
    (
        id_, address, display_name, account, picture, picture_url, visibility,
        removal_record, directory_gone, source, attributes, created, updated,
    ) = values  # fmt: skip
    read_time = codec.read_time
    return User(
        id=id_,
        address=address,
        display_name=display_name,
        account=_ACCOUNT(account),
        picture=_PICTURE(picture),
        picture_url=picture_url,
        visibility=_VISIBILITY(visibility),
        removal_record=read_time(removal_record),
        directory_gone=bool(directory_gone),
        source=source,
        attributes=codec.read_json(attributes),
        created=read_time(created),
        updated=read_time(updated),
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
    return photo_at(_PHOTO_AT(row), codec)


def photo_at(values: Sequence[Any], codec: Codec) -> Photo:
    """A photo from its columns in `PHOTO_COLUMNS` order."""
    (
        id_, user_id, version, state, crop, source_hash, source_format, source_width,
        source_height, sizes, created, actor, via, crop_reason, crop_confidence, crop_note,
    ) = values  # fmt: skip
    x, y, size = map(int, crop.split(","))
    return Photo(
        id=id_,
        user_id=user_id,
        version=version,
        state=_STATE(state),
        crop=CropBox(x, y, size),
        source_hash=source_hash,
        source_format=source_format,
        source_width=source_width,
        source_height=source_height,
        sizes=codec.read_sizes(sizes),
        created=codec.read_time(created),  # type: ignore[arg-type]  # NOT NULL
        actor=actor,
        via=via,
        crop_decision=CropDecision(_CROP_REASON(crop_reason), crop_confidence, crop_note),
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
    return thumbnail_at(_THUMBNAIL_AT(row), codec)


def thumbnail_at(values: Sequence[Any], codec: Codec) -> DirectoryThumbnail:
    """A directory slot from its columns in `THUMBNAIL_COLUMNS` order."""
    user_id, jpeg, raw_hash, raw_size, width, height, problem, seen, written_by_us = values
    return DirectoryThumbnail(
        user_id=user_id,
        jpeg=codec.read_blob(jpeg),
        raw_hash=raw_hash,
        raw_size=raw_size,
        width=width,
        height=height,
        problem=problem,
        seen=codec.read_time(seen),  # type: ignore[arg-type]  # NOT NULL
        written_by_us=bool(written_by_us),
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
        user_at(row[: q.ALIASES_AT], aliases, codec),
        photo_at(photo_row, codec) if photo_row[0] is not None else None,
        thumbnail_at(slot, codec) if slot[0] is not None else None,
        (size, bytes(jpeg)) if jpeg is not None else None,
    )
