"""The scale-out store's tables (versioned migrations) and how values are kept in them."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from ..rows import Codec
from ..shared import tables
from ..shared.tables import ddl

TYPES = tables.POSTGRES

# Each entry moves the schema one version up; never change what a released one makes, append.
# The tables both stores hold are written once (shared/tables.py). Addresses sort byte-wise
# (COLLATE "C"), as in SQLite, so pages and keyset walks agree.
MIGRATIONS: list[str] = [
    ddl(tables.USERS_AND_PHOTOS, TYPES)
    + ddl(tables.CREDENTIALS, TYPES)
    + """
    CREATE TABLE changes (
        seq BIGINT PRIMARY KEY,
        kind TEXT NOT NULL,
        user_id TEXT,
        at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    -- The highest pruned seq: a follower at or below it may have missed changes.
    CREATE TABLE change_horizon (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL);
    INSERT INTO change_horizon VALUES (1, 0);
    """,
    # 2: leases (by the server's clock, so nodes' clocks need not agree), write-back queue
    ddl(tables.LEASES_AND_QUEUE, TYPES),
    # 3: how each photo's crop was chosen, and the web-address rule (resolve.usable_url) as
    # an SQL function for the admin filters.
    ddl(tables.CROP_REASONS, TYPES)
    + """
    CREATE FUNCTION usable_url(url TEXT) RETURNS BOOLEAN IMMUTABLE LANGUAGE SQL AS $$
        SELECT coalesce(length(url) <= 2048
            AND (starts_with(lower(url), 'http://') OR starts_with(lower(url), 'https://'))
            AND url ~ '^[!-~]+$', false)
    $$;
    """,
    # 4: session keys, signed-in sessions, token expiry and last use
    ddl(tables.SESSIONS, TYPES),
]


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    return bytes(value) if value is not None else None


# Native column types: only JSON is written through a wrapper, and blobs read as bytes.
CODEC = Codec(write_json=Jsonb, read_blob=_bytes)
