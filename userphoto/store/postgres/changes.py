"""The scale-out store's change feed: what serving nodes follow to drop stale answers."""

from __future__ import annotations

import time

import psycopg

from ..base import Change, ChangeKind
from .connection import CHANNEL, PostgresBase


class ChangeFeed(PostgresBase):
    """Followers read the change rows and wait on LISTEN/NOTIFY."""

    def latest_seq(self) -> int:
        with self._connection() as conn:  # the primary: it defines what is current
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
        self._saw(row[0])  # type: ignore[index]
        return row[0]  # type: ignore[index]

    def changes_since(self, seq: int, limit: int = 10_000) -> list[Change]:
        with self._connection() as conn:
            horizon = conn.execute("SELECT seq FROM change_horizon WHERE id = 1").fetchone()
            rows = conn.execute(
                "SELECT seq, kind, user_id FROM changes WHERE seq > %s ORDER BY seq LIMIT %s",
                (seq, limit),
            ).fetchall()
            if horizon and seq < horizon[0]:  # pruned past this follower: drop everything
                latest = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
                self._saw(latest[0])  # type: ignore[index]
                return [Change(latest[0], ChangeKind.ORG, None)]  # type: ignore[index]
        if rows:
            self._saw(rows[-1][0])
        return [Change(r[0], ChangeKind(r[1]), r[2]) for r in rows]

    def _listen(self) -> psycopg.Connection:
        """The LISTEN connection, (re)connected when needed; the caller holds _listen_lock."""
        if self._listener is not None and not self._listener.closed:
            return self._listener
        self._listener = None
        try:
            conn = psycopg.Connection.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self._timeout))
            )
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from exc
        self._listener = conn
        return conn

    def wait_for_changes(self, seq: int, timeout: float) -> list[Change]:
        deadline = time.monotonic() + timeout
        with self._listen_lock:
            while True:
                # Listen first, then read: a change committed in between is both read now
                # and notified later (a harmless extra wake-up), never lost.
                listener = self._listen()
                changes = self.changes_since(seq)
                remaining = deadline - time.monotonic()
                if changes or remaining <= 0:
                    return changes
                try:
                    for _ in listener.notifies(timeout=remaining, stop_after=1):
                        pass
                except psycopg.OperationalError:
                    # The connection dropped (killed backend, restart): reconnect and catch
                    # up by reading, on the next turn.
                    listener.close()
                    self._listener = None
