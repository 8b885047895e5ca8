"""Errors that carry a stable code, a plain message and the HTTP status that fits them.

Every adapter (CLI, HTTP, web) turns a `UserPhotoError` into its own shape: a one-line reason
and a non-zero exit code, a JSON body with the status below, an inline form message.
"""

from __future__ import annotations

from enum import StrEnum


class UserPhotoError(Exception):
    """A failure the user can act on. `code` is stable; `message` is for people."""

    code: str = "error"
    status: int = 400
    retry_after: int | None = None  # seconds, for a 503's Retry-After

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if retry_after is not None:
            self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class NotFound(UserPhotoError):
    code = "not_found"
    status = 404


class UnknownUser(NotFound):
    code = "unknown_user"


class NoPhoto(NotFound):
    code = "no_photo"


class NoPreview(NotFound):
    code = "no_preview"


class AccountUnavailable(UserPhotoError):
    """The photo-store account cannot hold photos (absent / disabled), or only SD ones."""

    code = "account_unavailable"
    status = 409


class Conflict(UserPhotoError):
    code = "conflict"
    status = 409


class PhotoChanged(UserPhotoError):
    """A rendition vanished between reading the photo and its bytes (a concurrent change)."""

    status = 409

    def __init__(self) -> None:
        super().__init__("The photo changed while it was read; retry.")


class Forbidden(UserPhotoError):
    code = "forbidden"
    status = 403


class InvalidArgument(UserPhotoError):
    code = "invalid_argument"
    status = 400


class WorkersBusy(UserPhotoError):
    """Every image worker is busy and the queue is full: come back shortly."""

    code = "busy"
    status = 503
    retry_after = 2


class StoreError(UserPhotoError):
    """The store cannot do what was asked for a reason outside the request (disk, lock)."""

    code = "store_unavailable"
    status = 503


class StoreFull(StoreError):
    """The disk (or quota) holding the store is full; nothing was written."""

    code = "store_full"
    status = 507


class StoreLocked(StoreError):
    """Another process holds the store's write lock longer than a request may wait."""

    code = "store_locked"
    status = 503
    retry_after = 5


class StoreReadOnly(StoreError):
    """The store's folder or file is read-only: reads work, writes cannot."""

    code = "store_read_only"
    status = 503


class StoreUnavailable(StoreError):
    """The database cannot be reached (down, restarting, network). Nothing was changed
    unless the message says so; retrying after `retry_after` seconds is the remedy."""

    code = "store_unavailable"
    status = 503
    retry_after = 5  # seconds; the HTTP adapters send it as Retry-After


class ImageErrorKind(StrEnum):
    """Which image rule refused an upload (`ImageError.kind`; the code is `image_<kind>`)."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"  # bytes
    UNSUPPORTED_TYPE = "unsupported_type"
    CORRUPT = "corrupt"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_SMALL = "too_small"
    THUMBNAIL_TOO_LARGE = "thumbnail_too_large"
    BAD_CROP = "bad_crop"
    TOO_COSTLY = "too_costly"  # would need more memory or CPU than one job may use
    CRASHED = "crashed"  # the decoder died on it (a worker process, not the server)


_STATUS = {
    ImageErrorKind.EMPTY: 400,
    ImageErrorKind.TOO_LARGE: 413,
    ImageErrorKind.UNSUPPORTED_TYPE: 415,
    ImageErrorKind.CORRUPT: 422,
    ImageErrorKind.TOO_MANY_PIXELS: 422,
    ImageErrorKind.TOO_SMALL: 422,
    ImageErrorKind.THUMBNAIL_TOO_LARGE: 422,
    ImageErrorKind.BAD_CROP: 400,
    ImageErrorKind.TOO_COSTLY: 422,
    ImageErrorKind.CRASHED: 422,
}


class ImageError(UserPhotoError):
    """The image was refused; `kind` says which rule, the message says what to do."""

    def __init__(self, kind: ImageErrorKind, message: str):
        super().__init__(message, code=f"image_{kind.value}", status=_STATUS[kind])
        self.kind = kind

    def __reduce__(self) -> tuple:  # crosses from worker processes
        return (ImageError, (self.kind, self.message))
