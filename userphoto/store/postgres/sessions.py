"""The scale-out store's web sessions and session keys (shared by every node)."""

from __future__ import annotations

import time

from ..base import WebSession
from .connection import PostgresBase

_COLUMNS = "id, address, user_id, token_id, created, seen, expires"


class WebSessions(PostgresBase):
    """Signed-in sessions (revocable on every node) and the keys their cookies are sealed
    with. Read from the primary, never the replica: a sign-out must count at once."""

    def session_keys(self) -> list[tuple[str, str, float]]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT id, key, created FROM session_keys ORDER BY created DESC, id"
            ).fetchall()
        return [(r[0], r[1], float(r[2])) for r in rows]

    def add_session_key(self, key_id: str, key: str, created: float) -> None:
        with self._tx() as tx:
            tx.conn.execute("INSERT INTO session_keys VALUES (%s, %s, %s)", (key_id, key, created))

    def drop_session_keys(self, before: float) -> int:
        with self._tx() as tx:
            return tx.conn.execute(
                "DELETE FROM session_keys WHERE created < %s", (before,)
            ).rowcount

    def start_session(self, session: WebSession) -> None:
        with self._tx() as tx:
            tx.conn.execute("DELETE FROM web_sessions WHERE expires <= %s", (session.created,))
            tx.conn.execute(
                f"INSERT INTO web_sessions ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    session.id,
                    session.address,
                    session.user_id,
                    session.token_id,
                    session.created,
                    session.seen,
                    session.expires,
                ),
            )

    def get_session(self, session_id: str) -> WebSession | None:
        # A user who left the directory is signed out everywhere, as if removed.
        with self._connection() as conn:
            row = conn.execute(
                "SELECT s.id, s.address, s.user_id, s.token_id, s.created, s.seen, s.expires "
                "FROM web_sessions s LEFT JOIN users u ON u.id = s.user_id "
                "WHERE s.id = %s AND s.expires > %s "
                "AND (s.user_id IS NULL OR (u.id IS NOT NULL AND NOT u.directory_gone))",
                (session_id, time.time()),
            ).fetchone()
        if row is None:
            return None
        return WebSession(
            row[0], row[1], row[2], row[3], float(row[4]), float(row[5]), float(row[6])
        )

    def touch_session(self, session_id: str, seen: float) -> None:
        with self._tx() as tx:
            tx.conn.execute("UPDATE web_sessions SET seen = %s WHERE id = %s", (seen, session_id))

    def end_session(self, session_id: str) -> bool:
        with self._tx() as tx:
            gone = tx.conn.execute("DELETE FROM web_sessions WHERE id = %s", (session_id,))
            return bool(gone.rowcount)
