"""The scale-out store's adapter state: small named values (sync cursors and status)."""

from __future__ import annotations

from .connection import PostgresBase


class AdapterState(PostgresBase):
    """Named values the adapters keep between runs."""

    def get_state(self, key: str) -> str | None:
        row = self._one("SELECT value FROM state WHERE key = %s", (key,))
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        # Adapter bookkeeping (sync cursors and status) changes no served answer.
        with self._tx() as tx:
            tx.conn.execute(
                "INSERT INTO state VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
