"""The scale-out store's audit log."""

from __future__ import annotations

import psycopg

from ...model import AuditEntry
from .. import rows
from .connection import PostgresBase
from .schema import CODEC


class AuditLog(PostgresBase):
    """Who did what to whom, newest first."""

    @staticmethod
    def _audit(conn: psycopg.Connection, e: AuditEntry) -> None:
        conn.execute(
            "INSERT INTO audit (at, actor, user_id, action, via, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (e.at, e.actor, e.user_id, e.action, e.via, e.detail),
        )

    def audit(self, entry: AuditEntry) -> None:
        with self._tx() as tx:  # changes no served answer: no change row
            self._audit(tx.conn, entry)

    def audit_log(self, user_id: str | None = None, limit: int = 50) -> list[AuditEntry]:
        where, params = ("WHERE user_id = %s", (user_id,)) if user_id else ("", ())
        found = self._all_named(
            f"SELECT at, actor, user_id, action, via, detail FROM audit {where} "
            "ORDER BY id DESC LIMIT %s",
            (*params, limit),
        )
        return [rows.audit_entry(r, CODEC) for r in found]
