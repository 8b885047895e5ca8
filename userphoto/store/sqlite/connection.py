"""The embedded store's plumbing: one connection a thread, transactions, errors, migrations."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...errors import StoreError, StoreFull, StoreLocked, StoreReadOnly
from ...resolve import usable_url
from .. import serving_sql
from ..base import ChangeKind
from ..sql import Dialect, SQLStore
from .schema import CODEC, MIGRATIONS

# Writes run one at a time (BEGIN IMMEDIATE): nothing to lock; text already sorts byte-wise.
DIALECT = Dialect("sqlite", "?", CODEC, "LIKE ?", "", "", serving_sql.SQLITE)


def _writable(path: str) -> bool:
    """Whether this process may write the store file and create its -wal/-shm beside it."""
    return os.access(path, os.W_OK) and os.access(Path(path).absolute().parent, os.W_OK)


def _create_private(path: str) -> None:
    """A new store file readable by this user only: it holds token hashes and partners'
    signing secrets. SQLite gives its -wal and -shm files the database file's mode."""
    if path == ":memory:" or path.startswith("file:") or Path(path).exists():
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # another process made it meanwhile
    except OSError:
        pass  # a missing or read-only folder: connecting says so, as its own error


# How long a write waits for another process's write transaction before it is refused
# (503 + Retry-After on the API): long enough for any ordinary write, short enough that a
# held lock answers instead of piling up requests.
BUSY_SECONDS = 5.0


class SQLiteTx:
    """A write transaction on the store's connection (`sql.Tx`)."""

    def __init__(self, db: sqlite3.Connection, changed: Callable[..., None]):
        self.db = db
        self._changed = changed

    def one(self, sql: str, params: Any = ()) -> Any:
        return self.db.execute(sql, params).fetchone()

    def all(self, sql: str, params: Any = ()) -> list[Any]:
        return self.db.execute(sql, params).fetchall()

    def run(self, sql: str, params: Any = ()) -> int:
        return self.db.execute(sql, params).rowcount

    def many(self, sql: str, params: Iterable[Any]) -> None:
        self.db.executemany(sql, params)

    def insert(self, sql: str, params: Any) -> int:
        return self.db.execute(sql, params).lastrowid or 0

    def changed(self, kind: ChangeKind, user_ids: Iterable[str | None] = (None,)) -> None:
        self._changed(self.db, kind, list(user_ids))


class SQLiteBase(SQLStore):
    """What every job of the store stands on; `SQLiteStore` (in `__init__`) joins them."""

    dialect = DIALECT
    # Every write records itself in the change feed: changes.py supplies this.
    _changed: Callable[[sqlite3.Connection, ChangeKind, list[str] | list[None]], None]

    def __init__(self, path: Path | str):
        self.path = str(path)
        self._local = threading.local()
        self.read_only = False  # set when the file or its folder cannot be written
        _create_private(self.path)
        self._migrate()

    # --- plumbing ----------------------------------------------------------------------
    @property
    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.create_function("usable_url", 1, usable_url, deterministic=True)
            conn.row_factory = sqlite3.Row  # rows are read by column name
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        if not self.read_only:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                # FULL: a commit is on disk (WAL fsynced) before the write is acknowledged,
                # so a 2xx survives a power loss. BENCHMARKS.md "Durability" has its cost.
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
                return conn
            except sqlite3.OperationalError as exc:
                if not Path(self.path).exists() or _writable(self.path):
                    raise self._fault(exc) from None
                self.read_only = True  # an existing store we may not write: read it
        return self._connect_read_only()

    def _connect_read_only(self) -> sqlite3.Connection:
        uri = Path(self.path).absolute().as_uri()
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
            conn.execute("PRAGMA user_version").fetchone()
        except sqlite3.OperationalError:
            # A WAL store closed cleanly has no -shm file, and a read-only folder cannot
            # get one: nothing can write it either, so read it as immutable.
            conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _fault(self, exc: sqlite3.Error) -> Exception:
        """The store error that says what happened, or `exc` itself for anything else."""
        name = getattr(exc, "sqlite_errorname", "")
        shown = os.path.realpath(self.path)  # the URL form leaves a "//" in front
        folder = Path(shown).parent
        if name == "SQLITE_FULL" or "disk is full" in str(exc):
            return StoreFull(
                f"The disk holding {folder} is full; nothing was saved. Free some space "
                "there and try again."
            )
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc):
            return StoreLocked(
                f"The database {shown} is locked by another process's write (held for "
                f"more than {BUSY_SECONDS:.0f} s); nothing was saved. Try again shortly; "
                f"`fuser {shown}` shows which process holds it."
            )
        if name.startswith("SQLITE_READONLY") or self.read_only:
            return StoreReadOnly(
                f"The data folder {folder} is read-only: reading works, but changes cannot "
                "be saved. Make it writable for this user to change anything."
            )
        if name.startswith("SQLITE_CANTOPEN"):
            return StoreError(f"Cannot open the database {shown} ({exc}).")
        if name.startswith("SQLITE_IOERR"):
            return StoreError(f"The disk holding {folder} failed a write ({exc}); nothing saved.")
        return exc

    # Reads: sqlite3.Row is read by position and by name alike; one file, no replica.
    def _one(self, sql: str, params: Any = (), *, primary: bool = False) -> Any:
        return self._db.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Any = (), *, primary: bool = False) -> list[Any]:
        return self._db.execute(sql, params).fetchall()

    def _one_named(self, sql: str, params: Any = ()) -> Any:
        return self._db.execute(sql, params).fetchone()

    def _all_named(self, sql: str, params: Any = ()) -> list[Any]:
        return self._db.execute(sql, params).fetchall()

    def _rollback(self, db: sqlite3.Connection, savepoint: bool = False) -> None:
        """Undo what is open, if anything is: SQLite has already rolled back after some errors
        (a full disk), and a failing ROLLBACK must never hide the error that caused it."""
        if not db.in_transaction:
            return
        try:
            if savepoint:
                db.execute("ROLLBACK TO write")
                db.execute("RELEASE write")
            else:
                db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around many writes (bulk sync): each write inside is a savepoint."""
        if getattr(self._local, "batch", False):
            yield
            return
        db = self._db
        try:
            with self._immediate(db):
                self._local.batch, self._local.wrote = True, False
                yield
                db.execute("COMMIT" if self._local.wrote else "ROLLBACK")
        finally:
            self._local.batch = False

    @contextmanager
    def _immediate(self, db: sqlite3.Connection) -> Iterator[None]:
        """A write transaction whose body ends it (COMMIT); an error inside rolls it back,
        and a database error comes out as its fault (disk full, locked, read-only)."""
        self._begin(db)
        try:
            yield
        except sqlite3.Error as exc:
            self._rollback(db)
            raise self._fault(exc) from None
        except BaseException:
            self._rollback(db)
            raise

    def _begin(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._fault(exc) from None

    @contextmanager
    def _tx(self) -> Iterator[SQLiteTx]:
        """A write transaction: everything in it commits together, or nothing does.

        Writes that change an answer record it with `_changed` inside the transaction, so
        a change row never exists without its data, nor data without its change row.
        """
        db = self._db
        if getattr(self._local, "batch", False):
            # Inside batch(): a savepoint, so a failed write undoes only itself.
            db.execute("SAVEPOINT write")
            try:
                yield SQLiteTx(db, self._changed)
                db.execute("RELEASE write")
                self._local.wrote = True
            except sqlite3.Error as exc:
                self._rollback(db, savepoint=True)
                raise self._fault(exc) from None
            except BaseException:
                self._rollback(db, savepoint=True)
                raise
            return
        with self._immediate(db):
            yield SQLiteTx(db, self._changed)
            db.execute("COMMIT")

    def _migrate(self) -> None:
        """Bring the schema up to date; a current one is only read (a read-only folder works)."""
        db = self._db
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
                return
        except sqlite3.Error as exc:
            raise self._fault(exc) from None
        if self.read_only:
            shown = os.path.realpath(self.path)
            raise StoreReadOnly(
                f"The database {shown} needs a schema upgrade, but its folder is read-only. "
                "Make it writable once so the upgrade can run."
            )
        with self._immediate(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
