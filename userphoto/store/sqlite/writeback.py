"""The embedded store's write-back queue: users whose photo goes back to the directory.
Finishing and listing are shared (`shared/writeback.py`)."""

from __future__ import annotations

import time

from ..rows import now
from ..shared.writeback import WritebackDone
from .connection import SQLiteBase
from .schema import to_text as _ts


class WritebackQueue(WritebackDone, SQLiteBase):
    """The queue as a table; claims are taken one claimer at a time."""

    def queue_writeback(self, user_id: str) -> None:
        with self._tx() as tx:
            tx.run(
                "INSERT INTO writeback_queue (user_id, queued) VALUES (?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET version = version + 1",
                (user_id, _ts(now())),
            )

    def claim_writebacks(self, worker: str, limit: int, hold: float) -> list[tuple[str, int]]:
        at = time.time()
        with self._tx() as tx:  # BEGIN IMMEDIATE: one claimer at a time
            found = tx.all(
                "UPDATE writeback_queue SET claimed_by = ?, claimed_until = ? WHERE user_id IN "
                "(SELECT user_id FROM writeback_queue WHERE claimed_until IS NULL "
                "OR claimed_until < ? ORDER BY queued, user_id LIMIT ?) "
                "RETURNING user_id, version",
                (worker, at + hold, at, limit),
            )
        return [(r["user_id"], r["version"]) for r in found]
