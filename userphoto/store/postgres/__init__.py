"""The scale-out store: PostgreSQL through a psycopg 3 connection pool.

Same behaviour as the SQLite store, for many serving nodes on one database. Every write and
the `Change` rows describing it commit in one transaction; the changes are numbered under a
transaction-level advisory lock taken just before commit, so `seq` order is commit order and
a follower reading `seq > last` never skips a change that committed late. The commit also
notifies channel `userphoto_changes`, which `wait_for_changes` listens on.

Its statements are mostly the shared ones (`store/shared/`, over `sql.Dialect`); what is its
own: `schema` (column types, migrations, how values are kept), `connection` (pools, the read
replica, transactions, publishing changes), `users` (reads with aliases as arrays, COPY bulk
load), `status` (the org-wide facts query with its settings), `changes` (the change feed,
LISTEN/NOTIFY), `leases` and `writeback` (by the server's clock, SKIP LOCKED) and `dump`
(loading for `store copy`).
"""

from __future__ import annotations

from ..shared import SharedJobs
from .changes import ChangeFeed
from .connection import describe
from .dump import Dump
from .leases import Leases
from .schema import MIGRATIONS
from .status import Facts
from .users import Users
from .writeback import WritebackQueue

__all__ = ["MIGRATIONS", "PostgresStore", "describe"]


class PostgresStore(Users, Facts, ChangeFeed, Leases, WritebackQueue, Dump, SharedJobs):
    """The whole `Store` interface on a PostgreSQL database: the shared statements
    (`SharedJobs`) and
    this backend's own jobs."""
