"""The one query behind `Store.serving`: a key's user, saved photo, directory slot and the
rendition the requested size picks, in one round trip (SQLite and PostgreSQL spellings).

The key is resolved to an id first (`k`); an unknown key becomes NOBODY, an id no user can
have, and the joins run for it all the same: an unknown key costs the probes a hidden user
costs, so timing does not tell them apart. The rendition is the one `resolve.choose_size`
picks without a cap: that size if stored, else the largest below, else the smallest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .columns import PHOTO_COLUMNS, USER_COLUMNS
from .columns import THUMBNAIL_COLUMNS as DIRECTORY_COLUMNS

# Not NUL (PostgreSQL text cannot hold it); `lookup.check_key` refuses control characters,
# so no request can name this id.
NOBODY = "\x01nobody"
# `size` None asks for the largest rendition (what choose_size picks without a request).
LARGEST = 2**31 - 1

# Row layout: user columns, aliases (SQLite: a JSON array, unordered), photo columns,
# directory columns, rendition size, jpeg.
ALIASES_AT = len(USER_COLUMNS)
PHOTO_AT = ALIASES_AT + 1
DIRECTORY_AT = PHOTO_AT + len(PHOTO_COLUMNS)
RENDITION_AT = DIRECTORY_AT + len(DIRECTORY_COLUMNS)


def _columns(alias: str, names: tuple[str, ...]) -> str:
    return ", ".join(f"{alias}.{n}" for n in names)


_SELECT = (
    f"{_columns('u', USER_COLUMNS)}, {{aliases}}, {_columns('p', PHOTO_COLUMNS)}, "
    f"{_columns('d', DIRECTORY_COLUMNS)}, r.size, r.jpeg"
)
_JOINS = (
    "LEFT JOIN users u ON u.id = k.id "
    "LEFT JOIN photos p ON p.user_id = k.id AND p.state = 'saved' "
    "LEFT JOIN directory_thumbnails d ON d.user_id = k.id "
)
# choose_size without a cap: at or below the request, the largest; else the smallest. Two
# index seeks (max/min on the primary key); sorting the photo's renditions read their rows.
_CHOOSE = (
    "LEFT JOIN renditions r ON r.photo_id = p.id AND r.size = coalesce("
    "(SELECT max(size) FROM renditions WHERE photo_id = p.id AND size <= {want}), "
    "(SELECT min(size) FROM renditions WHERE photo_id = p.id))"
)

_SQLITE_BY_KEY = (
    "SELECT id FROM users WHERE id = :key "
    "UNION ALL SELECT id FROM users WHERE address = :low "
    "UNION ALL SELECT user_id FROM aliases WHERE address = :low LIMIT 1"
)
_SQLITE_BY_HASH = "SELECT user_id FROM address_hashes WHERE digest = :low"


def _sqlite(find: str) -> str:
    # Unordered (the caller sorts): ordering here costs a temporary b-tree per read.
    aliases = "(SELECT json_group_array(address) FROM aliases WHERE user_id = k.id)"
    return (
        f"WITH k(id) AS (SELECT coalesce(({find}), :nobody)) "
        f"SELECT {_SELECT.format(aliases=aliases)} FROM k {_JOINS}{_CHOOSE.format(want=':want')}"
    )


SQLITE_BY_KEY = _sqlite(_SQLITE_BY_KEY)
SQLITE_BY_HASH = _sqlite(_SQLITE_BY_HASH)

_POSTGRES_BY_KEY = (
    "SELECT id FROM users WHERE id = %(key)s "
    "UNION ALL SELECT id FROM users WHERE address = %(low)s "
    "UNION ALL SELECT user_id FROM aliases WHERE address = %(low)s LIMIT 1"
)
_POSTGRES_BY_HASH = "SELECT user_id FROM address_hashes WHERE digest = %(low)s"


def _postgres(find: str) -> str:
    aliases = "array(SELECT a.address FROM aliases a WHERE a.user_id = k.id ORDER BY a.address)"
    return (
        f"WITH k AS (SELECT coalesce(({find}), %(nobody)s) AS id) "
        f"SELECT {_SELECT.format(aliases=aliases)} FROM k {_JOINS}"
        f"{_CHOOSE.format(want='%(want)s')}"
    )


POSTGRES_BY_KEY = _postgres(_POSTGRES_BY_KEY)
POSTGRES_BY_HASH = _postgres(_POSTGRES_BY_HASH)


def params(key: str, size: int | None) -> dict[str, object]:
    """The query's parameters (named, the same for both spellings)."""
    key = key.strip()
    return {
        "key": key,
        "low": key.lower(),
        "nobody": NOBODY,
        "want": LARGEST if size is None else size,
    }


# Stand-in rows of the same shape as a found user's (with a saved photo): for an unknown key
# the store decodes one and drops it, so the Python side of the read costs what a hidden
# user's costs too (decoding a row is most of it: times, JSON, the photo's sizes).
_AT = datetime(2026, 1, 1, tzinfo=UTC)
_SIZES = (48, 64, 96, 120, 240, 360, 432, 504, 648)
_STAND_IN_USER = (NOBODY, "nobody@nobody.invalid", "Nobody", "hd", "photo", None, "organization")
_STAND_IN_PHOTO = (0, NOBODY, 1, "saved", "0,0,648", "0" * 64, "jpeg", 648, 648)
_STAND_IN_PHOTO_END = ("system", "cli", "manual", 1.0, "")
_NO_DIRECTORY: tuple[None, ...] = (None,) * (len(DIRECTORY_COLUMNS) + 2)
SQLITE_STAND_IN: tuple[object, ...] = (
    *_STAND_IN_USER,
    *(None, 0, "local", "{}", _AT.isoformat(), _AT.isoformat(), "[]"),
    *_STAND_IN_PHOTO,
    *(",".join(map(str, _SIZES)), _AT.isoformat(), *_STAND_IN_PHOTO_END),
    *_NO_DIRECTORY,
)
POSTGRES_STAND_IN: tuple[object, ...] = (
    *_STAND_IN_USER,
    *(None, False, "local", {}, _AT, _AT, []),
    *_STAND_IN_PHOTO,
    *(list(_SIZES), _AT, *_STAND_IN_PHOTO_END),
    *_NO_DIRECTORY,
)


def _sorted_json(aliases: str) -> list[str]:
    # Most users have no alias: "[]" skips the JSON decoder on a serving miss.
    return [] if aliases == "[]" else sorted(json.loads(aliases))


def _as_is(aliases: list[str]) -> list[str]:
    return aliases


@dataclass(frozen=True)
class Spelling:
    """One backend's serving read: its statements, its stand-in row, its aliases' decoding."""

    by_key: str
    by_hash: str
    stand_in: tuple[object, ...]
    aliases: Callable[[Any], list[str]]


SQLITE = Spelling(SQLITE_BY_KEY, SQLITE_BY_HASH, SQLITE_STAND_IN, _sorted_json)
POSTGRES = Spelling(POSTGRES_BY_KEY, POSTGRES_BY_HASH, POSTGRES_STAND_IN, _as_is)
