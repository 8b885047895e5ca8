"""The store's statements written once: the little that differs between SQLite and
PostgreSQL in a statement's text (the dialect), and the transaction every write runs in.

Shared statements (`userphoto/store/shared/`) are written with `?` marks and the syntax both
databases accept (`ON CONFLICT ... DO UPDATE`, `RETURNING`); a backend turns the marks into
its own when it runs them, and keeps in its own package only what truly differs:
connections and transactions, the change feed, leases, migrations and bulk loads.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from .base import ChangeKind, Store
from .rows import Codec
from .serving_sql import Spelling


@dataclass(frozen=True)
class Dialect:
    """How one database spells what the two spell differently."""

    name: str  # "sqlite" or "postgresql" (facts_sql's name for it)
    mark: str  # a parameter's mark: "?" or "%s"
    codec: Codec  # how bool / datetime / json / int lists / bytes are kept
    like: str  # a case-sensitive LIKE with its mark (PostgreSQL: no escape character)
    lock: str  # the lock taken on a row read before writing it ("" where writes serialize)
    bytewise: str  # what makes text order byte-wise ("" where it already is)
    serving: Spelling  # the serving read (one query per cache miss)


def upsert(table: str, columns: Sequence[str], key: str) -> str:
    """An INSERT of `columns` that replaces the row whose `key` is taken (both databases)."""
    rest = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {rest}"
    )


class Tx(Protocol):
    """An open write transaction: its statements, and the changes it publishes at commit."""

    def one(self, sql: str, params: Any = ()) -> Any: ...

    def all(self, sql: str, params: Any = ()) -> list[Any]: ...

    def run(self, sql: str, params: Any = ()) -> int:
        """Run a statement; how many rows it changed."""
        ...

    def many(self, sql: str, params: Iterable[Sequence[Any]]) -> None: ...

    def insert(self, sql: str, params: Any) -> int:
        """Run an INSERT of one row; the id the database gave it."""
        ...

    def changed(self, kind: ChangeKind, user_ids: Iterable[str | None] = (None,)) -> None:
        """Followers learn of this write once it commits."""
        ...


class SQLStore(Store):
    """What the shared statements stand on; each backend's connection module supplies it."""

    dialect: Dialect

    @abstractmethod
    def _tx(self) -> AbstractContextManager[Any]:
        """A write transaction (a savepoint inside `batch`), yielding a `Tx`."""

    @abstractmethod
    def _one(self, sql: str, params: Any = (), *, primary: bool = False) -> Any:
        """One row read by position. `primary`: never from a read replica."""

    @abstractmethod
    def _all(self, sql: str, params: Any = (), *, primary: bool = False) -> list[Any]: ...

    @abstractmethod
    def _one_named(self, sql: str, params: Any = ()) -> Any:
        """One row read by column name."""

    @abstractmethod
    def _all_named(self, sql: str, params: Any = ()) -> list[Any]: ...
