"""The embedded store's tables (versioned migrations) and how values are written in them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..rows import Codec
from ..shared import tables
from ..shared.tables import ddl

TYPES = tables.SQLITE

# Each entry moves the schema one version up; never change what a released one makes, append.
# The tables both stores hold are written once (shared/tables.py).
MIGRATIONS: list[str] = [
    ddl(tables.USERS_AND_PHOTOS, TYPES)
    + """
    CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
    INSERT INTO generation VALUES (1, 0);
    """,
    # 2: serving credentials
    ddl(tables.CREDENTIALS, TYPES),
    # 3: the per-user change feed that serving processes follow (replaces `generation`)
    """
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        user_id TEXT
    );
    INSERT INTO changes (kind, user_id) SELECT 'org', NULL FROM generation WHERE value > 0;
    """,
    # 4: leases and the write-back queue as a table (it was one JSON value in `state`: moved
    # here). Lease and claim times are Unix seconds.
    ddl(tables.LEASES_AND_QUEUE, TYPES)
    + """
    INSERT OR IGNORE INTO writeback_queue (user_id, queued)
        SELECT value, '1970-01-01T00:00:00+00:00' FROM json_each(
            (SELECT value FROM state WHERE key = 'directory.writeback.pending'));
    DELETE FROM state WHERE key = 'directory.writeback.pending';
    """,
    # 5: how each photo's crop was chosen
    ddl(tables.CROP_REASONS, TYPES),
    # 6: session keys, signed-in sessions, token expiry and last use
    ddl(tables.SESSIONS, TYPES),
    # 7: the `generation` counter, replaced by the change feed in 3 and read by nothing since
    """
    DROP TABLE generation;
    """,
]


def to_text(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def from_text(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _json_text(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)


def _json_object(text: str) -> dict[str, Any]:
    # Most users have no extra attributes: "{}" skips the JSON decoder on a serving miss.
    return {} if text == "{}" else json.loads(text)


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(map(int, filter(None, text.split(","))))


def _sizes_text(sizes: tuple[int, ...]) -> str:
    return ",".join(str(s) for s in sizes)


# Times as ISO 8601 text, JSON as text, size lists as "48,96", flags as 0/1.
CODEC = Codec(
    read_time=from_text,
    write_time=to_text,
    read_json=_json_object,
    write_json=_json_text,
    read_sizes=_sizes,
    write_sizes=_sizes_text,
    write_flag=int,
)
