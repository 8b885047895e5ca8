"""The scale-out store's photos: versions (saved, preview, history) and their renditions."""

from __future__ import annotations

import psycopg

from ...errors import NoPhoto, NoPreview, UnknownUser
from ...model import AuditEntry, Photo, PhotoState, Rendered
from .. import rows
from ..rows import PHOTO_COLUMNS as _PHOTO_COLUMNS
from ..rows import now
from .connection import PostgresBase
from .schema import CODEC


class Photos(PostgresBase):
    """Photo versions and their renditions; every change of state in one transaction."""

    @staticmethod
    def _photo(row: rows.Row) -> Photo:
        return rows.photo(row, CODEC)

    @staticmethod
    def _lock_user(conn: psycopg.Connection, user_id: str) -> None:
        """The user must exist; their row is locked so concurrent photo writes queue up."""
        if not conn.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user_id,)).fetchone():
            raise UnknownUser(f"No user with id {user_id}.")

    def put_photo(
        self, user_id: str, rendered: Rendered, state: PhotoState, *, actor: str, via: str
    ) -> Photo:
        if state not in (PhotoState.SAVED, PhotoState.PREVIEW):
            raise ValueError(f"cannot put a photo in state {state}")
        at = now()
        with self._tx() as tx:
            conn = tx.conn
            self._lock_user(conn, user_id)
            version = conn.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM photos WHERE user_id = %s", (user_id,)
            ).fetchone()[0]  # type: ignore[index]
            # A new preview replaces the old one; a new save replaces the saved one and
            # discards any preview (as Set-UserPhoto without -Preview does).
            self._retire(conn, user_id, PhotoState.PREVIEW, PhotoState.CANCELLED)
            if state is PhotoState.SAVED:
                self._retire(conn, user_id, PhotoState.SAVED, PhotoState.SUPERSEDED)
                conn.execute("UPDATE users SET removal_record = NULL WHERE id = %s", (user_id,))
            photo_id = conn.execute(
                f"INSERT INTO photos ({_PHOTO_COLUMNS.replace('id, ', '', 1)}, thumbnail) "
                f"VALUES ({', '.join(['%s'] * 16)}) RETURNING id",
                rows.photo_values(user_id, version, state, rendered, at, actor, via, CODEC),
            ).fetchone()[0]  # type: ignore[index]
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO renditions VALUES (%s, %s, %s)",
                    [(photo_id, size, jpeg) for size, jpeg in rendered.renditions.items()],
                )
            action = "photo.set" if state is PhotoState.SAVED else "photo.preview"
            self._audit(conn, AuditEntry(at, actor, user_id, action, via, f"version {version}"))
            tx.user(user_id)
        photo = self.get_photo(user_id, state)
        assert photo is not None
        return photo

    @staticmethod
    def _retire(
        conn: psycopg.Connection, user_id: str, current: PhotoState, to: PhotoState
    ) -> None:
        """Move a current photo out of service; its renditions go (history keeps the row)."""
        conn.execute(
            "DELETE FROM renditions WHERE photo_id IN "
            "(SELECT id FROM photos WHERE user_id = %s AND state = %s)",
            (user_id, current.value),
        )
        conn.execute(
            "UPDATE photos SET state = %s, thumbnail = NULL WHERE user_id = %s AND state = %s",
            (to.value, user_id, current.value),
        )

    def get_photo(self, user_id: str, state: PhotoState = PhotoState.SAVED) -> Photo | None:
        row = self._one_named(
            f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE user_id = %s AND state = %s",
            (user_id, state.value),
        )
        return self._photo(row) if row else None

    def get_rendition(self, photo_id: int, size: int) -> bytes | None:
        row = self._one(
            "SELECT jpeg FROM renditions WHERE photo_id = %s AND size = %s", (photo_id, size)
        )
        return bytes(row[0]) if row else None

    def get_thumbnail(self, photo_id: int) -> bytes | None:
        row = self._one("SELECT thumbnail FROM photos WHERE id = %s", (photo_id,))
        return bytes(row[0]) if row and row[0] is not None else None

    def save_preview(self, user_id: str, *, actor: str, via: str) -> Photo:
        with self._tx() as tx:
            conn = tx.conn
            self._lock_user(conn, user_id)
            row = conn.execute(
                "SELECT id, version FROM photos WHERE user_id = %s AND state = 'preview'",
                (user_id,),
            ).fetchone()
            if row is None:
                raise NoPreview("There is no preview to save; upload one with --preview first.")
            self._retire(conn, user_id, PhotoState.SAVED, PhotoState.SUPERSEDED)
            conn.execute("UPDATE photos SET state = 'saved' WHERE id = %s", (row[0],))
            conn.execute("UPDATE users SET removal_record = NULL WHERE id = %s", (user_id,))
            entry = AuditEntry(now(), actor, user_id, "photo.save", via, f"version {row[1]}")
            self._audit(conn, entry)
            tx.user(user_id)
        photo = self.get_photo(user_id)
        assert photo is not None
        return photo

    def cancel_preview(self, user_id: str, *, actor: str, via: str) -> None:
        with self._tx() as tx:
            if not tx.conn.execute(
                "SELECT 1 FROM photos WHERE user_id = %s AND state = 'preview' FOR UPDATE",
                (user_id,),
            ).fetchone():
                raise NoPreview("There is no preview to cancel.")
            self._retire(tx.conn, user_id, PhotoState.PREVIEW, PhotoState.CANCELLED)
            self._audit(tx.conn, AuditEntry(now(), actor, user_id, "photo.cancel", via, ""))
            tx.user(user_id)

    def remove_photo(self, user_id: str, *, actor: str, via: str) -> None:
        with self._tx() as tx:
            if not tx.conn.execute(
                "SELECT 1 FROM photos WHERE user_id = %s AND state = 'saved' FOR UPDATE",
                (user_id,),
            ).fetchone():
                raise NoPhoto("This user has no saved photo to remove.")
            self._retire(tx.conn, user_id, PhotoState.SAVED, PhotoState.REMOVED)
            tx.conn.execute("UPDATE users SET removal_record = %s WHERE id = %s", (now(), user_id))
            self._audit(tx.conn, AuditEntry(now(), actor, user_id, "photo.remove", via, ""))
            tx.user(user_id)

    def clear_removal_record(self, user_id: str, *, actor: str, via: str) -> bool:
        with self._tx() as tx:
            cur = tx.conn.execute(
                "UPDATE users SET removal_record = NULL "
                "WHERE id = %s AND removal_record IS NOT NULL",
                (user_id,),
            )
            if cur.rowcount:
                entry = AuditEntry(now(), actor, user_id, "photo.clear_record", via, "")
                self._audit(tx.conn, entry)
                tx.user(user_id)
            return bool(cur.rowcount)

    def photo_history(self, user_id: str) -> list[Photo]:
        found = self._all_named(
            f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE user_id = %s ORDER BY version DESC",
            (user_id,),
        )
        return [self._photo(r) for r in found]

    def saved_photo_hashes(self) -> dict[str, str]:
        return dict(self._all("SELECT user_id, source_hash FROM photos WHERE state = 'saved'"))
