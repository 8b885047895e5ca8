"""The embedded store's user reads (aliases a query of their own) and bulk load; writes of
one user and counting are shared (`shared/users.py`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from ...errors import Conflict
from ...model import AuditAction, User
from .. import rows
from ..base import ChangeKind, UserQuery, address_hashes
from ..rows import USER_COLUMNS as _USER_COLUMNS
from ..rows import now
from ..shared import audit
from ..shared.users import INSERT, UserWrites
from .connection import SQLiteBase
from .schema import CODEC
from .schema import to_text as _ts


class Users(UserWrites, SQLiteBase):
    """Users, their other addresses, finding them and searching them."""

    @staticmethod
    def _user(row: sqlite3.Row, aliases: list[str]) -> User:
        return rows.user(row, aliases, CODEC)

    def _aliases(self, user_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT address FROM aliases WHERE user_id = ? ORDER BY address", (user_id,)
        )
        return [r[0] for r in rows]

    def add_users(
        self, users: list[User], *, actor: str = "system", via: str = "cli"
    ) -> list[User]:
        """Insert many users in one transaction with a handful of statements (initial
        directory load); all or nothing, Conflict if any id or address is taken."""
        at = now()
        addresses, ids = rows.new_users(users, at)
        with self._tx() as tx:
            db = tx.db
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
            db.executemany(INSERT, [self._user_row(u) for u in users])
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
                audit.INSERT,
                [(_ts(at), actor, u.id, AuditAction.USER_ADD.value, via, u.address) for u in users],
            )
            tx.changed(ChangeKind.USER, ids)
        return users

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

    def domains(self) -> set[str]:
        rows = self._db.execute(
            "SELECT DISTINCT substr(address, instr(address, '@') + 1) FROM users UNION "
            "SELECT DISTINCT substr(address, instr(address, '@') + 1) FROM aliases"
        )
        return {r[0] for r in rows}
