"""The embedded store's directory thumbnail slot (what the directory holds for each user)."""

from __future__ import annotations

from datetime import datetime

from ...model import DirectoryThumbnail
from ..base import ChangeKind
from .connection import SQLiteBase
from .schema import to_text as _ts


class DirectoryThumbnails(SQLiteBase):
    """The directory's thumbnail for each user, as sync last saw it."""

    def put_directory_thumbnail(self, thumb: DirectoryThumbnail) -> None:
        self.put_directory_thumbnails([thumb])

    def put_directory_thumbnails(self, thumbs: list[DirectoryThumbnail]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO directory_thumbnails VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        thumb.user_id,
                        thumb.jpeg,
                        thumb.raw_hash,
                        thumb.raw_size,
                        thumb.width,
                        thumb.height,
                        thumb.problem,
                        _ts(thumb.seen),
                        int(thumb.written_by_us),
                    )
                    for thumb in thumbs
                ],
            )
            self._changed(db, ChangeKind.USER, [t.user_id for t in thumbs])

    def get_directory_thumbnail(self, user_id: str) -> DirectoryThumbnail | None:
        row = self._db.execute(
            "SELECT user_id, jpeg, raw_hash, raw_size, width, height, problem, seen, "
            "written_by_us FROM directory_thumbnails WHERE user_id = ?",
            (user_id,),
        ).fetchone()
        if row is None:
            return None
        user, jpeg, raw_hash, raw_size, width, height, problem, seen, written_by_us = row
        return DirectoryThumbnail(
            user_id=user,
            jpeg=jpeg,
            raw_hash=raw_hash,
            raw_size=raw_size,
            width=width,
            height=height,
            problem=problem,
            seen=datetime.fromisoformat(seen),  # NOT NULL column
            written_by_us=bool(written_by_us),
        )

    def delete_directory_thumbnail(self, user_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM directory_thumbnails WHERE user_id = ?", (user_id,))
            self._changed(db, ChangeKind.USER, [user_id])
