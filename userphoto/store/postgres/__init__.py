"""The scale-out store: PostgreSQL through a psycopg 3 connection pool.

Same behaviour as the SQLite store, for many serving nodes on one database. Every write and
the `Change` rows describing it commit in one transaction; the changes are numbered under a
transaction-level advisory lock taken just before commit, so `seq` order is commit order and
a follower reading `seq > last` never skips a change that committed late. The commit also
notifies channel `userphoto_changes`, which `wait_for_changes` listens on.

One module a job, joined here into `PostgresStore`: `schema` (tables, migrations, how values
are kept), `connection` (pools, the read replica, transactions, publishing changes), `users`,
`serving` (one read per serving cache miss),
`status` (the listing and org-wide walks), `photos`, `thumbnails` (the directory slot),
`credentials`, `sessions` (web sessions and their keys), `audit`, `state`, `changes` (the
change feed), `leases`, `writeback` (the
queue) and `dump` (`store copy`).
"""

from __future__ import annotations

from ..shared.audit import AuditLog
from ..shared.credentials import Credentials
from ..shared.photos import Photos
from ..shared.sessions import WebSessions
from ..shared.state import AdapterState
from ..shared.thumbnails import DirectoryThumbnails
from .changes import ChangeFeed
from .connection import describe
from .dump import Dump
from .leases import Leases
from .schema import MIGRATIONS
from .serving import ServingReads
from .status import Facts
from .users import Users
from .writeback import WritebackQueue

__all__ = ["MIGRATIONS", "PostgresStore", "describe"]


class PostgresStore(
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
    """The whole `Store` interface on a PostgreSQL database."""
