"""The facts one diagnosis reasons over: a small value read from the store once.

`gather` is the only part that reads; the rules (`rules.py`) and the surface predictions
(`surfaces.py`) are pure functions of a `Facts`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..app import App
from ..model import (
    MEETING_SIZE,
    SD_MAX,
    AuditAction,
    AuditEntry,
    ClientProfile,
    DirectoryThumbnail,
    Photo,
    PhotoState,
    User,
    Viewer,
)


@dataclass(frozen=True)
class Facts:
    user: User
    viewer: Viewer
    client: ClientProfile
    size: int | None  # the size asked for, if any
    photo: Photo | None  # the saved photo
    preview: Photo | None  # an upload never saved
    thumb: DirectoryThumbnail | None
    rejection: AuditEntry | None  # the newest refused upload, unless a photo came after
    self_service: bool  # [policy] self_service
    refused: bool = False  # the viewer's credentials are refused (401)

    @property
    def address(self) -> str:
        return self.user.address

    @property
    def self_view(self) -> bool:
        return self.viewer.user_id is not None and self.viewer.user_id == self.user.id

    @property
    def internal(self) -> bool:
        return self.viewer.internal

    @property
    def wanted(self) -> int:
        """The size the viewer's client actually wants to show."""
        if self.size is not None:
            return self.size
        return SD_MAX if self.client is ClientProfile.LEGACY else MEETING_SIZE

    @property
    def thumb_usable(self) -> bool:
        return self.thumb is not None and self.thumb.jpeg is not None

    @property
    def photo_sizes(self) -> tuple[int, ...]:
        return self.photo.sizes if self.photo else ()


def gather(
    app: App,
    user: User,
    viewer: Viewer,
    client: ClientProfile,
    size: int | None,
    refused: bool = False,
) -> Facts:
    store = app.store
    return Facts(
        user=user,
        viewer=viewer,
        client=client,
        size=size,
        photo=store.get_photo(user.id),
        preview=store.get_photo(user.id, PhotoState.PREVIEW),
        thumb=store.get_directory_thumbnail(user.id),
        rejection=last_rejection(app, user),
        self_service=app.settings.self_service,
        refused=refused,
    )


# The audit actions after which a photo is stored: a rejection before one is history.
_STORED = (AuditAction.PHOTO_SET, AuditAction.PHOTO_SAVE, AuditAction.PHOTO_PREVIEW)


def last_rejection(app: App, user: User) -> AuditEntry | None:
    """The newest refused upload, unless a photo was stored after it."""
    for entry in app.store.audit_log(user.id, limit=20):
        if entry.action == AuditAction.PHOTO_REJECTED:
            return entry
        if entry.action in _STORED:
            return None
    return None
