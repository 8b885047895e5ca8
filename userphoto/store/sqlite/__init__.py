"""The embedded store: one SQLite file in WAL mode, photo bytes as blobs beside their rows.

Its statements are mostly the shared ones (`store/shared/`, over `sql.Dialect`); what is its
own: `schema` (column types, migrations, how values are written), `connection` (connections,
transactions, errors), `users` (reads and the bulk load), `status` (the org-wide facts query),
`changes` (the change feed, polled), `leases` and `writeback` (one claimer at a time, Unix
seconds) and `dump` (loading for `store copy`).
"""

from __future__ import annotations

from ..shared import SharedJobs
from .changes import ChangeFeed
from .connection import BUSY_SECONDS
from .dump import Dump
from .leases import Leases
from .schema import MIGRATIONS
from .status import Facts
from .users import Users
from .writeback import WritebackQueue

__all__ = ["BUSY_SECONDS", "MIGRATIONS", "SQLiteStore"]


class SQLiteStore(Users, Facts, ChangeFeed, Leases, WritebackQueue, Dump, SharedJobs):
    """The whole `Store` interface on one SQLite file: the shared statements
    (`SharedJobs`) and
    this backend's own jobs."""
