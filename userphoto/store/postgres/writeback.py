"""The scale-out store's write-back queue: users whose photo goes back to the directory.
Finishing and listing are shared (`shared/writeback.py`)."""

from __future__ import annotations

from ..shared.writeback import WritebackDone
from .connection import PostgresBase


class WritebackQueue(WritebackDone, PostgresBase):
    """The queue as a table; claims skip rows another drainer has locked, by the database's
    clock."""

    def queue_writeback(self, user_id: str) -> None:
        with self._tx() as tx:
            tx.conn.execute(
                "INSERT INTO writeback_queue (user_id, queued) VALUES (%s, now()) "
                "ON CONFLICT (user_id) DO UPDATE SET version = writeback_queue.version + 1",
                (user_id,),
            )

    def claim_writebacks(self, worker: str, limit: int, hold: float) -> list[tuple[str, int]]:
        with self._tx() as tx:
            found = tx.conn.execute(
                "UPDATE writeback_queue SET claimed_by = %(w)s, "
                "claimed_until = now() + %(hold)s * interval '1 s' WHERE user_id IN "
                "(SELECT user_id FROM writeback_queue WHERE claimed_until IS NULL "
                "OR claimed_until < now() ORDER BY queued, user_id LIMIT %(n)s "
                "FOR UPDATE SKIP LOCKED) RETURNING user_id, version",
                {"w": worker, "hold": hold, "n": limit},
            ).fetchall()
        return [(r[0], r[1]) for r in found]
