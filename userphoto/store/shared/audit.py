"""The audit log: who did what to whom, newest first."""

from __future__ import annotations

from ...model import AuditEntry
from .. import rows
from ..sql import Dialect, SQLStore, Tx

INSERT = "INSERT INTO audit (at, actor, user_id, action, via, detail) VALUES (?, ?, ?, ?, ?, ?)"


def write(tx: Tx, dialect: Dialect, e: AuditEntry) -> None:
    """The audit line of a write, inside its transaction."""
    tx.run(
        INSERT, (dialect.codec.write_time(e.at), e.actor, e.user_id, str(e.action), e.via, e.detail)
    )


class AuditLog(SQLStore):
    """Who did what to whom, newest first."""

    def _audit(self, tx: Tx, entry: AuditEntry) -> None:
        write(tx, self.dialect, entry)

    def audit(self, entry: AuditEntry) -> None:
        with self._tx() as tx:  # changes no served answer: no change row
            self._audit(tx, entry)

    def audit_log(self, user_id: str | None = None, limit: int = 50) -> list[AuditEntry]:
        where, params = ("WHERE user_id = ?", (user_id,)) if user_id else ("", ())
        found = self._all_named(
            f"SELECT at, actor, user_id, action, via, detail FROM audit {where} "
            "ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [rows.audit_entry(r, self.dialect.codec) for r in found]
