"""Photo versions (saved, preview, history) and their renditions.

The store offers the statements of a photo change (`PhotoWrites`, one transaction);
`userphoto/photos.py` holds the lifecycle rules that decide which of them run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ...errors import UnknownUser
from ...model import AuditAction, AuditEntry, Photo, PhotoState, Rendered
from .. import rows
from ..base import ChangeKind
from ..columns import PHOTO_COLUMNS
from ..sql import Dialect, SQLStore, Tx
from . import audit

_SELECT = f"SELECT {', '.join(PHOTO_COLUMNS)} FROM photos"
_INSERT = (
    f"INSERT INTO photos ({', '.join(PHOTO_COLUMNS[1:])}, thumbnail) "
    f"VALUES ({', '.join('?' * len(PHOTO_COLUMNS))})"
)


class PhotoWrites:
    """The statements of one user's photo change, inside one write transaction."""

    def __init__(self, tx: Tx, dialect: Dialect, user_id: str):
        self.tx, self.dialect, self.user_id = tx, dialect, user_id

    def lock_user(self) -> None:
        """The user must exist (UnknownUser); where writers run side by side, their row is
        locked so that concurrent photo writes for them queue up."""
        if not self.tx.one(f"SELECT 1 FROM users WHERE id = ?{self.dialect.lock}", (self.user_id,)):
            raise UnknownUser(f"No user with id {self.user_id}.")

    def next_version(self) -> int:
        row = self.tx.one(
            "SELECT coalesce(max(version), 0) + 1 FROM photos WHERE user_id = ?", (self.user_id,)
        )
        return int(row[0])

    def current(self, state: PhotoState) -> tuple[int, int] | None:
        """(id, version) of the photo in `state` (saved or preview), locked, if there is one."""
        row = self.tx.one(
            f"SELECT id, version FROM photos WHERE user_id = ? AND state = ?{self.dialect.lock}",
            (self.user_id, state.value),
        )
        return (row[0], row[1]) if row else None

    def retire(self, current: PhotoState, to: PhotoState) -> None:
        """Move the photo in `current` out of service; its renditions go (history keeps it)."""
        self.tx.run(
            "DELETE FROM renditions WHERE photo_id IN "
            "(SELECT id FROM photos WHERE user_id = ? AND state = ?)",
            (self.user_id, current.value),
        )
        self.tx.run(
            "UPDATE photos SET state = ?, thumbnail = NULL WHERE user_id = ? AND state = ?",
            (to.value, self.user_id, current.value),
        )

    def add(
        self,
        version: int,
        state: PhotoState,
        rendered: Rendered,
        at: datetime,
        actor: str,
        via: str,
    ) -> int:
        """A new version with its renditions; its id."""
        values = rows.photo_values(
            self.user_id, version, state, rendered, at, actor, via, self.dialect.codec
        )
        photo_id = self.tx.insert(_INSERT, values)
        self.tx.many(
            "INSERT INTO renditions VALUES (?, ?, ?)",
            [(photo_id, size, jpeg) for size, jpeg in rendered.renditions.items()],
        )
        return photo_id

    def promote(self, photo_id: int) -> None:
        """The preview `photo_id` becomes the saved photo."""
        self.tx.run("UPDATE photos SET state = 'saved' WHERE id = ?", (photo_id,))

    def set_removal_record(self, at: datetime | None) -> bool:
        """Record when the photo was removed (None: forget it); whether a record changed
        (`None` over no record changes nothing)."""
        if at is None:
            return bool(
                self.tx.run(
                    "UPDATE users SET removal_record = NULL "
                    "WHERE id = ? AND removal_record IS NOT NULL",
                    (self.user_id,),
                )
            )
        written = self.dialect.codec.write_time(at)
        return bool(
            self.tx.run("UPDATE users SET removal_record = ? WHERE id = ?", (written, self.user_id))
        )

    def audit(
        self, action: AuditAction, at: datetime, actor: str, via: str, detail: str = ""
    ) -> None:
        audit.write(self.tx, self.dialect, AuditEntry(at, actor, self.user_id, action, via, detail))

    def changed(self) -> None:
        """Followers drop what they serve for this user once the change commits."""
        self.tx.changed(ChangeKind.USER, [self.user_id])


class Photos(SQLStore):
    """Photo versions and their renditions; every change of state in one transaction."""

    @contextmanager
    def photo_writes(self, user_id: str) -> Iterator[PhotoWrites]:
        with self._tx() as tx:
            yield PhotoWrites(tx, self.dialect, user_id)

    def _photo(self, row: Any) -> Photo:
        return rows.photo(row, self.dialect.codec)

    def get_photo(self, user_id: str, state: PhotoState = PhotoState.SAVED) -> Photo | None:
        row = self._one_named(f"{_SELECT} WHERE user_id = ? AND state = ?", (user_id, state.value))
        return self._photo(row) if row else None

    def get_rendition(self, photo_id: int, size: int) -> bytes | None:
        row = self._one(
            "SELECT jpeg FROM renditions WHERE photo_id = ? AND size = ?", (photo_id, size)
        )
        return bytes(row[0]) if row else None

    def get_thumbnail(self, photo_id: int) -> bytes | None:
        row = self._one("SELECT thumbnail FROM photos WHERE id = ?", (photo_id,))
        return bytes(row[0]) if row and row[0] is not None else None

    def photo_history(self, user_id: str) -> list[Photo]:
        found = self._all_named(f"{_SELECT} WHERE user_id = ? ORDER BY version DESC", (user_id,))
        return [self._photo(r) for r in found]

    def saved_photo_hashes(self) -> dict[str, str]:
        found = self._all("SELECT user_id, source_hash FROM photos WHERE state = 'saved'")
        return {r[0]: r[1] for r in found}
