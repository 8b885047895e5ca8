"""The photo lifecycle, as Set-UserPhoto / Get-UserPhoto / Remove-UserPhoto define it.

Every upload path (CLI, HTTP, web, import) goes through `Photos`, so the rules live once:
validation and rendering happen before the store is touched; the store commits a photo and
all its renditions in one transaction; listeners (directory write-back, caches) hear of each
change after it committed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from . import checks, imaging
from .config import Settings
from .errors import (
    AccountUnavailable,
    NoPhoto,
    NoPreview,
    StoreError,
    StoreUnavailable,
    UnknownUser,
)
from .imaging import CropSuggester
from .model import (
    MASTER_MAX,
    SD_MAX,
    Account,
    AuditAction,
    AuditEntry,
    CheckPolicy,
    CropBox,
    Photo,
    PhotoState,
    Rendered,
    User,
)
from .resolve import choose_size
from .store import Store
from .store.roles import PhotoVersions

REJECTED = AuditAction.PHOTO_REJECTED  # an upload that failed validation
# After a write's connection was lost, how long to keep asking whether it committed (s).
READ_BACK_WAITS = (0.1, 0.3, 0.6, 1.0)

log = logging.getLogger("userphoto.photos")

# Called after a committed change: (user, event) where event is "saved", "removed", ...
Listener = Callable[[User, str], None]

T = TypeVar("T")


@dataclass(frozen=True)
class RenderOptions:
    """How one user's uploads are rendered: a plain value, so bulk import ships it to its
    worker processes and renders there exactly as `Photos.render` would here."""

    limits: imaging.Limits
    suggest: CropSuggester | None
    thumbnail_size: int
    max_size: int
    quality: int
    checks: CheckPolicy | None = None  # the automatic photo checks ([policy]); None: none

    def render(self, data: bytes, crop: CropBox | None = None) -> Rendered:
        rendered = imaging.render(
            data,
            limits=self.limits,
            crop=crop,
            suggest=self.suggest,
            check=functools.partial(checks.run, self.checks) if self.checks else None,
            thumbnail_size=self.thumbnail_size,
            max_size=self.max_size,
            quality=self.quality,
        )
        refused = checks.refusal(rendered.checks)
        if refused is not None:  # raised in the worker: every upload path refuses alike
            raise refused
        return rendered


class Runner(Protocol):
    """Where image work runs: `workers.WorkerPool` (bounded processes), or inline."""

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...


@dataclass
class Photos:
    store: Store
    settings: Settings
    suggest_crop: CropSuggester | None = None
    listeners: list[Listener] = field(default_factory=list)
    runner: Runner | None = None  # None: decode in this process (trusted callers, tests)

    # --- lookups ---------------------------------------------------------------------------
    def user(self, key: str) -> User:
        user = self.store.find_user(key)
        if user is None:
            raise UnknownUser(f"No user {key!r}. `userphoto user list` shows who exists.")
        return user

    @staticmethod
    def check_account(user: User) -> None:
        """Raise unless the user's photo-store account can hold photos at all."""
        if user.account in (Account.ABSENT, Account.DISABLED):
            raise AccountUnavailable(
                f"{user.address} has no usable photo-store account (account is "
                f"{user.account.value}), so it cannot hold photos. Enable it with "
                f"`userphoto user set {user.address} --account hd`."
            )

    @staticmethod
    def max_size(user: User) -> int:
        """The largest rendition `user`'s account may hold (sd_only: SD_MAX)."""
        return SD_MAX if user.account is Account.SD_ONLY else MASTER_MAX

    # --- Set-UserPhoto -----------------------------------------------------------------------
    def render_options(self, user: User) -> RenderOptions:
        """How an upload for `user` is rendered (limits, face crop, sizes, quality)."""
        return RenderOptions(
            limits=self.settings.limits,
            suggest=self.suggest_crop,
            thumbnail_size=self.settings.thumbnail_size,
            max_size=self.max_size(user),
            quality=self.settings.jpeg_quality,
            checks=self.settings.check_policy,
        )

    def render(self, user: User, data: bytes, crop: CropBox | None = None) -> Rendered:
        """Validate and render without storing (what an upload would become)."""
        self.check_account(user)
        run = self.runner.run if self.runner is not None else _inline
        return run(self.render_options(user).render, data, crop)

    def refused(self, user: User, message: str, *, actor: str = "admin", via: str = "cli") -> None:
        """Audit a refused upload, so the troubleshooter can say which limit it hit.

        The refusal is the answer; a store that cannot record it (read-only, full) must not
        replace it with its own error.
        """
        with contextlib.suppress(StoreError):
            self.store.audit(AuditEntry(datetime.now(UTC), actor, user.id, REJECTED, via, message))

    def set(
        self,
        key: str,
        data: bytes,
        *,
        preview: bool = False,
        crop: CropBox | None = None,
        actor: str = "admin",
        via: str = "cli",
    ) -> Photo:
        """Upload and save in one step, or store an unsaved preview.

        A refused image changes no photo; the refusal is audited so the troubleshooter can
        say which limit an upload hit.
        """
        user = self.user(key)
        try:
            rendered = self.render(user, data, crop)
        except imaging.ImageError as exc:
            self.refused(user, exc.message, actor=actor, via=via)
            raise
        return self.put(user, rendered, preview=preview, actor=actor, via=via)

    def put(
        self,
        user: User,
        rendered: Rendered,
        *,
        preview: bool = False,
        actor: str = "admin",
        via: str = "cli",
    ) -> Photo:
        """Store an already rendered photo (bulk import renders in worker processes, with
        `render_options`)."""
        self.check_account(user)
        state = PhotoState.PREVIEW if preview else PhotoState.SAVED
        began = datetime.now(UTC)
        try:
            photo = put_photo(self.store, user.id, rendered, state, actor=actor, via=via)
        except StoreUnavailable:
            # The connection died at or after COMMIT: the photo may be stored. It is ours
            # when the current photo has these bytes and was written after we began.
            found = self._read_back(
                lambda: self.store.get_photo(user.id, state),
                lambda p: (
                    p is not None
                    and p.source_hash == rendered.source.sha256
                    and p.created >= began.replace(microsecond=0)
                ),
            )
            if found is None:
                raise
            log.warning("%s's upload lost its connection at COMMIT; read back: stored", user.id)
            photo = found
        self._notify(user, "previewed" if preview else "saved")
        photo.checks = rendered.checks  # shown with the answer (not stored yet)
        return photo

    def save(self, key: str, *, actor: str = "admin", via: str = "cli") -> Photo:
        user = self.user(key)
        self.check_account(user)
        photo = save_preview(self.store, user.id, actor=actor, via=via)
        self._notify(user, "saved")
        return photo

    def cancel(self, key: str, *, actor: str = "admin", via: str = "cli") -> None:
        user = self.user(key)
        cancel_preview(self.store, user.id, actor=actor, via=via)
        self._notify(user, "cancelled")

    # --- Get-UserPhoto -----------------------------------------------------------------------
    def get(
        self, key: str, *, size: int | None = None, preview: bool = False
    ) -> tuple[Photo, int, bytes]:
        """The saved photo (or preview) at `size`, or its largest rendition below it."""
        user = self.user(key)
        self.check_account(user)
        state = PhotoState.PREVIEW if preview else PhotoState.SAVED
        photo = self.store.get_photo(user.id, state)
        if photo is None:
            if preview:
                raise NoPreview(f"{user.address} has no pending preview.")
            hint = (
                " Its photo was removed; `userphoto set` uploads a new one."
                if user.removal_record
                else f" Upload one with `userphoto set {user.address} FILE`."
            )
            raise NoPhoto(f"{user.address} has no photo.{hint}")
        if size is not None and size > SD_MAX and user.account is Account.SD_ONLY:
            raise AccountUnavailable(
                f"{user.address} has an sd_only photo-store account, which holds only sizes "
                f"up to {SD_MAX}. Ask for --size {SD_MAX} or move the account to HD with "
                f"`userphoto user set {user.address} --account hd` and upload again."
            )
        chosen = self.fit(photo, size)
        data = self.store.get_rendition(photo.id, chosen)
        if data is None:  # renditions and their row commit together; this would be a bug
            raise NoPhoto(f"{user.address}'s photo has no {chosen}px rendition.")
        return photo, chosen, data

    @staticmethod
    def fit(photo: Photo, size: int | None) -> int:
        """The rendition to serve for `size`: exact, else the largest below, else the smallest."""
        return choose_size(photo.sizes, size, None)

    # --- Remove-UserPhoto --------------------------------------------------------------------
    def remove(self, key: str, *, actor: str = "admin", via: str = "cli") -> None:
        user = self.user(key)
        try:
            remove_photo(self.store, user.id, actor=actor, via=via)
        except StoreUnavailable:
            # Removed by us or not, no saved photo is what was asked for: only then say so.
            gone = self._read_back(
                lambda: self.store.get_photo(user.id) is None, lambda nothing: bool(nothing)
            )
            if gone is None:
                raise
        self._notify(user, "removed")

    def clear_record(self, key: str, *, actor: str = "admin", via: str = "cli") -> bool:
        user = self.user(key)
        cleared = clear_removal_record(self.store, user.id, actor=actor, via=via)
        if cleared:
            self._notify(user, "record_cleared")
        return cleared

    def _notify(self, user: User, event: str) -> None:
        """Tell listeners of a committed change. The change stands whatever they do: a
        listener whose store call lost its connection (queuing the directory write-back, say)
        is tried again for as long as a read-back would be; one that still fails is logged as
        an error naming what was missed, and the write is answered as the success it is."""
        for listener in self.listeners:
            for wait in (0.0, *READ_BACK_WAITS):
                time.sleep(wait)
                try:
                    listener(user, event)
                    break
                except StoreUnavailable:
                    continue
                except Exception:
                    log.exception("after a committed %s of %s: a listener failed", event, user.id)
                    break
            else:
                log.error(
                    "after a committed %s of %s: %s could not reach the store; what it does "
                    "after a change (for write-back: queue the directory update) did not happen",
                    event,
                    user.id,
                    getattr(listener, "__qualname__", type(listener).__name__),
                )

    @staticmethod
    def _read_back(read: Callable[[], T], committed: Callable[[T], bool]) -> T | None:
        """What `read()` returns once `committed` holds for it; None when it does not, or
        when the store stays unreachable for every try (then the write's fate is unknown
        here, and the caller answers 503: retrying a photo upload is harmless)."""
        for wait in READ_BACK_WAITS:
            time.sleep(wait)
            try:
                value = read()
            except StoreUnavailable:
                continue
            return value if committed(value) else None
        log.warning("a write lost its connection and could not be read back")
        return None


# --- the lifecycle's rules, over one store transaction each ----------------------------------
# A new preview replaces the pending one (cancelled); a new save supersedes the saved photo,
# discards any preview (as Set-UserPhoto without -Preview does) and clears the removal record.
# Each change writes its audit line and tells followers, in the same transaction.
def put_photo(
    store: PhotoVersions,
    user_id: str,
    rendered: Rendered,
    state: PhotoState,
    *,
    actor: str,
    via: str,
) -> Photo:
    """Store a photo version (saved or preview) and all its renditions, in one transaction."""
    if state not in (PhotoState.SAVED, PhotoState.PREVIEW):
        raise ValueError(f"cannot put a photo in state {state}")
    at = datetime.now(UTC)
    with store.photo_writes(user_id) as w:
        w.lock_user()
        version = w.next_version()
        w.retire(PhotoState.PREVIEW, PhotoState.CANCELLED)
        if state is PhotoState.SAVED:
            w.retire(PhotoState.SAVED, PhotoState.SUPERSEDED)
            w.set_removal_record(None)
        w.add(version, state, rendered, at, actor, via)
        action = AuditAction.PHOTO_SET if state is PhotoState.SAVED else AuditAction.PHOTO_PREVIEW
        w.audit(action, at, actor, via, f"version {version}")
        w.changed()
    photo = store.get_photo(user_id, state)
    assert photo is not None
    return photo


def save_preview(store: PhotoVersions, user_id: str, *, actor: str, via: str) -> Photo:
    """Promote the pending preview to the saved photo (NoPreview if none)."""
    with store.photo_writes(user_id) as w:
        w.lock_user()
        preview = w.current(PhotoState.PREVIEW)
        if preview is None:
            raise NoPreview("There is no preview to save; upload one with --preview first.")
        w.retire(PhotoState.SAVED, PhotoState.SUPERSEDED)
        w.promote(preview[0])
        w.set_removal_record(None)
        w.audit(AuditAction.PHOTO_SAVE, datetime.now(UTC), actor, via, f"version {preview[1]}")
        w.changed()
    photo = store.get_photo(user_id)
    assert photo is not None
    return photo


def cancel_preview(store: PhotoVersions, user_id: str, *, actor: str, via: str) -> None:
    """Discard only the pending preview (NoPreview if none)."""
    with store.photo_writes(user_id) as w:
        if w.current(PhotoState.PREVIEW) is None:
            raise NoPreview("There is no preview to cancel.")
        w.retire(PhotoState.PREVIEW, PhotoState.CANCELLED)
        w.audit(AuditAction.PHOTO_CANCEL, datetime.now(UTC), actor, via)
        w.changed()


def remove_photo(store: PhotoVersions, user_id: str, *, actor: str, via: str) -> None:
    """Mark the saved photo removed and leave a removal record (NoPhoto if none)."""
    with store.photo_writes(user_id) as w:
        if w.current(PhotoState.SAVED) is None:
            raise NoPhoto("This user has no saved photo to remove.")
        w.retire(PhotoState.SAVED, PhotoState.REMOVED)
        at = datetime.now(UTC)
        w.set_removal_record(at)
        w.audit(AuditAction.PHOTO_REMOVE, at, actor, via)
        w.changed()


def clear_removal_record(store: PhotoVersions, user_id: str, *, actor: str, via: str) -> bool:
    """Drop the removal record; False if there was none."""
    with store.photo_writes(user_id) as w:
        cleared = w.set_removal_record(None)
        if cleared:
            w.audit(AuditAction.PHOTO_CLEAR_RECORD, datetime.now(UTC), actor, via)
            w.changed()
    return cleared


def _inline(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return fn(*args, **kwargs)
