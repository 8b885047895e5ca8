"""The embedded store: one SQLite file in WAL mode, photo bytes as blobs beside their rows.

One module a job, joined here into `SQLiteStore`: `schema` (tables, migrations, how values are
written), `connection` (connections, transactions, errors), `users`, `serving` (one read per
serving cache miss), `status` (the listing and org-wide walks), `photos`, `thumbnails` (the
directory slot), `credentials`, `sessions` (web sessions and their keys), `audit`, `state`,
`changes` (the change feed), `leases`,
`writeback` (the queue) and `dump` (`store copy`).
"""

from __future__ import annotations

from ..shared.audit import AuditLog
from ..shared.credentials import Credentials
from ..shared.photos import Photos
from ..shared.sessions import WebSessions
from ..shared.state import AdapterState
from ..shared.thumbnails import DirectoryThumbnails
from .changes import ChangeFeed
from .connection import BUSY_SECONDS
from .dump import Dump
from .leases import Leases
from .schema import MIGRATIONS
from .serving import ServingReads
from .status import Facts
from .users import Users
from .writeback import WritebackQueue

__all__ = ["BUSY_SECONDS", "MIGRATIONS", "SQLiteStore"]


class SQLiteStore(
    Users,
    Facts,
    ServingReads,
    Photos,
    DirectoryThumbnails,
    Credentials,
    WebSessions,
    AuditLog,
    AdapterState,
    ChangeFeed,
    Leases,
    WritebackQueue,
    Dump,
):
    """The whole `Store` interface on one SQLite file."""
