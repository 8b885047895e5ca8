"""Adapter state: small named values (sync cursors and status)."""

from __future__ import annotations

from ..sql import SQLStore, upsert

_PUT = upsert("state", ("key", "value"), "key")


class AdapterState(SQLStore):
    """Named values the adapters keep between runs."""

    def get_state(self, key: str) -> str | None:
        row = self._one("SELECT value FROM state WHERE key = ?", (key,))
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        # Adapter bookkeeping (sync cursors and status) changes no served answer.
        with self._tx() as tx:
            tx.run(_PUT, (key, value))
