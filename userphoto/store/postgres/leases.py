"""The scale-out store's leases: the one active sync among several processes and nodes."""

from __future__ import annotations

from ..base import Lease
from .connection import PostgresBase


class Leases(PostgresBase):
    """Named leases; the database's clock decides, so nodes' clocks need not agree."""

    def take_lease(self, name: str, holder: str, ttl: float) -> Lease | None:
        with self._tx() as tx:
            row = tx.conn.execute(
                "INSERT INTO leases VALUES (%(n)s, %(h)s, now(), now() + %(ttl)s * interval '1 s') "
                "ON CONFLICT (name) DO UPDATE SET since = CASE "
                "WHEN leases.holder = excluded.holder THEN leases.since ELSE excluded.since END, "
                "holder = excluded.holder, "
                "expires = excluded.expires "
                "WHERE leases.holder = excluded.holder OR leases.expires < now() "
                "RETURNING holder, since, expires",
                {"n": name, "h": holder, "ttl": ttl},
            ).fetchone()
        return Lease(name, *row) if row else None

    def release_lease(self, name: str, holder: str) -> None:
        with self._tx() as tx:
            tx.conn.execute("DELETE FROM leases WHERE name = %s AND holder = %s", (name, holder))

    def get_lease(self, name: str) -> Lease | None:
        row = self._one("SELECT holder, since, expires FROM leases WHERE name = %s", (name,))
        return Lease(name, *row) if row else None
