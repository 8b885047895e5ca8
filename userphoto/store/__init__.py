"""Persistence behind one interface; `open_store` picks the implementation from a URL."""

from __future__ import annotations

from ..errors import UserPhotoError
from .base import (
    Change,
    ChangeKind,
    PhotoStatus,
    StatusFilter,
    StatusQuery,
    Store,
    UserQuery,
    address_hashes,
)

__all__ = [
    "Change",
    "ChangeKind",
    "PhotoStatus",
    "StatusFilter",
    "StatusQuery",
    "Store",
    "UserQuery",
    "address_hashes",
    "open_store",
]


def open_store(url: str) -> Store:
    """`sqlite:///path/to/file.db` (the default) or `postgresql://...` (scale-out)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return SQLiteStore(
            url.removeprefix("sqlite://")[1:]
            if url.startswith("sqlite:///./")
            else url.removeprefix("sqlite://")
        )
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise UserPhotoError(f"Unknown store URL {url!r}; use sqlite:///PATH or postgresql://...")
