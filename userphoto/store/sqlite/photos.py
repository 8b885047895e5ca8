"""The embedded store's photos: versions (saved, preview, history) and their renditions."""

from __future__ import annotations

import sqlite3

from ...errors import NoPhoto, NoPreview, UnknownUser
from ...imaging import Rendered
from ...model import AuditEntry, CropBox, CropDecision, CropReason, Photo, PhotoState
from ..base import ChangeKind
from .connection import SQLiteBase
from .schema import PHOTO_COLUMNS as _PHOTO_COLUMNS
from .schema import from_text as _dt
from .schema import now
from .schema import to_text as _ts


class Photos(SQLiteBase):
    """Photo versions and their renditions; every change of state in one transaction."""

    def _photo(self, row: tuple) -> Photo:
        x, y, size = (int(v) for v in row[4].split(","))
        return Photo(
            id=row[0],
            user_id=row[1],
            version=row[2],
            state=PhotoState(row[3]),
            crop=CropBox(x, y, size),
            source_hash=row[5],
            source_format=row[6],
            source_width=row[7],
            source_height=row[8],
            sizes=tuple(int(s) for s in row[9].split(",") if s),
            created=_dt(row[10]),  # type: ignore[arg-type]
            actor=row[11],
            via=row[12],
            crop_decision=CropDecision(CropReason(row[13]), row[14], row[15]),
        )

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
                (
                    user_id,
                    version,
                    state.value,
                    str(rendered.crop),
                    rendered.source.sha256,
                    rendered.source.format,
                    rendered.source.width,
                    rendered.source.height,
                    ",".join(str(s) for s in rendered.sizes),
                    _ts(at),
                    actor,
                    via,
                    rendered.decision.reason.value,
                    rendered.decision.confidence,
                    rendered.decision.note,
                    rendered.thumbnail,
                ),
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
            db.execute("UPDATE photos SET state = 'saved' WHERE id = ?", (row[0],))
            db.execute("UPDATE users SET removal_record = NULL WHERE id = ?", (user_id,))
            entry = AuditEntry(now(), actor, user_id, "photo.save", via, f"version {row[1]}")
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
