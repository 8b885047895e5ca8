"""Web sessions and session keys (shared by every process and node on the store)."""

from __future__ import annotations

import time

from ..base import WebSession
from ..sql import SQLStore

_COLUMNS = "id, address, user_id, token_id, created, seen, expires"


class WebSessions(SQLStore):
    """Signed-in sessions (revocable everywhere) and the keys their cookies are sealed with.
    Read from the primary, never a replica: a sign-out must count at once."""

    def session_keys(self) -> list[tuple[str, str, float]]:
        found = self._all(
            "SELECT id, key, created FROM session_keys ORDER BY created DESC, id", primary=True
        )
        return [(r[0], r[1], float(r[2])) for r in found]

    def add_session_key(self, key_id: str, key: str, created: float) -> None:
        with self._tx() as tx:
            tx.run("INSERT INTO session_keys VALUES (?, ?, ?)", (key_id, key, created))

    def drop_session_keys(self, before: float) -> int:
        with self._tx() as tx:
            return tx.run("DELETE FROM session_keys WHERE created < ?", (before,))

    def start_session(self, session: WebSession) -> None:
        with self._tx() as tx:
            tx.run("DELETE FROM web_sessions WHERE expires <= ?", (session.created,))
            tx.run(
                f"INSERT INTO web_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        row = self._one(
            "SELECT s.id, s.address, s.user_id, s.token_id, s.created, s.seen, s.expires "
            "FROM web_sessions s LEFT JOIN users u ON u.id = s.user_id "
            "WHERE s.id = ? AND s.expires > ? "
            "AND (s.user_id IS NULL OR (u.id IS NOT NULL AND NOT u.directory_gone))",
            (session_id, time.time()),
            primary=True,
        )
        if row is None:
            return None
        return WebSession(
            row[0], row[1], row[2], row[3], float(row[4]), float(row[5]), float(row[6])
        )

    def touch_session(self, session_id: str, seen: float) -> None:
        with self._tx() as tx:
            tx.run("UPDATE web_sessions SET seen = ? WHERE id = ?", (seen, session_id))

    def end_session(self, session_id: str) -> bool:
        with self._tx() as tx:
            return bool(tx.run("DELETE FROM web_sessions WHERE id = ?", (session_id,)))
