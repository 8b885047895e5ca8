"""Persistence behind one interface; `open_store` picks the implementation from a URL."""

from __future__ import annotations

from ..config import POSTGRES_PREFIXES, SQLITE_PREFIX, postgres_url, sqlite_file, store_url
from ..errors import UserPhotoError
from ..redaction import redact
from .base import (
    TABLES,
    Change,
    ChangeKind,
    PhotoStatus,
    Serving,
    StatusFilter,
    StatusQuery,
    Store,
    UserQuery,
    WebSession,
    address_hashes,
)

__all__ = [
    "TABLES",
    "Change",
    "ChangeKind",
    "PhotoStatus",
    "Serving",
    "StatusFilter",
    "StatusQuery",
    "Store",
    "UserQuery",
    "WebSession",
    "address_hashes",
    "open_store",
    "reach",
    "redact",
]


def open_store(url: str, read_url: str | None = None) -> Store:
    """`sqlite:///path/to/file.db` (the default) or `postgresql://...` (scale-out).

    `read_url` (PostgreSQL only): a hot standby that serves reads once it is current."""
    if read_url and not url.startswith(POSTGRES_PREFIXES):
        raise UserPhotoError("[store] read_url needs a PostgreSQL store url; remove it for SQLite.")
    for name, value in (("url", url), ("read_url", read_url)):
        problem = (store_url if name == "url" else postgres_url)(value) if value else None
        if problem:  # the words `config check` uses; the value's passwords never shown
            raise UserPhotoError(f"The store {name} {problem}.", code="config")
    if url.startswith(SQLITE_PREFIX):
        from .sqlite import SQLiteStore

        return SQLiteStore(
            url.removeprefix("sqlite://")[1:]
            if url.startswith("sqlite:///./")
            else url.removeprefix("sqlite://")
        )
    from .postgres import PostgresStore

    return PostgresStore(url, read_url=read_url or None)


def reach(url: str, *, read: bool = False) -> str:
    """Whether the store at `url` can be reached, without changing it (no file created, no
    migration): what was found, or StoreUnavailable / UserPhotoError naming the cause and
    the fix. `read`: the url is [store] read_url."""
    problem = (postgres_url if read else store_url)(url)
    if problem:
        raise UserPhotoError(f"The store {'read_url' if read else 'url'} {problem}.")
    if url.startswith(SQLITE_PREFIX):
        import os
        import sqlite3
        from pathlib import Path

        path = sqlite_file(url) or Path()
        if not path.exists():
            if not os.access(path.parent, os.W_OK):
                raise UserPhotoError(f"{path} does not exist and {path.parent} is not writable.")
            return f"SQLite {path} (not created yet: `userphoto init` or `serve` creates it)"
        try:
            db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise UserPhotoError(f"{path} cannot be read as a SQLite database ({exc}).") from None
        return f"SQLite {path} (schema version {version})"
    from .postgres.connection import describe, probe

    probe(url)
    return f"PostgreSQL {describe(url)}"
