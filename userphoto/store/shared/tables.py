"""The tables both stores hold, written once; `{names}` are the column types that differ,
filled in by each backend's schema.py from its `TYPES` (see `Types`). Each backend's
migrations run these texts in its own order (SQLite grew them over more versions) with what
is only its own around them. A released migration's resulting schema never changes: a new
table or column is a new text here, appended to both backends' migrations."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Types:
    """A backend's column types for what the two keep differently."""

    id: str  # a row id the database numbers
    ref: str  # a column referring to such an id
    address: str  # text ordered byte-wise (addresses, keyset walks)
    time: str  # a point in time
    flag: str  # a boolean
    false: str  # its false, as a default
    json: str  # a JSON object
    sizes: str  # a list of ints
    blob: str  # bytes
    real: str  # a float
    clock: str  # lease and claim times (SQLite: Unix seconds; PostgreSQL: the server's clock)
    rowid: str  # a table keyed by its primary key alone (SQLite: WITHOUT ROWID)


def ddl(text: str, types: Types) -> str:
    return text.format(**asdict(types))


USERS_AND_PHOTOS = """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        address {address} NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        account TEXT NOT NULL,
        picture TEXT NOT NULL,
        picture_url TEXT,
        visibility TEXT NOT NULL,
        removal_record {time},
        directory_gone {flag} NOT NULL DEFAULT {false},
        source TEXT NOT NULL DEFAULT 'local',
        attributes {json} NOT NULL DEFAULT '{{}}',
        created {time} NOT NULL,
        updated {time} NOT NULL
    );
    CREATE TABLE aliases (
        address {address} PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE
    );
    CREATE INDEX aliases_user ON aliases(user_id);
    CREATE TABLE address_hashes (
        digest TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE
    );
    CREATE INDEX address_hashes_user ON address_hashes(user_id);
    CREATE TABLE photos (
        id {id},
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        state TEXT NOT NULL,
        crop TEXT NOT NULL,
        source_hash TEXT NOT NULL,
        source_format TEXT NOT NULL,
        source_width INTEGER NOT NULL,
        source_height INTEGER NOT NULL,
        sizes {sizes} NOT NULL,
        thumbnail {blob},
        created {time} NOT NULL,
        actor TEXT NOT NULL,
        via TEXT NOT NULL,
        UNIQUE (user_id, version)
    );
    CREATE INDEX photos_current ON photos(user_id, state);
    CREATE TABLE renditions (
        photo_id {ref} NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        jpeg {blob} NOT NULL,
        PRIMARY KEY (photo_id, size)
    ){rowid};
    CREATE TABLE directory_thumbnails (
        user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        jpeg {blob},
        raw_hash TEXT NOT NULL,
        raw_size INTEGER NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        problem TEXT,
        seen {time} NOT NULL,
        written_by_us {flag} NOT NULL DEFAULT {false}
    );
    CREATE TABLE audit (
        id {id},
        at {time} NOT NULL,
        actor TEXT NOT NULL,
        user_id TEXT NOT NULL,
        action TEXT NOT NULL,
        via TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_user ON audit(user_id, id);
    CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Serving credentials (tokens hashed; partner secrets are needed to verify, so kept).
CREDENTIALS = """
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        digest TEXT NOT NULL UNIQUE,
        address TEXT NOT NULL,
        admin {flag} NOT NULL,
        created {time} NOT NULL
    );
    CREATE TABLE partners (
        domain TEXT PRIMARY KEY,
        algorithm TEXT NOT NULL,
        key TEXT NOT NULL,
        created {time} NOT NULL
    );
"""

# Leases (the one active sync among several processes and nodes) and the write-back queue.
LEASES_AND_QUEUE = """
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        since {clock} NOT NULL,
        expires {clock} NOT NULL
    );
    CREATE TABLE writeback_queue (
        user_id {address} PRIMARY KEY,
        version INTEGER NOT NULL DEFAULT 1,
        queued {time} NOT NULL,
        claimed_by TEXT,
        claimed_until {clock}
    );
    CREATE INDEX writeback_queue_order ON writeback_queue(queued);
"""

# How each photo's crop was chosen (face / several faces / no face / manual ...); rows from
# before this were all either given a box or cropped without a record: manual.
CROP_REASONS = """
    ALTER TABLE photos ADD COLUMN crop_reason TEXT NOT NULL DEFAULT 'manual';
    ALTER TABLE photos ADD COLUMN crop_confidence {real} NOT NULL DEFAULT 1.0;
    ALTER TABLE photos ADD COLUMN crop_note TEXT NOT NULL DEFAULT '';
"""

# What every node shares about the web pages and tokens: the session keys (newest signs),
# the signed-in sessions (revocable on every node) and token expiry / last use. Session times
# are Unix seconds (compared with the node's clock, as a cookie's are). A removed token takes
# its sessions along.
SESSIONS = """
    CREATE TABLE session_keys (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        created {real} NOT NULL
    );
    CREATE TABLE web_sessions (
        id TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        user_id TEXT,
        token_id TEXT REFERENCES api_tokens(id) ON DELETE CASCADE,
        created {real} NOT NULL,
        seen {real} NOT NULL,
        expires {real} NOT NULL
    );
    CREATE INDEX web_sessions_user ON web_sessions(user_id);
    CREATE INDEX web_sessions_token ON web_sessions(token_id);
    CREATE INDEX web_sessions_expires ON web_sessions(expires);
    ALTER TABLE api_tokens ADD COLUMN expires {time};
    ALTER TABLE api_tokens ADD COLUMN last_used {time};
"""
