"""The scale-out store's directory thumbnail slot (what the directory holds for each user)."""

from __future__ import annotations

from ...model import DirectoryThumbnail
from .. import rows
from ..base import ChangeKind
from ..rows import THUMBNAIL_COLUMNS
from .connection import PostgresBase
from .schema import CODEC


class DirectoryThumbnails(PostgresBase):
    """The directory's thumbnail for each user, as sync last saw it."""

    def put_directory_thumbnail(self, thumb: DirectoryThumbnail) -> None:
        self.put_directory_thumbnails([thumb])

    def put_directory_thumbnails(self, thumbs: list[DirectoryThumbnail]) -> None:
        with self._tx() as tx, tx.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO directory_thumbnails ({THUMBNAIL_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (user_id) DO UPDATE SET jpeg = excluded.jpeg, "
                "raw_hash = excluded.raw_hash, raw_size = excluded.raw_size, "
                "width = excluded.width, height = excluded.height, problem = excluded.problem, "
                "seen = excluded.seen, written_by_us = excluded.written_by_us",
                [rows.thumbnail_values(t, CODEC) for t in thumbs],
            )
            tx.changes.extend((ChangeKind.USER, t.user_id) for t in thumbs)

    def get_directory_thumbnail(self, user_id: str) -> DirectoryThumbnail | None:
        row = self._one_named(
            f"SELECT {THUMBNAIL_COLUMNS} FROM directory_thumbnails WHERE user_id = %s",
            (user_id,),
        )
        return rows.thumbnail(row, CODEC) if row else None

    def delete_directory_thumbnail(self, user_id: str) -> None:
        with self._tx() as tx:
            cur = tx.conn.execute("DELETE FROM directory_thumbnails WHERE user_id = %s", (user_id,))
            if cur.rowcount:
                tx.user(user_id)
