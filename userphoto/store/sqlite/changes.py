"""The embedded store's change feed: what serving processes follow to drop stale answers."""

from __future__ import annotations

import sqlite3
import time

from ..base import Change, ChangeKind
from .connection import SQLiteBase

CHANGES_KEPT = 100_000  # change rows kept for followers; one further behind starts over
CHANGES_POLL = 0.05  # seconds between looks at the change table in wait_for_changes


class ChangeFeed(SQLiteBase):
    """Change rows written with each write, read by followers."""

    @staticmethod
    def _changed(
        db: sqlite3.Connection, kind: ChangeKind, user_ids: list[str] | list[None]
    ) -> None:
        """Change rows for a write, inside its transaction; old rows pruned now and then."""
        cur = db.executemany(
            "INSERT INTO changes (kind, user_id) VALUES (?, ?)",
            [(kind.value, uid) for uid in dict.fromkeys(user_ids)],
        )
        last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        if cur.rowcount and last and last[0] % 1000 < cur.rowcount:  # about every 1000 rows
            db.execute("DELETE FROM changes WHERE seq <= ?", (last[0] - CHANGES_KEPT,))

    def changes_since(self, seq: int, limit: int = 10_000) -> list[Change]:
        db = self._db
        rows = db.execute(
            "SELECT seq, kind, user_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        if rows and rows[0]["seq"] == seq + 1:
            return [Change(r["seq"], ChangeKind(r["kind"]), r["user_id"]) for r in rows]
        latest = self.latest_seq()
        if latest == seq:
            return []
        # Rows the follower missed were pruned (or the store was replaced): start over.
        return [Change(latest, ChangeKind.ORG, None)]

    def wait_for_changes(self, seq: int, timeout: float) -> list[Change]:
        deadline = time.monotonic() + timeout
        while True:
            changes = self.changes_since(seq)
            if changes or time.monotonic() >= deadline:
                return changes
            time.sleep(min(CHANGES_POLL, max(0.0, deadline - time.monotonic())))

    def latest_seq(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return row[0] if row else 0
