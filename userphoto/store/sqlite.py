"""The embedded store: one SQLite file in WAL mode, photo bytes as blobs beside their rows."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ..errors import (
    Conflict,
    NoPhoto,
    NoPreview,
    StoreError,
    StoreFull,
    StoreLocked,
    StoreReadOnly,
    UnknownUser,
)
from ..imaging import Rendered
from ..model import (
    Account,
    ApiToken,
    AuditEntry,
    CropBox,
    CropDecision,
    CropReason,
    DirectoryThumbnail,
    Partner,
    Photo,
    PhotoState,
    Picture,
    User,
    Visibility,
)
from ..resolve import usable_url
from . import serving_sql
from .base import (
    Change,
    ChangeKind,
    Lease,
    PhotoStatus,
    Serving,
    StatusFilter,
    StatusQuery,
    Store,
    Table,
    UserQuery,
    address_hashes,
)
from .status_sql import STATUS_FILTERS

CHANGES_KEPT = 100_000  # change rows kept for followers; one further behind starts over
CHANGES_POLL = 0.05  # seconds between looks at the change table in wait_for_changes

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
]

_USER_COLUMNS = (
    "id, address, display_name, account, picture, picture_url, visibility, removal_record, "
    "directory_gone, source, attributes, created, updated"
)
_PHOTO_COLUMNS = (
    "id, user_id, version, state, crop, source_hash, source_format, source_width, "
    "source_height, sizes, created, actor, via, crop_reason, crop_confidence, crop_note"
)

# One row per user with their photo facts (`PhotoStatus`): the saved photo, a pending
# preview, the directory thumbnail. `photos_current` and the thumbnails' primary key serve
# the joins, so a page costs one indexed walk of `users` by address.
_STATUS_JOINS = (
    "LEFT JOIN photos p ON p.user_id = u.id AND p.state = 'saved' "
    "LEFT JOIN directory_thumbnails d ON d.user_id = u.id"
)
_STATUS_SELECT = (
    "SELECT "
    + ", ".join(f"u.{c.strip()}" for c in _USER_COLUMNS.split(","))
    + ", p.sizes, p.created, "
    "EXISTS (SELECT 1 FROM photos v WHERE v.user_id = u.id AND v.state = 'preview'), "
    "d.user_id IS NOT NULL, d.jpeg IS NOT NULL, d.problem, d.seen, d.written_by_us, "
    "p.crop_reason "
    f"FROM users u {_STATUS_JOINS}"
)


def now() -> datetime:
    return datetime.now(UTC)


def _writable(path: str) -> bool:
    """Whether this process may write the store file and create its -wal/-shm beside it."""
    return os.access(path, os.W_OK) and os.access(Path(path).absolute().parent, os.W_OK)


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# How long a write waits for another process's write transaction before it is refused
# (503 + Retry-After on the API): long enough for any ordinary write, short enough that a
# held lock answers instead of piling up requests.
BUSY_SECONDS = 5.0


class SQLiteStore(Store):
    def __init__(self, path: Path | str):
        self.path = str(path)
        self._local = threading.local()
        self.read_only = False  # set when the file or its folder cannot be written
        self._migrate()

    # --- plumbing ----------------------------------------------------------------------
    @property
    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.create_function("usable_url", 1, usable_url, deterministic=True)
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
        self._begin(db)
        self._local.batch, self._local.wrote = True, False
        try:
            yield
            db.execute("COMMIT" if self._local.wrote else "ROLLBACK")
        except sqlite3.Error as exc:
            self._rollback(db)
            raise self._fault(exc) from None
        except BaseException:
            self._rollback(db)
            raise
        finally:
            self._local.batch = False

    def _begin(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._fault(exc) from None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything in it commits together, or nothing does.

        Writes that change an answer record it with `_changed` inside the transaction, so
        a change row never exists without its data, nor data without its change row.
        """
        db = self._db
        if getattr(self._local, "batch", False):
            # Inside batch(): a savepoint, so a failed write undoes only itself.
            db.execute("SAVEPOINT write")
            try:
                yield db
                db.execute("RELEASE write")
                self._local.wrote = True
            except sqlite3.Error as exc:
                self._rollback(db, savepoint=True)
                raise self._fault(exc) from None
            except BaseException:
                self._rollback(db, savepoint=True)
                raise
            return
        self._begin(db)
        try:
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(db)
            raise self._fault(exc) from None
        except BaseException:
            self._rollback(db)
            raise

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
        self._begin(db)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(db)
            raise self._fault(exc) from None
        except BaseException:
            self._rollback(db)
            raise

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- users -------------------------------------------------------------------------
    def _user(self, row: tuple, aliases: list[str]) -> User:
        return User(
            id=row[0],
            address=row[1],
            display_name=row[2],
            account=Account(row[3]),
            picture=Picture(row[4]),
            picture_url=row[5],
            visibility=Visibility(row[6]),
            removal_record=_dt(row[7]),
            directory_gone=bool(row[8]),
            source=row[9],
            attributes=json.loads(row[10]),
            created=_dt(row[11]),
            updated=_dt(row[12]),
            aliases=aliases,
        )

    def _aliases(self, user_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT address FROM aliases WHERE user_id = ? ORDER BY address", (user_id,)
        )
        return [r[0] for r in rows]

    def _write_addresses(self, db: sqlite3.Connection, user: User) -> None:
        db.execute("DELETE FROM aliases WHERE user_id = ?", (user.id,))
        db.execute("DELETE FROM address_hashes WHERE user_id = ?", (user.id,))
        for alias in user.aliases:
            taken = db.execute(
                "SELECT 1 FROM users WHERE address = ? UNION ALL "
                "SELECT 1 FROM aliases WHERE address = ?",
                (alias, alias),
            ).fetchone()
            if taken:
                raise Conflict(f"The address {alias} already belongs to another user.")
            db.execute("INSERT INTO aliases VALUES (?, ?)", (alias, user.id))
        for address in user.addresses:
            for digest in address_hashes(address):
                db.execute("INSERT OR REPLACE INTO address_hashes VALUES (?, ?)", (digest, user.id))

    @staticmethod
    def _clean(user: User) -> None:
        user.address = user.address.strip().lower()
        user.aliases = sorted({a.strip().lower() for a in user.aliases} - {user.address})

    def _user_row(self, user: User) -> tuple:
        return (
            user.id,
            user.address,
            user.display_name,
            user.account.value,
            user.picture.value,
            user.picture_url,
            user.visibility.value,
            _ts(user.removal_record),
            int(user.directory_gone),
            user.source,
            json.dumps(user.attributes, sort_keys=True),
            _ts(user.created),
            _ts(user.updated),
        )

    def add_user(self, user: User, *, actor: str = "system", via: str = "cli") -> User:
        self._clean(user)
        user.created = user.updated = now()
        with self._tx() as db:
            taken = db.execute(
                "SELECT 1 FROM users WHERE id = ? OR address = ? UNION ALL "
                "SELECT 1 FROM aliases WHERE address = ?",
                (user.id, user.address, user.address),
            ).fetchone()
            if taken:
                raise Conflict(f"A user with the id or address {user.address} already exists.")
            db.execute(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES ({', '.join('?' * 13)})",
                self._user_row(user),
            )
            self._write_addresses(db, user)
            self._audit(db, AuditEntry(now(), actor, user.id, "user.add", via, user.address))
            self._changed(db, ChangeKind.USER, [user.id])
        return user

    def add_users(
        self, users: list[User], *, actor: str = "system", via: str = "cli"
    ) -> list[User]:
        """Insert many users in one transaction with a handful of statements (initial
        directory load); all or nothing, Conflict if any id or address is taken."""
        at = now()
        for user in users:
            self._clean(user)
            user.created = user.updated = at
        addresses = [a for u in users for a in u.addresses]
        ids = [u.id for u in users]
        if len(set(addresses)) != len(addresses) or len(set(ids)) != len(ids):
            raise Conflict("Two of the new users share an id or an address.")
        with self._tx() as db:
            for start in range(0, len(addresses), 400):
                part = addresses[start : start + 400]
                marks = ",".join("?" * len(part))
                taken = db.execute(
                    f"SELECT address FROM users WHERE address IN ({marks}) UNION ALL "
                    f"SELECT address FROM aliases WHERE address IN ({marks})",
                    (*part, *part),
                ).fetchone()
                if taken:
                    raise Conflict(f"The address {taken[0]} already belongs to another user.")
            for start in range(0, len(ids), 800):
                part = ids[start : start + 800]
                taken = db.execute(
                    f"SELECT id FROM users WHERE id IN ({','.join('?' * len(part))})", part
                ).fetchone()
                if taken:
                    raise Conflict(f"A user with the id {taken[0]} already exists.")
            db.executemany(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES ({', '.join('?' * 13)})",
                [self._user_row(u) for u in users],
            )
            db.executemany(
                "INSERT INTO aliases VALUES (?, ?)",
                [(a, u.id) for u in users for a in u.aliases],
            )
            db.executemany(
                "INSERT OR REPLACE INTO address_hashes VALUES (?, ?)",
                [(d, u.id) for u in users for a in u.addresses for d in address_hashes(a)],
            )
            db.executemany(
                "INSERT INTO audit (at, actor, user_id, action, via, detail) VALUES (?,?,?,?,?,?)",
                [(_ts(at), actor, u.id, "user.add", via, u.address) for u in users],
            )
            self._changed(db, ChangeKind.USER, ids)
        return users

    def update_user(self, user: User, *, actor: str = "system", via: str = "cli") -> User:
        self._clean(user)
        user.updated = now()
        with self._tx() as db:
            clash = db.execute(
                "SELECT 1 FROM users WHERE address = ? AND id != ? UNION ALL "
                "SELECT 1 FROM aliases WHERE address = ? AND user_id != ?",
                (user.address, user.id, user.address, user.id),
            ).fetchone()
            if clash:
                raise Conflict(f"The address {user.address} already belongs to another user.")
            cur = db.execute(
                "UPDATE users SET address=?, display_name=?, account=?, picture=?, "
                "picture_url=?, visibility=?, removal_record=?, directory_gone=?, source=?, "
                "attributes=?, updated=? WHERE id=?",
                (*self._user_row(user)[1:11], _ts(user.updated), user.id),
            )
            if cur.rowcount == 0:
                raise UnknownUser(f"No user with id {user.id}.")
            self._write_addresses(db, user)
            self._audit(db, AuditEntry(now(), actor, user.id, "user.update", via, ""))
            self._changed(db, ChangeKind.USER, [user.id])
        return user

    def find_user(self, key: str) -> User | None:
        key = key.strip()
        db = self._db
        row = db.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (key,)).fetchone()
        if row is None:
            lowered = key.lower()
            row = db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE address = ? UNION ALL "
                f"SELECT {', '.join('u.' + c.strip() for c in _USER_COLUMNS.split(','))} "
                "FROM aliases a JOIN users u ON u.id = a.user_id WHERE a.address = ?",
                (lowered, lowered),
            ).fetchone()
        return self._user(row, self._aliases(row[0])) if row else None

    def find_user_by_hash(self, digest: str) -> User | None:
        row = self._db.execute(
            "SELECT user_id FROM address_hashes WHERE digest = ?", (digest.lower(),)
        ).fetchone()
        return self.find_user(row[0]) if row else None

    def list_users(self, query: UserQuery = UserQuery()) -> list[User]:
        where, params = self._search(query.search)
        rows = self._db.execute(
            f"SELECT {_USER_COLUMNS} FROM users {where} ORDER BY address LIMIT ? OFFSET ?",
            (*params, query.limit, query.offset),
        ).fetchall()
        return [self._user(r, self._aliases(r[0])) for r in rows]

    def iter_users(self, batch: int = 1000) -> Iterator[User]:
        last = ""
        while True:
            rows = self._db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE address > ? ORDER BY address LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            ids = [r[0] for r in rows]
            aliases: dict[str, list[str]] = {i: [] for i in ids}
            marks = ",".join("?" * len(ids))
            for address, uid in self._db.execute(
                f"SELECT address, user_id FROM aliases WHERE user_id IN ({marks}) ORDER BY address",
                ids,
            ):
                aliases[uid].append(address)
            for r in rows:
                yield self._user(r, aliases[r[0]])
            last = rows[-1][1]

    @staticmethod
    def _search(text: str) -> tuple[str, tuple]:
        text = text.strip().lower()
        if not text:
            return "", ()
        like = f"%{text.replace('%', '').replace('_', '')}%"
        return (
            "WHERE address LIKE ? OR lower(display_name) LIKE ? OR id IN "
            "(SELECT user_id FROM aliases WHERE address LIKE ?)",
            (like, like, like),
        )

    def iter_photo_status(self, batch: int = 5000) -> Iterator[PhotoStatus]:
        last = ""
        while True:
            rows = self._db.execute(
                f"{_STATUS_SELECT} WHERE u.address > ? ORDER BY u.address LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            yield from (self._status(r) for r in rows)
            last = rows[-1][1]

    def _status(self, r: tuple) -> PhotoStatus:
        return PhotoStatus(
            user=self._user(r[:13], []),
            sizes=tuple(int(s) for s in r[13].split(",")) if r[13] else (),
            photo_created=_dt(r[14]),
            has_preview=bool(r[15]),
            directory_usable=bool(r[17]) if r[16] else None,
            directory_problem=r[18],
            directory_seen=_dt(r[19]),
            directory_written_by_us=bool(r[20]),
            crop_reason=r[21],
        )

    @staticmethod
    def _status_where(query: StatusQuery | None) -> tuple[str, tuple]:
        query = query or StatusQuery()
        clauses: list[str] = []
        params: tuple = ()
        text = query.search.strip().lower().replace("%", "").replace("_", "")
        if text:
            like = f"%{text}%"
            clauses.append(
                "(u.address LIKE ? OR lower(u.display_name) LIKE ? OR u.id IN "
                "(SELECT user_id FROM aliases WHERE address LIKE ?))"
            )
            params = (like, like, like)
        clauses.extend(STATUS_FILTERS[StatusFilter(query.filter)])
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def list_photo_status(self, query: StatusQuery | None = None) -> list[PhotoStatus]:
        query = query or StatusQuery()
        where, params = self._status_where(query)
        rows = self._db.execute(
            f"{_STATUS_SELECT} {where} ORDER BY u.address LIMIT ? OFFSET ?",
            (*params, max(0, query.limit), max(0, query.offset)),
        ).fetchall()
        return [self._status(r) for r in rows]

    def count_photo_status(self, query: StatusQuery | None = None) -> int:
        where, params = self._status_where(query)
        if not where:
            return self._db.execute("SELECT count(*) FROM users").fetchone()[0]
        return self._db.execute(
            f"SELECT count(*) FROM users u {_STATUS_JOINS} {where}", params
        ).fetchone()[0]

    def count_users(self, search: str = "") -> int:
        where, params = self._search(search)
        return self._db.execute(f"SELECT count(*) FROM users {where}", params).fetchone()[0]

    # --- photos ------------------------------------------------------------------------
    def _photo(self, row: tuple) -> Photo:
        x, y, size = (int(v) for v in row[4].split(","))
        return Photo(
            id=row[0],
            user_id=row[1],
            version=row[2],
            state=PhotoState(row[3]),
            crop=CropBox(x, y, size),
            source_hash=row[5],
            source_format=row[6],
            source_width=row[7],
            source_height=row[8],
            sizes=tuple(int(s) for s in row[9].split(",") if s),
            created=_dt(row[10]),  # type: ignore[arg-type]
            actor=row[11],
            via=row[12],
            crop_decision=CropDecision(CropReason(row[13]), row[14], row[15]),
        )

    def _require_user(self, db: sqlite3.Connection, user_id: str) -> None:
        if not db.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone():
            raise UnknownUser(f"No user with id {user_id}.")

    def put_photo(
        self, user_id: str, rendered: Rendered, state: PhotoState, *, actor: str, via: str
    ) -> Photo:
        if state not in (PhotoState.SAVED, PhotoState.PREVIEW):
            raise ValueError(f"cannot put a photo in state {state}")
        at = now()
        with self._tx() as db:
            self._require_user(db, user_id)
            version = db.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM photos WHERE user_id = ?", (user_id,)
            ).fetchone()[0]
            # A new preview replaces the old one; a new save replaces the saved one and
            # discards any preview (as Set-UserPhoto without -Preview does).
            self._retire(db, user_id, PhotoState.PREVIEW, PhotoState.CANCELLED)
            if state is PhotoState.SAVED:
                self._retire(db, user_id, PhotoState.SAVED, PhotoState.SUPERSEDED)
                db.execute("UPDATE users SET removal_record = NULL WHERE id = ?", (user_id,))
            cur = db.execute(
                f"INSERT INTO photos ({_PHOTO_COLUMNS.replace('id, ', '', 1)}, thumbnail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    version,
                    state.value,
                    str(rendered.crop),
                    rendered.source.sha256,
                    rendered.source.format,
                    rendered.source.width,
                    rendered.source.height,
                    ",".join(str(s) for s in rendered.sizes),
                    _ts(at),
                    actor,
                    via,
                    rendered.decision.reason.value,
                    rendered.decision.confidence,
                    rendered.decision.note,
                    rendered.thumbnail,
                ),
            )
            photo_id = cur.lastrowid
            db.executemany(
                "INSERT INTO renditions VALUES (?, ?, ?)",
                [(photo_id, size, jpeg) for size, jpeg in rendered.renditions.items()],
            )
            action = "photo.set" if state is PhotoState.SAVED else "photo.preview"
            self._audit(db, AuditEntry(at, actor, user_id, action, via, f"version {version}"))
            self._changed(db, ChangeKind.USER, [user_id])
        photo = self.get_photo(user_id, state)
        assert photo is not None
        return photo

    def _retire(
        self, db: sqlite3.Connection, user_id: str, current: PhotoState, to: PhotoState
    ) -> None:
        """Move a current photo out of service; its renditions go (history keeps the row)."""
        db.execute(
            "DELETE FROM renditions WHERE photo_id IN "
            "(SELECT id FROM photos WHERE user_id = ? AND state = ?)",
            (user_id, current.value),
        )
        db.execute(
            "UPDATE photos SET state = ?, thumbnail = NULL WHERE user_id = ? AND state = ?",
            (to.value, user_id, current.value),
        )

    def get_photo(self, user_id: str, state: PhotoState = PhotoState.SAVED) -> Photo | None:
        row = self._db.execute(
            f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE user_id = ? AND state = ?",
            (user_id, state.value),
        ).fetchone()
        return self._photo(row) if row else None

    def get_rendition(self, photo_id: int, size: int) -> bytes | None:
        row = self._db.execute(
            "SELECT jpeg FROM renditions WHERE photo_id = ? AND size = ?", (photo_id, size)
        ).fetchone()
        return row[0] if row else None

    def get_thumbnail(self, photo_id: int) -> bytes | None:
        row = self._db.execute("SELECT thumbnail FROM photos WHERE id = ?", (photo_id,)).fetchone()
        return row[0] if row else None

    def save_preview(self, user_id: str, *, actor: str, via: str) -> Photo:
        with self._tx() as db:
            row = db.execute(
                "SELECT id, version FROM photos WHERE user_id = ? AND state = 'preview'",
                (user_id,),
            ).fetchone()
            if row is None:
                raise NoPreview("There is no preview to save; upload one with --preview first.")
            self._retire(db, user_id, PhotoState.SAVED, PhotoState.SUPERSEDED)
            db.execute("UPDATE photos SET state = 'saved' WHERE id = ?", (row[0],))
            db.execute("UPDATE users SET removal_record = NULL WHERE id = ?", (user_id,))
            entry = AuditEntry(now(), actor, user_id, "photo.save", via, f"version {row[1]}")
            self._audit(db, entry)
            self._changed(db, ChangeKind.USER, [user_id])
        photo = self.get_photo(user_id)
        assert photo is not None
        return photo

    def cancel_preview(self, user_id: str, *, actor: str, via: str) -> None:
        with self._tx() as db:
            if not db.execute(
                "SELECT 1 FROM photos WHERE user_id = ? AND state = 'preview'", (user_id,)
            ).fetchone():
                raise NoPreview("There is no preview to cancel.")
            self._retire(db, user_id, PhotoState.PREVIEW, PhotoState.CANCELLED)
            self._audit(db, AuditEntry(now(), actor, user_id, "photo.cancel", via, ""))
            self._changed(db, ChangeKind.USER, [user_id])

    def remove_photo(self, user_id: str, *, actor: str, via: str) -> None:
        with self._tx() as db:
            if not db.execute(
                "SELECT 1 FROM photos WHERE user_id = ? AND state = 'saved'", (user_id,)
            ).fetchone():
                raise NoPhoto("This user has no saved photo to remove.")
            self._retire(db, user_id, PhotoState.SAVED, PhotoState.REMOVED)
            db.execute("UPDATE users SET removal_record = ? WHERE id = ?", (_ts(now()), user_id))
            self._audit(db, AuditEntry(now(), actor, user_id, "photo.remove", via, ""))
            self._changed(db, ChangeKind.USER, [user_id])

    def clear_removal_record(self, user_id: str, *, actor: str, via: str) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE users SET removal_record = NULL "
                "WHERE id = ? AND removal_record IS NOT NULL",
                (user_id,),
            )
            if cur.rowcount:
                self._audit(db, AuditEntry(now(), actor, user_id, "photo.clear_record", via, ""))
                self._changed(db, ChangeKind.USER, [user_id])
            return bool(cur.rowcount)

    def photo_history(self, user_id: str) -> list[Photo]:
        rows = self._db.execute(
            f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE user_id = ? ORDER BY version DESC",
            (user_id,),
        ).fetchall()
        return [self._photo(r) for r in rows]

    def saved_photo_hashes(self) -> dict[str, str]:
        rows = self._db.execute("SELECT user_id, source_hash FROM photos WHERE state = 'saved'")
        return dict(rows.fetchall())

    # --- directory thumbnail slot -----------------------------------------------------------
    def put_directory_thumbnail(self, thumb: DirectoryThumbnail) -> None:
        self.put_directory_thumbnails([thumb])

    def put_directory_thumbnails(self, thumbs: list[DirectoryThumbnail]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO directory_thumbnails VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        thumb.user_id,
                        thumb.jpeg,
                        thumb.raw_hash,
                        thumb.raw_size,
                        thumb.width,
                        thumb.height,
                        thumb.problem,
                        _ts(thumb.seen),
                        int(thumb.written_by_us),
                    )
                    for thumb in thumbs
                ],
            )
            self._changed(db, ChangeKind.USER, [t.user_id for t in thumbs])

    def get_directory_thumbnail(self, user_id: str) -> DirectoryThumbnail | None:
        row = self._db.execute(
            "SELECT user_id, jpeg, raw_hash, raw_size, width, height, problem, seen, "
            "written_by_us FROM directory_thumbnails WHERE user_id = ?",
            (user_id,),
        ).fetchone()
        if row is None:
            return None
        user, jpeg, raw_hash, raw_size, width, height, problem, seen, written_by_us = row
        return DirectoryThumbnail(
            user_id=user,
            jpeg=jpeg,
            raw_hash=raw_hash,
            raw_size=raw_size,
            width=width,
            height=height,
            problem=problem,
            seen=datetime.fromisoformat(seen),  # NOT NULL column
            written_by_us=bool(written_by_us),
        )

    def delete_directory_thumbnail(self, user_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM directory_thumbnails WHERE user_id = ?", (user_id,))
            self._changed(db, ChangeKind.USER, [user_id])

    # --- credentials -------------------------------------------------------------------------
    def add_token(self, token: ApiToken) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?)",
                (token.id, token.digest, token.address, int(token.admin), _ts(token.created)),
            )
            self._changed(db, ChangeKind.CREDENTIALS, [None])

    def list_tokens(self) -> list[ApiToken]:
        rows = self._db.execute(
            "SELECT id, digest, address, admin, created FROM api_tokens ORDER BY created, id"
        ).fetchall()
        return [ApiToken(r[0], r[1], r[2], bool(r[3]), _dt(r[4])) for r in rows]  # type: ignore[arg-type]

    def delete_token(self, token_id: str) -> bool:
        with self._tx() as db:
            gone = db.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,)).rowcount
            if gone:
                self._changed(db, ChangeKind.CREDENTIALS, [None])
            return bool(gone)

    def put_partner(self, partner: Partner) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO partners VALUES (?, ?, ?, ?)",
                (partner.domain, partner.algorithm, partner.key, _ts(partner.created)),
            )
            self._changed(db, ChangeKind.CREDENTIALS, [None])

    def list_partners(self) -> list[Partner]:
        rows = self._db.execute(
            "SELECT domain, algorithm, key, created FROM partners ORDER BY domain"
        ).fetchall()
        return [Partner(r[0], r[1], r[2], _dt(r[3])) for r in rows]  # type: ignore[arg-type]

    def delete_partner(self, domain: str) -> bool:
        with self._tx() as db:
            gone = db.execute("DELETE FROM partners WHERE domain = ?", (domain,)).rowcount
            if gone:
                self._changed(db, ChangeKind.CREDENTIALS, [None])
            return bool(gone)

    # --- audit, state, change tracking ------------------------------------------------------
    @staticmethod
    def _audit(db: sqlite3.Connection, e: AuditEntry) -> None:
        db.execute(
            "INSERT INTO audit (at, actor, user_id, action, via, detail) VALUES (?,?,?,?,?,?)",
            (_ts(e.at), e.actor, e.user_id, e.action, e.via, e.detail),
        )

    def audit(self, entry: AuditEntry) -> None:
        with self._tx() as db:
            self._audit(db, entry)

    def audit_log(self, user_id: str | None = None, limit: int = 50) -> list[AuditEntry]:
        where, params = ("WHERE user_id = ?", (user_id,)) if user_id else ("", ())
        rows = self._db.execute(
            f"SELECT at, actor, user_id, action, via, detail FROM audit {where} "
            "ORDER BY id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [AuditEntry(_dt(r[0]), *r[1:]) for r in rows]  # type: ignore[arg-type]

    def get_state(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        # Adapter bookkeeping (sync cursors and status) changes no served answer.
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    # --- the change feed ---------------------------------------------------------------------
    @staticmethod
    def _changed(
        db: sqlite3.Connection, kind: ChangeKind, user_ids: list[str] | list[None]
    ) -> None:
        """Change rows for a write, inside its transaction; old rows pruned now and then."""
        cur = db.executemany(
            "INSERT INTO changes (kind, user_id) VALUES (?, ?)",
            [(kind.value, uid) for uid in dict.fromkeys(user_ids)],
        )
        last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        if cur.rowcount and last and last[0] % 1000 < cur.rowcount:  # about every 1000 rows
            db.execute("DELETE FROM changes WHERE seq <= ?", (last[0] - CHANGES_KEPT,))

    def changes_since(self, seq: int, limit: int = 10_000) -> list[Change]:
        db = self._db
        rows = db.execute(
            "SELECT seq, kind, user_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        if rows and rows[0][0] == seq + 1:
            return [Change(r[0], ChangeKind(r[1]), r[2]) for r in rows]
        latest = self.generation()
        if latest == seq:
            return []
        # Rows the follower missed were pruned (or the store was replaced): start over.
        return [Change(latest, ChangeKind.ORG, None)]

    def wait_for_changes(self, seq: int, timeout: float) -> list[Change]:
        deadline = time.monotonic() + timeout
        while True:
            changes = self.changes_since(seq)
            if changes or time.monotonic() >= deadline:
                return changes
            time.sleep(min(CHANGES_POLL, max(0.0, deadline - time.monotonic())))

    def generation(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return row[0] if row else 0

    # --- leases --------------------------------------------------------------------------------
    @staticmethod
    def _lease(name: str, row: tuple) -> Lease:
        return Lease(
            name, row[0], datetime.fromtimestamp(row[1], UTC), datetime.fromtimestamp(row[2], UTC)
        )

    def take_lease(self, name: str, holder: str, ttl: float) -> Lease | None:
        at = time.time()
        with self._tx() as db:  # BEGIN IMMEDIATE: one taker at a time
            row = db.execute(
                "INSERT INTO leases VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "since = CASE WHEN holder = excluded.holder THEN since ELSE excluded.since END, "
                "holder = excluded.holder, expires = excluded.expires "
                "WHERE holder = excluded.holder OR expires < ? "
                "RETURNING holder, since, expires",
                (name, holder, at, at + ttl, at),
            ).fetchone()
        return self._lease(name, row) if row else None

    def release_lease(self, name: str, holder: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def get_lease(self, name: str) -> Lease | None:
        row = self._db.execute(
            "SELECT holder, since, expires FROM leases WHERE name = ?", (name,)
        ).fetchone()
        return self._lease(name, row) if row else None

    # --- the write-back queue ---------------------------------------------------------------
    def queue_writeback(self, user_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO writeback_queue (user_id, queued) VALUES (?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET version = version + 1",
                (user_id, _ts(now())),
            )

    def claim_writebacks(self, worker: str, limit: int, hold: float) -> list[tuple[str, int]]:
        at = time.time()
        with self._tx() as db:  # BEGIN IMMEDIATE: one claimer at a time
            rows = db.execute(
                "UPDATE writeback_queue SET claimed_by = ?, claimed_until = ? WHERE user_id IN "
                "(SELECT user_id FROM writeback_queue WHERE claimed_until IS NULL "
                "OR claimed_until < ? ORDER BY queued, user_id LIMIT ?) "
                "RETURNING user_id, version",
                (worker, at + hold, at, limit),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def finish_writeback(self, user_id: str, version: int) -> None:
        with self._tx() as db:
            gone = db.execute(
                "DELETE FROM writeback_queue WHERE user_id = ? AND version = ?", (user_id, version)
            ).rowcount
            if not gone:  # queued again meanwhile: free it for the next claim
                db.execute(
                    "UPDATE writeback_queue SET claimed_by = NULL, claimed_until = NULL "
                    "WHERE user_id = ?",
                    (user_id,),
                )

    def pending_writebacks(self) -> list[str]:
        rows = self._db.execute("SELECT user_id FROM writeback_queue ORDER BY queued, user_id")
        return [r[0] for r in rows]

    # --- moving a whole deployment --------------------------------------------------------
    @staticmethod
    def _from_row(table: Table, row: tuple) -> tuple:
        out = []
        for column, value in zip(table.columns, row, strict=True):
            if value is None:
                pass
            elif column in table.times:
                value = _dt(value)
            elif column in table.flags:
                value = bool(value)
            elif column in table.json:
                value = json.loads(value)
            elif column in table.int_lists:
                value = tuple(int(v) for v in value.split(",") if v)
            out.append(value)
        return tuple(out)

    @staticmethod
    def _to_row(table: Table, row: tuple) -> tuple:
        out = []
        for column, value in zip(table.columns, row, strict=True):
            if value is None:
                pass
            elif column in table.times:
                value = _ts(value)
            elif column in table.flags:
                value = int(value)
            elif column in table.json:
                value = json.dumps(value, sort_keys=True)
            elif column in table.int_lists:
                value = ",".join(str(v) for v in value)
            out.append(value)
        return tuple(out)

    def dump_rows(self, table: Table, after: tuple | None, limit: int) -> list[tuple]:
        key = ", ".join(table.key)
        where, params = "", ()
        if after is not None:
            where = f"WHERE ({key}) > ({', '.join('?' * len(after))})"
            params = tuple(after)
        rows = self._db.execute(
            f"SELECT {', '.join(table.columns)} FROM {table.name} {where} ORDER BY {key} LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [self._from_row(table, r) for r in rows]

    def last_key(self, table: Table) -> tuple | None:
        order = ", ".join(f"{k} DESC" for k in table.key)
        row = self._db.execute(
            f"SELECT {', '.join(table.key)} FROM {table.name} ORDER BY {order} LIMIT 1"
        ).fetchone()
        return tuple(row) if row else None

    def load_rows(self, table: Table, rows: list[tuple]) -> int:
        try:
            with self._tx() as db:
                before = db.total_changes
                db.executemany(
                    f"INSERT OR IGNORE INTO {table.name} ({', '.join(table.columns)}) "
                    f"VALUES ({', '.join('?' * len(table.columns))})",
                    [self._to_row(table, r) for r in rows],
                )
                return db.total_changes - before
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"{table.name}: {exc}") from None

    def finish_load(self) -> None:
        with self._tx() as db:  # followers drop everything they had
            self._changed(db, ChangeKind.ORG, [None])

    def domains(self) -> set[str]:
        rows = self._db.execute(
            "SELECT DISTINCT substr(address, instr(address, '@') + 1) FROM users UNION "
            "SELECT DISTINCT substr(address, instr(address, '@') + 1) FROM aliases"
        )
        return {r[0] for r in rows}

    # --- serving: one read per cache miss (SQL in serving_sql) ------------------------------
    def serving(
        self, key: str, size: int | None = None, *, by_hash: bool = False
    ) -> Serving | None:
        sql = serving_sql.SQLITE_BY_HASH if by_hash else serving_sql.SQLITE_BY_KEY
        row = self._db.execute(sql, serving_sql.params(key, size)).fetchone()
        if row is None or row[0] is None:
            self._serving_row(serving_sql.SQLITE_STAND_IN)  # a found user's decoding work
            return None
        return self._serving_row(row)

    def _serving_row(self, row: tuple) -> Serving:
        at = serving_sql.PHOTO_AT
        photo = self._photo(row[at : serving_sql.DIRECTORY_AT]) if row[at] is not None else None
        d = row[serving_sql.DIRECTORY_AT : serving_sql.RENDITION_AT]
        directory = (
            DirectoryThumbnail(
                user_id=d[0],
                jpeg=d[1],
                raw_hash=d[2],
                raw_size=d[3],
                width=d[4],
                height=d[5],
                problem=d[6],
                seen=datetime.fromisoformat(d[7]),
                written_by_us=bool(d[8]),
            )
            if d[0] is not None
            else None
        )
        r_size, r_jpeg = row[serving_sql.RENDITION_AT :]
        return Serving(
            self._user(row, sorted(json.loads(row[serving_sql.ALIASES_AT]))),
            photo,
            directory,
            (r_size, r_jpeg) if r_jpeg is not None else None,
        )
