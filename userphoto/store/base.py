"""The store facade. SQLite is the embedded default; PostgreSQL implements the same.

Callers never see SQL. Every write that changes an answer appends to a per-user change feed
(`Change`, `changes_since`, `wait_for_changes`) in the same transaction; serving processes
follow it and drop only what each change touches.

`Store` offers every role at once, each method with the contract both stores keep; the
role-sized interfaces (`roles.py`) are what new code asks for.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..findings import UserFacts
from ..model import (
    ApiToken,
    AuditEntry,
    DirectoryThumbnail,
    Partner,
    Photo,
    PhotoState,
    User,
)
from .columns import PHOTO_COLUMNS, THUMBNAIL_COLUMNS, USER_COLUMNS

if TYPE_CHECKING:
    from .roles import PhotoWrites


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
class FactsGroup:
    """The users who share one `UserFacts` value: how many, and the first few by address."""

    facts: UserFacts
    users: int
    first: tuple[str, ...]  # the first addresses in byte order, at most the number asked


@dataclass(frozen=True)
class Serving:
    """Everything serving needs about one key (`Store.serving`), read together."""

    user: User  # with aliases (the cache's per-user tokens need every address)
    photo: Photo | None  # the saved photo
    directory: DirectoryThumbnail | None  # the directory thumbnail slot
    # (size, JPEG) of the saved photo's rendition `resolve.choose_size(sizes, size, None)`
    # picks for the size asked; None without a saved photo.
    rendition: tuple[int, bytes] | None = None


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


class ChangeKind(StrEnum):
    USER = "user"  # a user's fields, aliases, account state, photos, preview, removal
    # record, directory thumbnail slot: drop that user's answers and
    # their id/address/alias/hash lookups
    CREDENTIALS = "credentials"  # tokens, partners: drop only credential lookups
    ORG = "org"  # anything that can change every answer (rare): drop everything


@dataclass(frozen=True)
class Change:
    seq: int  # grows with every committed change, store-wide (a sequence / autoincrement)
    kind: ChangeKind  # StrEnum: USER, CREDENTIALS, ORG
    user_id: str | None  # set for USER; None otherwise


@dataclass(frozen=True)
class Lease:
    """Who does a piece of work that only one process may do (the active `sync --watch`)."""

    name: str
    holder: str  # "host:pid"
    since: datetime  # held without interruption since
    expires: datetime  # unless renewed: then anyone may take it


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser session as every node sees it (times: Unix seconds). The cookie
    names it by `id`; ending it here ends it on every node."""

    id: str
    address: str
    user_id: str | None  # the user it names (None: an admin outside the directory)
    token_id: str | None  # signed in with this API token (revoking it ends the session)
    created: float
    seen: float  # last use, written at most once a minute (the idle lifetime counts from it)
    expires: float  # the absolute lifetime's end


@dataclass(frozen=True)
class Table:
    """One table as `store copy` moves it: its columns, its key (the copy order) and the
    columns whose neutral Python type differs from str/int/bytes/None."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    times: frozenset[str] = frozenset()  # datetime (aware, UTC)
    flags: frozenset[str] = frozenset()  # bool
    json: frozenset[str] = frozenset()  # dict
    int_lists: frozenset[str] = frozenset()  # tuple[int, ...]


# Everything a deployment holds, in an order that satisfies foreign keys. The change feed
# is not copied: the target starts its own (with one ORG change after the copy).
TABLES: tuple[Table, ...] = (
    Table(
        "users",
        USER_COLUMNS,
        ("id",),
        times=frozenset({"removal_record", "created", "updated"}),
        flags=frozenset({"directory_gone"}),
        json=frozenset({"attributes"}),
    ),
    Table("aliases", ("address", "user_id"), ("address",)),
    Table("address_hashes", ("digest", "user_id"), ("digest",)),
    Table(
        "photos",
        # The columns a photo is read by, and the directory thumbnail rendered with it.
        (*PHOTO_COLUMNS[:10], "thumbnail", *PHOTO_COLUMNS[10:]),
        ("id",),
        times=frozenset({"created"}),
        int_lists=frozenset({"sizes"}),
    ),
    Table("renditions", ("photo_id", "size", "jpeg"), ("photo_id", "size")),
    Table(
        "directory_thumbnails",
        THUMBNAIL_COLUMNS,
        ("user_id",),
        times=frozenset({"seen"}),
        flags=frozenset({"written_by_us"}),
    ),
    Table(
        "api_tokens",
        ("id", "digest", "address", "admin", "created", "expires", "last_used"),
        ("id",),
        times=frozenset({"created", "expires", "last_used"}),
        flags=frozenset({"admin"}),
    ),
    # Session keys move so that sessions survive a copy; the sessions themselves do not
    # (a copy is a new deployment: people sign in again).
    Table("session_keys", ("id", "key", "created"), ("id",)),
    Table(
        "partners",
        ("domain", "algorithm", "key", "created"),
        ("domain",),
        times=frozenset({"created"}),
    ),
    Table(
        "audit",
        ("id", "at", "actor", "user_id", "action", "via", "detail"),
        ("id",),
        times=frozenset({"at"}),
    ),
    Table("state", ("key", "value"), ("key",)),
    Table(
        "writeback_queue",
        ("user_id", "version", "queued"),
        ("user_id",),
        times=frozenset({"queued"}),
    ),
)


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
    def photo_writes(self, user_id: str) -> AbstractContextManager[PhotoWrites]:
        """The statements of one photo change for `user_id`, in one transaction that commits
        when the block ends (or rolls back on an error). userphoto/photos.py holds the
        lifecycle rules that decide which of them run (`put_photo`, `save_preview`, ...)."""

    @abstractmethod
    def get_photo(self, user_id: str, state: PhotoState = PhotoState.SAVED) -> Photo | None:
        """The current saved photo or pending preview."""

    @abstractmethod
    def get_rendition(self, photo_id: int, size: int) -> bytes | None: ...

    @abstractmethod
    def get_thumbnail(self, photo_id: int) -> bytes | None:
        """The directory thumbnail rendered with this photo (for write-back)."""

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
    def touch_token(self, token_id: str, at: datetime) -> None:
        """Record a token's last use (no change is published: nothing served depends on it)."""

    # --- web sessions and their keys (shared by every node) ---------------------------------
    @abstractmethod
    def session_keys(self) -> list[tuple[str, str, float]]:
        """Every session key as (id, key, created), newest first."""

    @abstractmethod
    def add_session_key(self, key_id: str, key: str, created: float) -> None: ...

    @abstractmethod
    def drop_session_keys(self, before: float) -> int:
        """Forget keys created before `before` (aged out: nothing they signed is valid)."""

    @abstractmethod
    def start_session(self, session: WebSession) -> None:
        """Record a new session (and forget those past their absolute lifetime)."""

    @abstractmethod
    def get_session(self, session_id: str) -> WebSession | None:
        """The session, None when it ended, expired or its user left the directory."""

    @abstractmethod
    def touch_session(self, session_id: str, seen: float) -> None: ...

    @abstractmethod
    def end_session(self, session_id: str) -> bool: ...

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
    def changes_since(self, seq: int, limit: int = 10_000) -> list[Change]:
        """Committed changes with seq > `seq`, oldest first (at most `limit`)."""

    @abstractmethod
    def wait_for_changes(self, seq: int, timeout: float) -> list[Change]:
        """Like changes_since, but blocks up to `timeout` s until there is at least one.
        SQLite: a short poll of the indexed change table (cheap). PostgreSQL: LISTEN/NOTIFY
        (channel `userphoto_changes`), with a catch-up `changes_since` read after every
        (re)connect so a dropped connection loses nothing."""

    @abstractmethod
    def latest_seq(self) -> int:
        """The newest change's seq in the change feed (0 when empty): grows with every
        committed change, so a follower starts from it."""

    @abstractmethod
    def domains(self) -> set[str]:
        """The organization's mail domains (of every address and alias)."""

    @abstractmethod
    def close(self) -> None: ...

    # --- leases (one active worker among many processes and machines) ---------------------
    @abstractmethod
    def take_lease(self, name: str, holder: str, ttl: float) -> Lease | None:
        """Take or renew the named lease for `holder` for `ttl` seconds; None while another
        holder's lease has not expired. Atomic across processes and nodes."""

    @abstractmethod
    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean stop), if `holder` has it."""

    @abstractmethod
    def get_lease(self, name: str) -> Lease | None:
        """The lease as last taken (it may have expired: compare `expires`)."""

    # --- the directory write-back queue (many writers, many drainers) ----------------------
    @abstractmethod
    def queue_writeback(self, user_id: str) -> None:
        """Queue (or queue again) a user's directory write-back; one atomic statement, so
        concurrent writers never lose each other's entries."""

    @abstractmethod
    def claim_writebacks(self, worker: str, limit: int, hold: float) -> list[tuple[str, int]]:
        """Claim up to `limit` queued entries nobody holds, for `hold` seconds (then anyone
        may claim them again: a crashed drainer loses nothing). Returns (user id, version)."""

    @abstractmethod
    def finish_writeback(self, user_id: str, version: int) -> None:
        """Drop a claimed entry, unless it was queued again since the claim (then it stays,
        free to be claimed at once)."""

    @abstractmethod
    def pending_writebacks(self) -> list[str]:
        """Every queued user id, oldest first."""

    # --- moving a whole deployment (`userphoto store copy`) ------------------------------
    @abstractmethod
    def dump_rows(
        self, table: Table, after: tuple[Any, ...] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Up to `limit` rows of `table` with a key above `after`, in key order (byte-wise
        for text), as neutral Python values in `table.columns` order."""

    @abstractmethod
    def last_key(self, table: Table) -> tuple[Any, ...] | None:
        """The highest key in `table` (in `dump_rows` order), None when empty."""

    @abstractmethod
    def load_rows(self, table: Table, rows: list[tuple[Any, ...]]) -> int:
        """Insert rows as `dump_rows` gives them, in one transaction; rows whose key is
        already there are left alone. Returns how many were inserted."""

    @abstractmethod
    def finish_load(self) -> None:
        """After loading: id counters past the loaded ids; one ORG change for followers."""

    # --- serving: one read per cache miss ------------------------------------------------------
    @abstractmethod
    def serving(
        self, key: str, size: int | None = None, *, by_hash: bool = False
    ) -> Serving | None:
        """The user `key` names (id, address or alias, as `find_user`; with `by_hash` an MD5
        or SHA-256 of an address, as `find_user_by_hash`) with their saved photo, directory
        slot and the rendition `size` picks (None: the largest). None for an unknown key,
        after the same reads a known one costs (timing must not tell them apart).

        One query (serving_sql); tests check it against the single reads."""

    def batch(self) -> AbstractContextManager[None]:
        """Group the writes inside into one transaction where the backend can (bulk sync).

        Each write inside still succeeds or fails on its own. The default groups nothing.
        """
        return nullcontext()

    # --- org-wide checks (doctor) ---------------------------------------------------------
    @abstractmethod
    def photo_facts(self, first: int = 10) -> list[FactsGroup]:
        """Every user counted by their `UserFacts` (store/facts_sql.py), with the `first`
        addresses of each group in byte order: one set-based query, whatever the size of the
        organization (a few hundred groups at most)."""
