"""The scale-out store's user reads (aliases as an array in the user's row) and bulk load
(COPY); writes of one user and counting are shared (`shared/users.py`)."""

from __future__ import annotations

from collections.abc import Iterator

from ...errors import Conflict
from ...model import AuditAction, User
from .. import rows
from ..base import ChangeKind, UserQuery, address_hashes
from ..rows import USER_COLUMNS as _USER_COLUMNS
from ..rows import now
from ..shared.users import UserWrites
from .connection import PostgresBase
from .schema import CODEC

_U_COLUMNS = ", ".join(f"u.{c.strip()}" for c in _USER_COLUMNS.split(","))
# A user row followed by their aliases (sorted), in one round trip.
_USER_SELECT = (
    f"SELECT {_U_COLUMNS}, "
    "array(SELECT a.address FROM aliases a WHERE a.user_id = u.id ORDER BY a.address) AS aliases "
    "FROM users u"
)


class Users(UserWrites, PostgresBase):
    """Users, their other addresses, finding them and searching them."""

    @staticmethod
    def _user(row: rows.Row, aliases: list[str]) -> User:
        return rows.user(row, aliases, CODEC)

    def add_users(
        self, users: list[User], *, actor: str = "system", via: str = "cli"
    ) -> list[User]:
        """Insert many users in one transaction with COPY (initial directory load); all or
        nothing, Conflict if any id or address is taken."""
        at = now()
        addresses, ids = rows.new_users(users, at)
        with self._tx() as tx:
            conn = tx.conn
            taken = conn.execute(
                "SELECT address FROM users WHERE address = ANY(%s) UNION ALL "
                "SELECT address FROM aliases WHERE address = ANY(%s) LIMIT 1",
                (addresses, addresses),
            ).fetchone()
            if taken:
                raise Conflict(f"The address {taken[0]} already belongs to another user.")
            taken = conn.execute(
                "SELECT id FROM users WHERE id = ANY(%s) LIMIT 1", (ids,)
            ).fetchone()
            if taken:
                raise Conflict(f"A user with the id {taken[0]} already exists.")
            with conn.cursor() as cur:
                with cur.copy(f"COPY users ({_USER_COLUMNS}) FROM STDIN") as copy:
                    for u in users:
                        copy.write_row(self._user_row(u))
                with cur.copy("COPY aliases (address, user_id) FROM STDIN") as copy:
                    for u in users:
                        for a in u.aliases:
                            copy.write_row((a, u.id))
                with cur.copy("COPY address_hashes (digest, user_id) FROM STDIN") as copy:
                    for u in users:
                        for a in u.addresses:
                            for d in address_hashes(a):
                                copy.write_row((d, u.id))
                with cur.copy(
                    "COPY audit (at, actor, user_id, action, via, detail) FROM STDIN"
                ) as copy:
                    for u in users:
                        copy.write_row(
                            (at, actor, u.id, AuditAction.USER_ADD.value, via, u.address)
                        )
            tx.changed(ChangeKind.USER, [u.id for u in users])
        return users

    def find_user(self, key: str) -> User | None:
        key = key.strip()
        row = self._one_named(
            "WITH hit AS (SELECT id FROM users WHERE id = %(key)s "
            "UNION ALL SELECT id FROM users WHERE address = %(low)s "
            "UNION ALL SELECT user_id FROM aliases WHERE address = %(low)s LIMIT 1) "
            f"{_USER_SELECT} JOIN hit ON hit.id = u.id",
            {"key": key, "low": key.lower()},
        )
        return self._user(row, row["aliases"]) if row else None

    def find_user_by_hash(self, digest: str) -> User | None:
        row = self._one_named(
            f"{_USER_SELECT} JOIN address_hashes h ON h.user_id = u.id WHERE h.digest = %s",
            (digest.lower(),),
        )
        return self._user(row, row["aliases"]) if row else None

    def list_users(self, query: UserQuery = UserQuery()) -> list[User]:
        where, params = self._search(query.search)
        found = self._all_named(
            f"{_USER_SELECT} {where} ORDER BY u.address LIMIT %s OFFSET %s",
            (*params, max(0, query.limit), max(0, query.offset)),
        )
        return [self._user(r, r["aliases"]) for r in found]

    def iter_users(self, batch: int = 1000) -> Iterator[User]:
        last = ""
        while True:
            found = self._all_named(
                f"{_USER_SELECT} WHERE u.address > %s ORDER BY u.address LIMIT %s", (last, batch)
            )
            if not found:
                return
            yield from (self._user(r, r["aliases"]) for r in found)
            last = found[-1]["address"]

    def domains(self) -> set[str]:
        rows = self._all(
            "SELECT substr(address, strpos(address, '@') + 1) FROM users UNION "
            "SELECT substr(address, strpos(address, '@') + 1) FROM aliases"
        )
        return {r[0] for r in rows}
