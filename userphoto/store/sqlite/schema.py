"""The embedded store's tables (versioned migrations) and how values are written in them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..rows import Codec

# Each entry moves the schema one version up; never edit a released one, append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        account TEXT NOT NULL,
        picture TEXT NOT NULL,
        picture_url TEXT,
        visibility TEXT NOT NULL,
        removal_record TEXT,
        directory_gone INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL DEFAULT 'local',
        attributes TEXT NOT NULL DEFAULT '{}',
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE TABLE aliases (
        address TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE
    );
    CREATE INDEX aliases_user ON aliases(user_id);
    CREATE TABLE address_hashes (
        digest TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE
    );
    CREATE INDEX address_hashes_user ON address_hashes(user_id);
    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        state TEXT NOT NULL,
        crop TEXT NOT NULL,
        source_hash TEXT NOT NULL,
        source_format TEXT NOT NULL,
        source_width INTEGER NOT NULL,
        source_height INTEGER NOT NULL,
        sizes TEXT NOT NULL,
        thumbnail BLOB,
        created TEXT NOT NULL,
        actor TEXT NOT NULL,
        via TEXT NOT NULL,
        UNIQUE (user_id, version)
    );
    CREATE INDEX photos_current ON photos(user_id, state);
    CREATE TABLE renditions (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        jpeg BLOB NOT NULL,
        PRIMARY KEY (photo_id, size)
    ) WITHOUT ROWID;
    CREATE TABLE directory_thumbnails (
        user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        jpeg BLOB,
        raw_hash TEXT NOT NULL,
        raw_size INTEGER NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        problem TEXT,
        seen TEXT NOT NULL,
        written_by_us INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        user_id TEXT NOT NULL,
        action TEXT NOT NULL,
        via TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_user ON audit(user_id, id);
    CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
    INSERT INTO generation VALUES (1, 0);
    """,
    # 2: serving credentials (tokens hashed; partner secrets are needed to verify, so kept)
    """
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        digest TEXT NOT NULL UNIQUE,
        address TEXT NOT NULL,
        admin INTEGER NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE partners (
        domain TEXT PRIMARY KEY,
        algorithm TEXT NOT NULL,
        key TEXT NOT NULL,
        created TEXT NOT NULL
    );
    """,
    # 3: the per-user change feed that serving processes follow (replaces `generation`)
    """
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        user_id TEXT
    );
    INSERT INTO changes (kind, user_id) SELECT 'org', NULL FROM generation WHERE value > 0;
    """,
    # 4: leases (the one active sync among several processes) and the write-back queue as a
    # table (it was one JSON value in `state`: moved here). Lease times are Unix seconds.
    """
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        since REAL NOT NULL,
        expires REAL NOT NULL
    );
    CREATE TABLE writeback_queue (
        user_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL DEFAULT 1,
        queued TEXT NOT NULL,
        claimed_by TEXT,
        claimed_until REAL
    );
    CREATE INDEX writeback_queue_order ON writeback_queue(queued);
    INSERT OR IGNORE INTO writeback_queue (user_id, queued)
        SELECT value, '1970-01-01T00:00:00+00:00' FROM json_each(
            (SELECT value FROM state WHERE key = 'directory.writeback.pending'));
    DELETE FROM state WHERE key = 'directory.writeback.pending';
    """,
    # 5: how each photo's crop was chosen (face / several faces / no face / manual ...);
    # rows from before this were all either given a box or cropped without a record: manual.
    """
    ALTER TABLE photos ADD COLUMN crop_reason TEXT NOT NULL DEFAULT 'manual';
    ALTER TABLE photos ADD COLUMN crop_confidence REAL NOT NULL DEFAULT 1.0;
    ALTER TABLE photos ADD COLUMN crop_note TEXT NOT NULL DEFAULT '';
    """,
    # 6: what every node shares about the web pages and tokens: the session keys (newest
    # signs), the signed-in sessions (revocable on every node) and token expiry / last use.
    # Times are Unix seconds, as the leases'. A removed token takes its sessions along.
    """
    CREATE TABLE session_keys (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE web_sessions (
        id TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        user_id TEXT,
        token_id TEXT REFERENCES api_tokens(id) ON DELETE CASCADE,
        created REAL NOT NULL,
        seen REAL NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX web_sessions_user ON web_sessions(user_id);
    CREATE INDEX web_sessions_token ON web_sessions(token_id);
    CREATE INDEX web_sessions_expires ON web_sessions(expires);
    ALTER TABLE api_tokens ADD COLUMN expires TEXT;
    ALTER TABLE api_tokens ADD COLUMN last_used TEXT;
    """,
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


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split(",") if s)


def _sizes_text(sizes: tuple[int, ...]) -> str:
    return ",".join(str(s) for s in sizes)


# Times as ISO 8601 text, JSON as text, size lists as "48,96", flags as 0/1.
CODEC = Codec(
    read_time=from_text,
    write_time=to_text,
    read_json=json.loads,
    write_json=_json_text,
    read_sizes=_sizes,
    write_sizes=_sizes_text,
    write_flag=int,
)
