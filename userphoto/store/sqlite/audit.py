"""The embedded store's audit log."""

from __future__ import annotations

import sqlite3

from ...model import AuditEntry
from .. import rows as shared
from .connection import SQLiteBase
from .schema import CODEC
from .schema import to_text as _ts


class AuditLog(SQLiteBase):
    """Who did what to whom, newest first."""

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
        return [shared.audit_entry(r, CODEC) for r in rows]
