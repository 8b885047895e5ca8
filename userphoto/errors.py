"""Errors that carry a stable code, a plain message and the HTTP status that fits them.

Every adapter (CLI, HTTP, web) turns a `UserPhotoError` into its own shape: a one-line reason
and a non-zero exit code, a JSON body with the status below, an inline form message.
"""

from __future__ import annotations


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
