"""The embedded store's photos: versions (saved, preview, history) and their renditions."""

from __future__ import annotations

import sqlite3

from ...errors import NoPhoto, NoPreview, UnknownUser
from ...model import AuditEntry, Photo, PhotoState, Rendered
from .. import rows
from ..base import ChangeKind
from ..rows import PHOTO_COLUMNS as _PHOTO_COLUMNS
from ..rows import now
from .connection import SQLiteBase
from .schema import CODEC
from .schema import to_text as _ts


class Photos(SQLiteBase):
    """Photo versions and their renditions; every change of state in one transaction."""

    @staticmethod
    def _photo(row: sqlite3.Row) -> Photo:
        return rows.photo(row, CODEC)

    def _require_user(self, db: sqlite3.Connection, user_id: str) -> None:
        if not db.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone():
            raise UnknownUser(f"No user with id {user_id}.")

    def put_photo(
        self, user_id: str, rendered: Rendered, state: PhotoState, *, actor: str, via: str
    ) -> Photo:
        if state not in (PhotoState.SAVED, PhotoState.PREVIEW):
            raise ValueError(f"cannot put a photo in state {state}")
        at = now()
        with self._tx() as db:
            self._require_user(db, user_id)
            version = db.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM photos WHERE user_id = ?", (user_id,)
            ).fetchone()[0]
            # A new preview replaces the old one; a new save replaces the saved one and
            # discards any preview (as Set-UserPhoto without -Preview does).
            self._retire(db, user_id, PhotoState.PREVIEW, PhotoState.CANCELLED)
            if state is PhotoState.SAVED:
                self._retire(db, user_id, PhotoState.SAVED, PhotoState.SUPERSEDED)
                db.execute("UPDATE users SET removal_record = NULL WHERE id = ?", (user_id,))
            cur = db.execute(
                f"INSERT INTO photos ({_PHOTO_COLUMNS.replace('id, ', '', 1)}, thumbnail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows.photo_values(user_id, version, state, rendered, at, actor, via, CODEC),
            )
            photo_id = cur.lastrowid
            db.executemany(
                "INSERT INTO renditions VALUES (?, ?, ?)",
                [(photo_id, size, jpeg) for size, jpeg in rendered.renditions.items()],
            )
            action = "photo.set" if state is PhotoState.SAVED else "photo.preview"
            self._audit(db, AuditEntry(at, actor, user_id, action, via, f"version {version}"))
            self._changed(db, ChangeKind.USER, [user_id])
        photo = self.get_photo(user_id, state)
        assert photo is not None
        return photo

    def _retire(
        self, db: sqlite3.Connection, user_id: str, current: PhotoState, to: PhotoState
    ) -> None:
        """Move a current photo out of service; its renditions go (history keeps the row)."""
        db.execute(
            "DELETE FROM renditions WHERE photo_id IN "
            "(SELECT id FROM photos WHERE user_id = ? AND state = ?)",
            (user_id, current.value),
        )
        db.execute(
            "UPDATE photos SET state = ?, thumbnail = NULL WHERE user_id = ? AND state = ?",
            (to.value, user_id, current.value),
        )

    def get_photo(self, user_id: str, state: PhotoState = PhotoState.SAVED) -> Photo | None:
        row = self._db.execute(
            f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE user_id = ? AND state = ?",
            (user_id, state.value),
        ).fetchone()
        return self._photo(row) if row else None

    def get_rendition(self, photo_id: int, size: int) -> bytes | None:
        row = self._db.execute(
            "SELECT jpeg FROM renditions WHERE photo_id = ? AND size = ?", (photo_id, size)
        ).fetchone()
        return row[0] if row else None

    def get_thumbnail(self, photo_id: int) -> bytes | None:
        row = self._db.execute("SELECT thumbnail FROM photos WHERE id = ?", (photo_id,)).fetchone()
        return row[0] if row else None

    def save_preview(self, user_id: str, *, actor: str, via: str) -> Photo:
        with self._tx() as db:
            row = db.execute(
                "SELECT id, version FROM photos WHERE user_id = ? AND state = 'preview'",
                (user_id,),
            ).fetchone()
            if row is None:
                raise NoPreview("There is no preview to save; upload one with --preview first.")
            self._retire(db, user_id, PhotoState.SAVED, PhotoState.SUPERSEDED)
            db.execute("UPDATE photos SET state = 'saved' WHERE id = ?", (row["id"],))
            db.execute("UPDATE users SET removal_record = NULL WHERE id = ?", (user_id,))
            version = row["version"]
            entry = AuditEntry(now(), actor, user_id, "photo.save", via, f"version {version}")
            self._audit(db, entry)
            self._changed(db, ChangeKind.USER, [user_id])
        photo = self.get_photo(user_id)
        assert photo is not None
        return photo

    def cancel_preview(self, user_id: str, *, actor: str, via: str) -> None:
        with self._tx() as db:
            if not db.execute(
                "SELECT 1 FROM photos WHERE user_id = ? AND state = 'preview'", (user_id,)
            ).fetchone():
                raise NoPreview("There is no preview to cancel.")
            self._retire(db, user_id, PhotoState.PREVIEW, PhotoState.CANCELLED)
            self._audit(db, AuditEntry(now(), actor, user_id, "photo.cancel", via, ""))
            self._changed(db, ChangeKind.USER, [user_id])

    def remove_photo(self, user_id: str, *, actor: str, via: str) -> None:
        with self._tx() as db:
            if not db.execute(
                "SELECT 1 FROM photos WHERE user_id = ? AND state = 'saved'", (user_id,)
            ).fetchone():
                raise NoPhoto("This user has no saved photo to remove.")
            self._retire(db, user_id, PhotoState.SAVED, PhotoState.REMOVED)
            db.execute("UPDATE users SET removal_record = ? WHERE id = ?", (_ts(now()), user_id))
            self._audit(db, AuditEntry(now(), actor, user_id, "photo.remove", via, ""))
            self._changed(db, ChangeKind.USER, [user_id])

    def clear_removal_record(self, user_id: str, *, actor: str, via: str) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE users SET removal_record = NULL "
                "WHERE id = ? AND removal_record IS NOT NULL",
                (user_id,),
            )
            if cur.rowcount:
                self._audit(db, AuditEntry(now(), actor, user_id, "photo.clear_record", via, ""))
                self._changed(db, ChangeKind.USER, [user_id])
            return bool(cur.rowcount)

    def photo_history(self, user_id: str) -> list[Photo]:
        rows = self._db.execute(
            f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE user_id = ? ORDER BY version DESC",
            (user_id,),
        ).fetchall()
        return [self._photo(r) for r in rows]

    def saved_photo_hashes(self) -> dict[str, str]:
        rows = self._db.execute("SELECT user_id, source_hash FROM photos WHERE state = 'saved'")
        return dict(rows.fetchall())
