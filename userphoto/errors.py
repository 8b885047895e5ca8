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


NOT_THE_FILE = (
    "This is not a problem with the photo: try again later, and tell the administrator if it "
    "keeps happening."
)


class WorkersUnavailable(UserPhotoError):
    """The image workers failed for a reason of the server's (a limit they cannot set, a
    worker that will not start or was killed): never answered as the user's bad file."""

    code = "image_workers_failed"
    status = 503
    retry_after = 30


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
    CHECK_FAILED = "check_failed"  # an automatic photo check set to `refuse` failed


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
    ImageErrorKind.CHECK_FAILED: 422,
}


class ImageError(UserPhotoError):
    """The image was refused; `kind` says which rule, the message says what to do."""

    def __init__(self, kind: ImageErrorKind, message: str):
        super().__init__(message, code=f"image_{kind.value}", status=_STATUS[kind])
        self.kind = kind

    def __reduce__(self) -> tuple:  # crosses from worker processes
        return (ImageError, (self.kind, self.message))


class PhotoCheckFailed(ImageError):
    """An automatic photo check whose action is `refuse` failed (checks.py); the message
    names the check and its measured value against the threshold."""

    def __init__(self, message: str, check: str = ""):
        super().__init__(ImageErrorKind.CHECK_FAILED, message)
        self.code = "photo_check_failed"
        self.check = check

    def __reduce__(self) -> tuple:
        return (PhotoCheckFailed, (self.message, self.check))


# --- the image limits, worded once -----------------------------------------------------------
# Every surface (web page, CLI, native API, Graph) refuses with these words, whichever layer
# sees the problem first (a bounded body reader, the header checks).
ACCEPTED_FORMATS = "JPEG, PNG, GIF, WebP or AVIF"


def size_text(n: int) -> str:
    """Bytes as people read them: 4.0 MB, 812 KB."""
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def too_large(limit: int) -> ImageError:
    """Over `[limits] max_bytes`. No size is named: bounded readers stop one byte past it."""
    return ImageError(
        ImageErrorKind.TOO_LARGE,
        f"The file is larger than the {size_text(limit)} limit. "
        "Export a smaller JPEG (648×648 is plenty).",
    )


def too_many_pixels(limit: int, width: int | None = None, height: int | None = None) -> ImageError:
    size = (
        f"is {width}×{height} ({width * height:,} pixels)"
        if width and height
        else "has far too many pixels"
    )
    return ImageError(
        ImageErrorKind.TOO_MANY_PIXELS,
        f"The image {size}; the limit is {limit:,} pixels. Scale it down first.",
    )


def too_small(width: int, height: int, min_side: int) -> ImageError:
    return ImageError(
        ImageErrorKind.TOO_SMALL,
        f"The image is {width}×{height}; photos must be at least {min_side}×{min_side} "
        "(648×648 is recommended).",
    )


def unsupported_type(what: str, accepted: str = ACCEPTED_FORMATS) -> ImageError:
    """`what` says what the file is ("a GIF image", "a PDF, not an image")."""
    return ImageError(
        ImageErrorKind.UNSUPPORTED_TYPE, f"This file is {what}. Upload a {accepted} photo."
    )
