"""The embedded store's users: their rows, aliases, address hashes and search."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from ...errors import Conflict, UnknownUser
from ...model import AuditEntry, User
from .. import queries, rows
from ..base import ChangeKind, UserQuery, address_hashes
from ..rows import USER_COLUMNS as _USER_COLUMNS
from ..rows import now
from .connection import SQLiteBase
from .schema import CODEC
from .schema import to_text as _ts


class Users(SQLiteBase):
    """Users, their other addresses, finding them and searching them."""

    @staticmethod
    def _user(row: sqlite3.Row, aliases: list[str]) -> User:
        return rows.user(row, aliases, CODEC)

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

    _clean = staticmethod(rows.clean)

    @staticmethod
    def _user_row(user: User) -> tuple:
        return rows.user_values(user, CODEC)

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
        addresses, ids = rows.new_users(users, at)
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
            # A plain INSERT, as PostgreSQL's COPY: every address was checked free above, so
            # no digest row can exist. (OR REPLACE, with foreign keys on, doubled the cost
            # of the initial load's costliest statement: BENCHMARKS.md, sync.)
            db.executemany(
                "INSERT INTO address_hashes VALUES (?, ?)",
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
        return self._user(row, self._aliases(row["id"])) if row else None

    def find_user_by_hash(self, digest: str) -> User | None:
        row = self._db.execute(
            "SELECT user_id FROM address_hashes WHERE digest = ?", (digest.lower(),)
        ).fetchone()
        return self.find_user(row[0]) if row else None

    def list_users(self, query: UserQuery = UserQuery()) -> list[User]:
        where, params = self._search(query.search)
        found = self._db.execute(
            f"SELECT {_USER_COLUMNS} FROM users u {where} ORDER BY address LIMIT ? OFFSET ?",
            (*params, query.limit, query.offset),
        ).fetchall()
        return [self._user(r, self._aliases(r["id"])) for r in found]

    def iter_users(self, batch: int = 1000) -> Iterator[User]:
        last = ""
        while True:
            found = self._db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE address > ? ORDER BY address LIMIT ?",
                (last, batch),
            ).fetchall()
            if not found:
                return
            ids = [r["id"] for r in found]
            aliases: dict[str, list[str]] = {i: [] for i in ids}
            marks = ",".join("?" * len(ids))
            for address, uid in self._db.execute(
                f"SELECT address, user_id FROM aliases WHERE user_id IN ({marks}) ORDER BY address",
                ids,
            ):
                aliases[uid].append(address)
            for r in found:
                yield self._user(r, aliases[r["id"]])
            last = found[-1]["address"]

    @staticmethod
    def _search(text: str) -> tuple[str, tuple]:
        return queries.where(text, "LIKE ?")

    def count_users(self, search: str = "") -> int:
        where, params = self._search(search)
        return self._db.execute(f"SELECT count(*) FROM users u {where}", params).fetchone()[0]

    def domains(self) -> set[str]:
        rows = self._db.execute(
            "SELECT DISTINCT substr(address, instr(address, '@') + 1) FROM users UNION "
            "SELECT DISTINCT substr(address, instr(address, '@') + 1) FROM aliases"
        )
        return {r[0] for r in rows}
