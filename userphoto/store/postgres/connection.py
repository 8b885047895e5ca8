"""The scale-out store's plumbing: pools, the read replica, transactions and publishing
their changes, migrations."""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ...errors import Conflict, StoreUnavailable
from ...redaction import redact
from .. import serving_sql
from ..base import ChangeKind
from ..sql import Dialect, SQLStore
from .schema import CODEC, MIGRATIONS

# Statements take `?` marks (made `%s` by `marked`); LIKE has no escape character, as SQLite's.
DIALECT = Dialect(
    "postgresql",
    "%s",
    CODEC,
    "LIKE ? ESCAPE ''",
    " FOR UPDATE",
    ' COLLATE "C"',
    serving_sql.POSTGRES,
)
_MARKED: dict[str, str] = {}


def marked(sql: str) -> str:
    """A shared statement with PostgreSQL's marks (`?` → `%s`), translated once per text."""
    text = _MARKED.get(sql)
    if text is None:
        text = sql.replace("?", "%s")
        if len(_MARKED) < 4096:  # the shared texts are a few hundred; never grow unbounded
            _MARKED[sql] = text
    return text


CHANNEL = "userphoto_changes"
# Advisory lock keys ("upho" + purpose): schema migrations, change numbering.
MIGRATION_LOCK = 0x7570686F0001
CHANGE_LOCK = 0x7570686F0002
# More distinct users than this changed in one transaction (a bulk load): one ORG change.
MAX_USER_CHANGES = 1000
# A pooled connection returned less than this many seconds ago is handed out unpinged.
FRESH_CONNECTION = 1.0
# Change rows kept for followers; older ones go (a follower behind them gets one ORG change).
KEEP_CHANGES = 100_000
KEEP_CHANGES_FOR = "24 hours"


# psycopg_pool logs each failed reconnect (several lines, libpq's own) through Python's
# last-resort handler when nothing is configured; the store reports failures itself, in one
# line with the cause and the fix (`connect_failure`).
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())


def _info(url: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return {}


def describe(url: str) -> str:
    """host:port/dbname of a connection URL: for messages (never the password)."""
    info = _info(url)
    if not info:
        return "the configured PostgreSQL database"
    host = info.get("host") or "localhost"
    return f"{host}:{info.get('port') or 5432}/{info.get('dbname') or info.get('user') or ''}"


# libpq's connection errors carry no SQLSTATE: they are recognized by their text. Each names
# the fix; `{user}` and `{db}` are the URL's role and database.
_CAUSES = (
    (r'database "(?P<db>[^"]+)" does not exist',
     'database "{db}" does not exist; create it: createdb -O {user} {db}'),
    (r'role "(?P<user>[^"]+)" does not exist',
     'role "{user}" does not exist; create it: createuser {user}'),
    (r'password authentication failed for user "(?P<user>[^"]+)"',
     'wrong password for role "{user}"; correct it in [store] url or ~/.pgpass'),
    (r"no password supplied",
     'role "{user}" needs a password; put it in ~/.pgpass (or the [store] url)'),
    (r"no pg_hba\.conf entry",
     "the server refuses this client (pg_hba.conf); allow this host and role there"),
    (r'permission denied for database "(?P<db>[^"]+)"',
     'role "{user}" may not connect to database "{db}"; GRANT CONNECT ON DATABASE {db} TO {user}'),
    (r"Connection refused",
     "not reachable (connection refused); start PostgreSQL there, or correct the host and "
     "port in [store] url"),
    (r"failed to resolve host '(?P<host>[^']*)'",
     "not reachable: host {host} is unknown; correct the host in [store] url"),
    (r"timeout expired|timed out",
     "not reachable (no answer in time); check the host, the port and any firewall between"),
    (r"too many clients|remaining connection slots",
     "the server has no connection slots left; raise max_connections or close others"),
    (r"the database system is (starting up|shutting down|in recovery mode)",
     "the server is starting or stopping; retry in a moment"),
)  # fmt: skip


def connect_failure(url: str, exc: BaseException) -> str:
    """Why connecting to `url` failed and what to do, in one line without any password."""
    where = describe(url)
    if isinstance(exc, PoolTimeout):
        return (
            f"The PostgreSQL database at {where} gave no connection in time (every pooled "
            "connection busy, or the server stopped answering); check that it is running, "
            "then retry."
        )
    text = str(exc)
    info = _info(url)
    fields = {
        "user": info.get("user") or _os_user(),
        "db": info.get("dbname") or info.get("user") or _os_user(),
        "host": info.get("host") or "localhost",
    }
    for pattern, advice in _CAUSES:
        found = re.search(pattern, text)
        if found:
            fields.update({k: v for k, v in found.groupdict().items() if v})
            return f"The PostgreSQL database at {where}: {advice.format(**fields)}."
    # Something else: libpq's first line, without its "connection failed: ..." preamble.
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    line = line.rpartition("failed: ")[2] or line
    return (
        f"The PostgreSQL database at {where}: not reachable ({redact(line)}); check that it "
        "is running, then retry."
    )


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "userphoto"


def probe(url: str, timeout: float = 2.0) -> None:
    """Connect once and leave: StoreUnavailable with the cause and the fix if that fails."""
    try:
        psycopg.Connection.connect(url, connect_timeout=max(1, int(timeout))).close()
    except psycopg.Error as exc:
        raise StoreUnavailable(connect_failure(url, exc)) from None


@dataclass
class _Tx:
    """An open write transaction and the changes it will publish at commit."""

    conn: psycopg.Connection
    changes: list[tuple[ChangeKind, str | None]] = field(default_factory=list)

    # `sql.Tx`: shared statements, their marks made PostgreSQL's.
    def one(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(marked(sql), params).fetchone()

    def all(self, sql: str, params: Any = ()) -> list[Any]:
        return self.conn.execute(marked(sql), params).fetchall()

    def run(self, sql: str, params: Any = ()) -> int:
        return self.conn.execute(marked(sql), params).rowcount

    def many(self, sql: str, params: Iterable[Any]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(marked(sql), params)

    def insert(self, sql: str, params: Any) -> int:
        row = self.conn.execute(marked(sql) + " RETURNING id", params).fetchone()
        return row[0]  # type: ignore[index]

    def changed(self, kind: ChangeKind, user_ids: Iterable[str | None] = (None,)) -> None:
        self.changes.extend((kind, uid) for uid in user_ids)


class PostgresBase(SQLStore):
    """What every job of the store stands on; `PostgresStore` (in `__init__`) joins them."""

    dialect = DIALECT

    def __init__(
        self,
        url: str,
        *,
        read_url: str | None = None,
        pool_size: int = 8,
        timeout: float = 2.0,
    ):
        """`read_url`: a hot standby of the same database; reads go there whenever it has
        replayed every change this store knows of, else to the primary."""
        self.url = url
        self.where = describe(url)
        self._timeout = timeout
        # One plain connection first: a missing database or role is one clear line now,
        # not a pool retrying in the background and a timeout later.
        probe(url, timeout)
        self._local = threading.local()
        self._used: weakref.WeakKeyDictionary[psycopg.Connection, float] = (
            weakref.WeakKeyDictionary()
        )
        self._pool_size = pool_size
        self._revive_lock = threading.Lock()
        self._pool = self._new_pool(url, pool_size, "userphoto")
        self._read_pool = (
            self._new_pool(read_url, pool_size, "userphoto-read") if read_url else None
        )
        self._seen = 0  # the newest change this store knows committed
        self._seen_lock = threading.Lock()
        self._replica_at = -1  # the newest change the replica was seen to hold
        self.replica_reads = 0  # reads the replica answered (for tests and monitoring)
        self._down_since: float | None = None
        self._listen_lock = threading.Lock()
        self._listener: psycopg.Connection | None = None
        try:
            self._migrate()
        except BaseException:
            self._close_pools()  # no reconnecting threads left behind
            raise

    def _new_pool(self, url: str, size: int, name: str) -> ConnectionPool:
        pool = ConnectionPool(
            url,
            min_size=1,
            max_size=size,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(self._timeout))},
            configure=self._configure,
            reset=self._returned,
            timeout=self._timeout,
            name=name,
            open=False,
        )
        pool.open(wait=False)
        return pool

    def _close_pools(self) -> None:
        self._pool.close()
        if self._read_pool is not None:
            self._read_pool.close()

    @staticmethod
    def _configure(conn: psycopg.Connection) -> None:
        conn.execute("SET TIME ZONE 'UTC'")

    def _returned(self, conn: psycopg.Connection) -> None:
        self._used[conn] = time.monotonic()

    def _check(self, conn: psycopg.Connection) -> None:
        """At checkout (`_checkout`), a connection idle for a while is pinged (one empty round
        trip), so a restart or a killed backend is noticed before a caller uses it. One used
        moments ago skips the ping: on the hot path it would cost as much as the query
        itself; if it did die meanwhile, that one call answers StoreUnavailable."""
        if time.monotonic() - self._used.get(conn, 0.0) > FRESH_CONNECTION:
            ConnectionPool.check_connection(conn)

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(connect_failure(self.url, exc))

    # The read replica: reads go there once it has replayed every change this store knows of.
    def _saw(self, seq: int) -> None:
        """This store now knows that change `seq` committed (its own write, or followed)."""
        if seq > self._seen:
            with self._seen_lock:  # threads racing here must never move it backwards
                self._seen = max(self._seen, seq)

    def _replica_current(self) -> bool:
        """Whether the replica holds every change this store has seen; asks it only when it
        may be behind, so in steady state a read costs no extra round trip."""
        if self._read_pool is None:
            return False
        if self._seen <= self._replica_at:
            return True
        try:
            with self._read_pool.connection(timeout=0.5) as conn:
                row = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
        except (PoolTimeout, psycopg.OperationalError):
            return False  # replica down or restarting: the primary answers
        self._replica_at = max(self._replica_at, row[0] if row else 0)
        return self._seen <= self._replica_at

    @contextmanager
    def _connection(self, *, read: bool = False) -> Iterator[psycopg.Connection]:
        """The current batch's connection, or one from the pool for this call (`read`: the
        replica's pool when it is current)."""
        tx = getattr(self._local, "batch", None)
        if tx is not None:
            yield tx.conn
            return
        if read and self._replica_current():
            try:
                with self._read_pool.connection(timeout=0.5) as conn:  # type: ignore[union-attr]
                    self.replica_reads += 1
                    yield conn
                return
            except (PoolTimeout, psycopg.OperationalError) as exc:
                self._replica_at = -1  # ask again before trusting it; this read fails
                raise self._unavailable(exc) from exc
        pool, conn = self._checkout()
        try:
            yield conn
        except psycopg.OperationalError as exc:  # the connection died under the call
            self._went_down()
            raise self._unavailable(exc) from exc
        finally:
            if pool is not None:
                pool.putconn(conn)
            else:
                conn.close()

    # --- losing the database and getting it back ----------------------------------------------
    # psycopg_pool retries lost connections with a backoff (1, 2, 4... s) and sleeps as long
    # between failed checks: left to it, the first requests after the database returns
    # would wait for a timer. So the store checks connections itself, and while the database
    # is down it bypasses the pool: each call tries a connection of its own (refused at once
    # while the database is down: 503 without a wait), and the first that connects serves
    # its call on it and puts a fresh pool in place of the one stuck in its backoff.
    def _checkout(self) -> tuple[ConnectionPool | None, psycopg.Connection]:
        """(pool, connection) from the pool, or (None, a connection of this call's own)."""
        if self._down_since is None:
            pool = self._pool
            try:
                conn = pool.getconn(timeout=self._timeout)
            except PoolClosed:  # replaced meanwhile by a revived one: use that
                pool = self._pool
                conn = self._getconn(pool)
            except (PoolTimeout, psycopg.OperationalError) as exc:
                self._went_down()
                raise self._unavailable(exc) from exc
            try:
                self._check(conn)
                return pool, conn
            except psycopg.Error:
                conn.close()  # dead (a restart, a killed backend): the pool replaces it
                pool.putconn(conn)
        return None, self._direct()

    def _getconn(self, pool: ConnectionPool) -> psycopg.Connection:
        try:
            return pool.getconn(timeout=self._timeout)
        except psycopg.OperationalError as exc:
            self._went_down()
            raise self._unavailable(exc) from exc

    def _went_down(self) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()

    def _direct(self) -> psycopg.Connection:
        """A new connection outside the pool; on success the pool is replaced by a fresh one
        (connecting at once, with no backoff pending) if it may be holding dead connections."""
        suspect = self._pool
        try:
            conn = psycopg.Connection.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self._timeout))
            )
            self._configure(conn)
        except psycopg.OperationalError as exc:
            self._went_down()
            raise self._unavailable(exc) from exc
        with self._revive_lock:
            if self._pool is not suspect:  # another caller has revived it already
                return conn
            old = self._pool
            self._pool = self._new_pool(self.url, self._pool_size, "userphoto")
            self._down_since = None
        # Callers still waiting on the old pool get PoolClosed and move to the new one.
        threading.Thread(target=old.close, name="userphoto-old-pool", daemon=True).start()
        return conn

    # Reads take results in binary format: timestamps, arrays and jsonb load about a quarter
    # faster than from text (measured over org-wide status walks).
    # Shared statements come with `?` marks: `marked` makes them ours (`%s` ones pass as
    # they are). `primary`: a read that must see every commit (a sign-out) skips the replica.
    def _all(self, sql: str, params: Any = (), *, primary: bool = False) -> list[tuple]:
        with self._connection(read=not primary) as conn, conn.cursor(binary=True) as cur:
            return cur.execute(marked(sql), params).fetchall()

    def _one(self, sql: str, params: Any = (), *, primary: bool = False) -> tuple | None:
        with self._connection(read=not primary) as conn, conn.cursor(binary=True) as cur:
            return cur.execute(marked(sql), params).fetchone()

    def _all_named(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """`_all` with rows read by column name."""
        with (
            self._connection(read=True) as conn,
            conn.cursor(binary=True, row_factory=dict_row) as cur,
        ):
            return cur.execute(marked(sql), params).fetchall()

    def _one_named(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        """`_one` with the row read by column name."""
        with (
            self._connection(read=True) as conn,
            conn.cursor(binary=True, row_factory=dict_row) as cur,
        ):
            return cur.execute(marked(sql), params).fetchone()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around many writes (bulk sync): each write inside is a savepoint."""
        if getattr(self._local, "batch", None) is not None:
            yield
            return
        with self._connection() as conn:
            tx = _Tx(conn)
            self._local.batch = tx
            try:
                with self._mapped(), conn.transaction():
                    yield
                    newest = self._publish(conn, tx.changes)
            finally:
                self._local.batch = None
        self._saw(newest)

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """Database errors the user can act on, as our own errors."""
        try:
            yield
        except pg_errors.UniqueViolation as exc:
            raise Conflict(
                f"That id or address already belongs to another user ({exc.diag.constraint_name})."
            ) from None

    @contextmanager
    def _tx(self) -> Iterator[_Tx]:
        """A write transaction: everything in it, and its changes, commit together or not at all."""
        batch: _Tx | None = getattr(self._local, "batch", None)
        if batch is not None:
            mark = len(batch.changes)
            try:
                with self._mapped(), batch.conn.transaction():  # a savepoint
                    yield batch
            except BaseException:
                del batch.changes[mark:]  # the failed write's changes go with it
                raise
            return
        with self._connection() as conn, self._mapped(), conn.transaction():
            tx = _Tx(conn)
            yield tx
            newest = self._publish(conn, tx.changes)
        self._saw(newest)

    def _publish(
        self, conn: psycopg.Connection, pending: list[tuple[ChangeKind, str | None]]
    ) -> int:
        """Number and record the transaction's changes, last thing before commit; returns
        the newest seq (0: nothing to record)."""
        changes = list(dict.fromkeys(pending))
        if not changes:
            return 0
        if sum(kind is ChangeKind.USER for kind, _ in changes) > MAX_USER_CHANGES:
            changes = [(ChangeKind.ORG, None)]
        # Held until commit: the next writer numbers its changes after ours are visible.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHANGE_LOCK,))
        last = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]  # type: ignore[index]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO changes (seq, kind, user_id) VALUES (%s, %s, %s)",
                [(last + i, kind.value, uid) for i, (kind, uid) in enumerate(changes, 1)],
            )
        newest = last + len(changes)
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(newest)))
        if newest // 1000 != last // 1000:  # now and then: prune what followers no longer need
            self._prune(conn, newest)
        return newest

    @staticmethod
    def _prune(conn: psycopg.Connection, newest: int) -> None:
        row = conn.execute(
            "WITH gone AS (DELETE FROM changes WHERE seq < %s AND "
            f"(seq <= %s OR at < now() - interval '{KEEP_CHANGES_FOR}') RETURNING seq) "
            "SELECT max(seq) FROM gone",
            (newest, newest - KEEP_CHANGES),
        ).fetchone()
        if row and row[0] is not None:
            conn.execute(
                "UPDATE change_horizon SET seq = greatest(seq, %s) WHERE id = 1", (row[0],)
            )

    def _migrate(self) -> None:
        with self._connection() as conn, conn.transaction():
            # Nodes starting together: one migrates, the others wait and then see it done.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            version = (row[0] if row else None) or 0
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                conn.execute(script)
                conn.execute("INSERT INTO schema_version VALUES (%s)", (number,))

    @property
    def schema_version(self) -> int:
        row = self._one("SELECT max(version) FROM schema_version")
        return (row[0] if row else None) or 0

    def close(self) -> None:
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self._close_pools()
