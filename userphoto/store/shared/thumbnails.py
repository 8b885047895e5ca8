"""The directory thumbnail slot: what the directory holds for each user, as sync last saw it."""

from __future__ import annotations

from ...model import DirectoryThumbnail
from .. import rows
from ..base import ChangeKind
from ..columns import THUMBNAIL_COLUMNS
from ..sql import SQLStore, upsert

_PUT = upsert("directory_thumbnails", THUMBNAIL_COLUMNS, "user_id")
_SELECT = f"SELECT {', '.join(THUMBNAIL_COLUMNS)} FROM directory_thumbnails WHERE user_id = ?"


class DirectoryThumbnails(SQLStore):
    """The directory's thumbnail for each user, as sync last saw it."""

    def put_directory_thumbnail(self, thumb: DirectoryThumbnail) -> None:
        self.put_directory_thumbnails([thumb])

    def put_directory_thumbnails(self, thumbs: list[DirectoryThumbnail]) -> None:
        with self._tx() as tx:
            tx.many(_PUT, [rows.thumbnail_values(t, self.dialect.codec) for t in thumbs])
            tx.changed(ChangeKind.USER, [t.user_id for t in thumbs])

    def get_directory_thumbnail(self, user_id: str) -> DirectoryThumbnail | None:
        row = self._one_named(_SELECT, (user_id,))
        return rows.thumbnail(row, self.dialect.codec) if row else None

    def delete_directory_thumbnail(self, user_id: str) -> None:
        with self._tx() as tx:
            if tx.run("DELETE FROM directory_thumbnails WHERE user_id = ?", (user_id,)):
                tx.changed(ChangeKind.USER, [user_id])
