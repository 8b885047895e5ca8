"""The write-back queue's shared half: finishing a claim and listing what waits. Queuing and
claiming differ (SQLite claims one claimer at a time; PostgreSQL skips locked rows, by the
database's clock) and live in each backend."""

from __future__ import annotations

from ..sql import SQLStore


class WritebackDone(SQLStore):
    """Finished write-backs leave the queue; what is still queued."""

    def finish_writeback(self, user_id: str, version: int) -> None:
        with self._tx() as tx:
            gone = tx.run(
                "DELETE FROM writeback_queue WHERE user_id = ? AND version = ?", (user_id, version)
            )
            if not gone:  # queued again meanwhile: free it for the next claim
                tx.run(
                    "UPDATE writeback_queue SET claimed_by = NULL, claimed_until = NULL "
                    "WHERE user_id = ?",
                    (user_id,),
                )

    def pending_writebacks(self) -> list[str]:
        found = self._all("SELECT user_id FROM writeback_queue ORDER BY queued, user_id")
        return [r[0] for r in found]
