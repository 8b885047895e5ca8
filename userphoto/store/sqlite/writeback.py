"""The embedded store's write-back queue: users whose photo goes back to the directory."""

from __future__ import annotations

import time

from ..rows import now
from .connection import SQLiteBase
from .schema import to_text as _ts


class WritebackQueue(SQLiteBase):
    """The queue as a table; claims are taken one claimer at a time."""

    def queue_writeback(self, user_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO writeback_queue (user_id, queued) VALUES (?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET version = version + 1",
                (user_id, _ts(now())),
            )

    def claim_writebacks(self, worker: str, limit: int, hold: float) -> list[tuple[str, int]]:
        at = time.time()
        with self._tx() as db:  # BEGIN IMMEDIATE: one claimer at a time
            rows = db.execute(
                "UPDATE writeback_queue SET claimed_by = ?, claimed_until = ? WHERE user_id IN "
                "(SELECT user_id FROM writeback_queue WHERE claimed_until IS NULL "
                "OR claimed_until < ? ORDER BY queued, user_id LIMIT ?) "
                "RETURNING user_id, version",
                (worker, at + hold, at, limit),
            ).fetchall()
        return [(r["user_id"], r["version"]) for r in rows]

    def finish_writeback(self, user_id: str, version: int) -> None:
        with self._tx() as db:
            gone = db.execute(
                "DELETE FROM writeback_queue WHERE user_id = ? AND version = ?", (user_id, version)
            ).rowcount
            if not gone:  # queued again meanwhile: free it for the next claim
                db.execute(
                    "UPDATE writeback_queue SET claimed_by = NULL, claimed_until = NULL "
                    "WHERE user_id = ?",
                    (user_id,),
                )

    def pending_writebacks(self) -> list[str]:
        rows = self._db.execute("SELECT user_id FROM writeback_queue ORDER BY queued, user_id")
        return [r[0] for r in rows]
