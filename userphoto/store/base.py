"""The one store interface. SQLite is the embedded default; PostgreSQL implements the same.

Callers never see SQL. Every write bumps `generation()`, which serving nodes poll to drop
their caches when anything changed, in this process or another.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ..imaging import Rendered
from ..model import ApiToken, AuditEntry, DirectoryThumbnail, Partner, Photo, PhotoState, User


@dataclass(frozen=True)
class PhotoStatus:
    """One user's photo facts in one row: what org-wide checks and listings need."""

    user: User  # without aliases (listings do not need them)
    sizes: tuple[int, ...]  # of the saved photo; () when none
    photo_created: datetime | None
    has_preview: bool
    directory_usable: bool | None  # None: no directory thumbnail
    directory_problem: str | None
    directory_seen: datetime | None
    directory_written_by_us: bool
    crop_reason: str | None = None  # the saved photo's CropReason value (None: no photo)


@dataclass(frozen=True)
class UserQuery:
    """A page of users for listings: free-text search over address, aliases and name."""

    search: str = ""
    offset: int = 0
    limit: int = 100


class StatusFilter(StrEnum):
    """Listing filters of the admin directory view."""

    ALL = "all"
    NO_PHOTO = "no_photo"  # no saved photo and no usable directory thumbnail
    DIRECTORY_ONLY = "directory_only"  # a usable directory thumbnail, no saved photo
    # An unusable directory thumbnail, an absent/disabled account, a removal record blocking
    # a usable directory photo, or picture option 'url' without an http(s) address.
    PROBLEMS = "problems"


@dataclass(frozen=True)
class StatusQuery:
    """A page of `PhotoStatus` rows: search (address, aliases, name), filter, paging."""

    search: str = ""
    filter: StatusFilter = StatusFilter.ALL
    offset: int = 0
    limit: int = 50


def address_hashes(address: str) -> tuple[str, str]:
    """Libravatar/Gravatar keys of one address: MD5 and SHA-256 of it trimmed and lower-cased."""
    norm = address.strip().lower().encode()
    return hashlib.md5(norm).hexdigest(), hashlib.sha256(norm).hexdigest()


class Store(ABC):
    # --- users -------------------------------------------------------------------------
    @abstractmethod
    def add_user(self, user: User, *, actor: str = "system", via: str = "cli") -> User:
        """Insert a user; raises Conflict if the id or any address is taken."""

    def add_users(
        self, users: list[User], *, actor: str = "system", via: str = "cli"
    ) -> list[User]:
        """Insert many users at once, all or nothing (Conflict if any id/address is taken).

        For bulk loads; backends override it with a faster path. The default adds one by one.
        """
        with self.batch():
            return [self.add_user(u, actor=actor, via=via) for u in users]

    @abstractmethod
    def update_user(self, user: User, *, actor: str = "system", via: str = "cli") -> User:
        """Replace a user's fields and aliases (by id)."""

    @abstractmethod
    def find_user(self, key: str) -> User | None:
        """By id, primary address or alias (addresses case-insensitive)."""

    @abstractmethod
    def find_user_by_hash(self, digest: str) -> User | None:
        """By the MD5 or SHA-256 hex of any address or alias."""

    @abstractmethod
    def list_users(self, query: UserQuery = UserQuery()) -> list[User]:
        """Users ordered by address."""

    @abstractmethod
    def iter_users(self, batch: int = 1000) -> Iterator[User]:
        """Every user, in batches, for org-wide work."""

    @abstractmethod
    def count_users(self, search: str = "") -> int: ...

    @abstractmethod
    def iter_photo_status(self, batch: int = 5000) -> Iterator[PhotoStatus]:
        """Every user with their photo facts, one query per batch (for org-wide checks)."""

    @abstractmethod
    def list_photo_status(self, query: StatusQuery | None = None) -> list[PhotoStatus]:
        """One page of users with their photo facts, ordered by address (admin listing).

        Filtered and paged by the database: fast at 100,000 users, never loads them all.
        """

    @abstractmethod
    def count_photo_status(self, query: StatusQuery | None = None) -> int:
        """How many users `query` matches (its offset and limit are ignored)."""

    # --- photos ------------------------------------------------------------------------
    @abstractmethod
    def put_photo(
        self, user_id: str, rendered: Rendered, state: PhotoState, *, actor: str, via: str
    ) -> Photo:
        """Store a photo version and all its renditions in one transaction.

        `SAVED` supersedes the current saved photo, clears any preview and any removal
        record. `PREVIEW` replaces the pending preview and leaves the saved photo alone.
        """

    @abstractmethod
    def get_photo(self, user_id: str, state: PhotoState = PhotoState.SAVED) -> Photo | None:
        """The current saved photo or pending preview."""

    @abstractmethod
    def get_rendition(self, photo_id: int, size: int) -> bytes | None: ...

    @abstractmethod
    def get_thumbnail(self, photo_id: int) -> bytes | None:
        """The directory thumbnail rendered with this photo (for write-back)."""

    @abstractmethod
    def save_preview(self, user_id: str, *, actor: str, via: str) -> Photo:
        """Promote the pending preview to the saved photo (NoPreview if none)."""

    @abstractmethod
    def cancel_preview(self, user_id: str, *, actor: str, via: str) -> None:
        """Discard only the pending preview (NoPreview if none)."""

    @abstractmethod
    def remove_photo(self, user_id: str, *, actor: str, via: str) -> None:
        """Mark the saved photo removed and leave a removal record (NoPhoto if none)."""

    @abstractmethod
    def clear_removal_record(self, user_id: str, *, actor: str, via: str) -> bool:
        """Drop the removal record; False if there was none."""

    @abstractmethod
    def photo_history(self, user_id: str) -> list[Photo]:
        """Every version, newest first."""

    @abstractmethod
    def saved_photo_hashes(self) -> dict[str, str]:
        """user id -> `source_hash` of their saved photo, for every user who has one.

        One query for the whole org, so bulk import can skip unchanged files without a
        lookup per file.
        """

    # --- directory thumbnail slot -----------------------------------------------------------
    @abstractmethod
    def put_directory_thumbnail(self, thumb: DirectoryThumbnail) -> None: ...

    def put_directory_thumbnails(self, thumbs: list[DirectoryThumbnail]) -> None:
        """Many at once, in one transaction (initial directory load). Default: one by one."""
        with self.batch():
            for thumb in thumbs:
                self.put_directory_thumbnail(thumb)

    @abstractmethod
    def get_directory_thumbnail(self, user_id: str) -> DirectoryThumbnail | None: ...

    @abstractmethod
    def delete_directory_thumbnail(self, user_id: str) -> None: ...

    # --- credentials (bearer tokens, federation partners) -----------------------------------
    @abstractmethod
    def add_token(self, token: ApiToken) -> None:
        """Store a member/admin token (its digest only)."""

    @abstractmethod
    def list_tokens(self) -> list[ApiToken]:
        """Every token, oldest first."""

    @abstractmethod
    def delete_token(self, token_id: str) -> bool:
        """Revoke a token by its id; False if there was none."""

    @abstractmethod
    def put_partner(self, partner: Partner) -> None:
        """Add or replace a federation partner (by domain)."""

    @abstractmethod
    def list_partners(self) -> list[Partner]: ...

    @abstractmethod
    def delete_partner(self, domain: str) -> bool: ...

    # --- audit, state, change tracking ------------------------------------------------------
    @abstractmethod
    def audit(self, entry: AuditEntry) -> None: ...

    @abstractmethod
    def audit_log(self, user_id: str | None = None, limit: int = 50) -> list[AuditEntry]:
        """Newest first."""

    @abstractmethod
    def get_state(self, key: str) -> str | None:
        """Small named values kept for adapters (sync cursors, last-run summaries)."""

    @abstractmethod
    def set_state(self, key: str, value: str) -> None: ...

    @abstractmethod
    def generation(self) -> int:
        """A number that grows with every committed change, from any process."""

    @abstractmethod
    def domains(self) -> set[str]:
        """The organization's mail domains (of every address and alias)."""

    @abstractmethod
    def close(self) -> None: ...

    def batch(self) -> AbstractContextManager[None]:
        """Group the writes inside into one transaction where the backend can (bulk sync).

        Each write inside still succeeds or fails on its own. The default groups nothing.
        """
        return nullcontext()
