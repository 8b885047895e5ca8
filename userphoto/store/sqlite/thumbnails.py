"""The embedded store's directory thumbnail slot (what the directory holds for each user)."""

from __future__ import annotations

from ...model import DirectoryThumbnail
from .. import rows
from ..base import ChangeKind
from ..rows import THUMBNAIL_COLUMNS
from .connection import SQLiteBase
from .schema import CODEC


class DirectoryThumbnails(SQLiteBase):
    """The directory's thumbnail for each user, as sync last saw it."""

    def put_directory_thumbnail(self, thumb: DirectoryThumbnail) -> None:
        self.put_directory_thumbnails([thumb])

    def put_directory_thumbnails(self, thumbs: list[DirectoryThumbnail]) -> None:
        with self._tx() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO directory_thumbnails ({THUMBNAIL_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [rows.thumbnail_values(thumb, CODEC) for thumb in thumbs],
            )
            self._changed(db, ChangeKind.USER, [t.user_id for t in thumbs])

    def get_directory_thumbnail(self, user_id: str) -> DirectoryThumbnail | None:
        row = self._db.execute(
            f"SELECT {THUMBNAIL_COLUMNS} FROM directory_thumbnails WHERE user_id = ?",
            (user_id,),
        ).fetchone()
        if row is None:
            return None
        return rows.thumbnail(row, CODEC)

    def delete_directory_thumbnail(self, user_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM directory_thumbnails WHERE user_id = ?", (user_id,))
            self._changed(db, ChangeKind.USER, [user_id])
