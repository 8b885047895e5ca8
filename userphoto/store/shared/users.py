"""Users' writes one at a time, and counting them. Finding, listing and loading users in bulk
differ (PostgreSQL reads aliases as an array in the same row and loads with COPY) and live in
each backend."""

from __future__ import annotations

from ...errors import Conflict, UnknownUser
from ...model import AuditAction, AuditEntry, User
from .. import queries, rows
from ..base import ChangeKind, address_hashes
from ..rows import USER_COLUMNS, now
from ..sql import SQLStore, Tx, upsert
from . import audit

INSERT = f"INSERT INTO users ({USER_COLUMNS}) VALUES ({', '.join('?' * 13)})"
_PUT_HASH = upsert("address_hashes", ("digest", "user_id"), "digest")


class UserWrites(SQLStore):
    """Adding and changing one user, their other addresses and address hashes."""

    _clean = staticmethod(rows.clean)

    def _user_row(self, user: User) -> tuple:
        return rows.user_values(user, self.dialect.codec)

    def _search(self, text: str) -> tuple[str, tuple]:
        return queries.where(text, self.dialect.like)

    def _write_addresses(self, tx: Tx, user: User) -> None:
        tx.run("DELETE FROM aliases WHERE user_id = ?", (user.id,))
        tx.run("DELETE FROM address_hashes WHERE user_id = ?", (user.id,))
        for alias in user.aliases:
            taken = tx.one(
                "SELECT 1 FROM users WHERE address = ? UNION ALL "
                "SELECT 1 FROM aliases WHERE address = ?",
                (alias, alias),
            )
            if taken:
                raise Conflict(f"The address {alias} already belongs to another user.")
        tx.many("INSERT INTO aliases VALUES (?, ?)", [(a, user.id) for a in user.aliases])
        tx.many(_PUT_HASH, [(d, user.id) for a in user.addresses for d in address_hashes(a)])

    def add_user(self, user: User, *, actor: str = "system", via: str = "cli") -> User:
        self._clean(user)
        user.created = user.updated = now()
        with self._tx() as tx:
            taken = tx.one(
                "SELECT 1 FROM users WHERE id = ? OR address = ? UNION ALL "
                "SELECT 1 FROM aliases WHERE address = ?",
                (user.id, user.address, user.address),
            )
            if taken:
                raise Conflict(f"A user with the id or address {user.address} already exists.")
            tx.run(INSERT, self._user_row(user))
            self._write_addresses(tx, user)
            entry = AuditEntry(now(), actor, user.id, AuditAction.USER_ADD, via, user.address)
            audit.write(tx, self.dialect, entry)
            tx.changed(ChangeKind.USER, [user.id])
        return user

    def update_user(self, user: User, *, actor: str = "system", via: str = "cli") -> User:
        self._clean(user)
        user.updated = now()
        with self._tx() as tx:
            clash = tx.one(
                "SELECT 1 FROM users WHERE address = ? AND id <> ? UNION ALL "
                "SELECT 1 FROM aliases WHERE address = ? AND user_id <> ?",
                (user.address, user.id, user.address, user.id),
            )
            if clash:
                raise Conflict(f"The address {user.address} already belongs to another user.")
            changed = tx.run(
                "UPDATE users SET address=?, display_name=?, account=?, picture=?, "
                "picture_url=?, visibility=?, removal_record=?, directory_gone=?, source=?, "
                "attributes=?, updated=? WHERE id=?",
                (*self._user_row(user)[1:11], self.dialect.codec.write_time(user.updated), user.id),
            )
            if changed == 0:
                raise UnknownUser(f"No user with id {user.id}.")
            self._write_addresses(tx, user)
            entry = AuditEntry(now(), actor, user.id, AuditAction.USER_UPDATE, via, "")
            audit.write(tx, self.dialect, entry)
            tx.changed(ChangeKind.USER, [user.id])
        return user

    def count_users(self, search: str = "") -> int:
        where, params = self._search(search)
        return self._one(f"SELECT count(*) FROM users u {where}", params)[0]
