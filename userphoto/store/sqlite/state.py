"""The embedded store's adapter state: small named values (sync cursors and status)."""

from __future__ import annotations

from .connection import SQLiteBase


class AdapterState(SQLiteBase):
    """Named values the adapters keep between runs."""

    def get_state(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        # Adapter bookkeeping (sync cursors and status) changes no served answer.
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))
