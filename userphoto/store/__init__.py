"""Persistence behind one interface; `open_store` picks the implementation from a URL."""

from __future__ import annotations

from ..errors import UserPhotoError
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
    "redact",
]


def redact(url: str) -> str:
    """A store URL fit to print: a password in it is replaced by ***."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not (sep and at and ":" in userinfo):
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def open_store(url: str, read_url: str | None = None) -> Store:
    """`sqlite:///path/to/file.db` (the default) or `postgresql://...` (scale-out).

    `read_url` (PostgreSQL only): a hot standby that serves reads once it is current."""
    if read_url and not url.startswith(("postgresql://", "postgres://")):
        raise UserPhotoError("[store] read_url needs a PostgreSQL store url; remove it for SQLite.")
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return SQLiteStore(
            url.removeprefix("sqlite://")[1:]
            if url.startswith("sqlite:///./")
            else url.removeprefix("sqlite://")
        )
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url, read_url=read_url or None)
    raise UserPhotoError(f"Unknown store URL {url!r}; use sqlite:///PATH or postgresql://...")
