"""The store's statements written once over `sql.Dialect`, one module a job; each backend
joins `SharedJobs` with its own plumbing (connections, change feed, leases, migrations, bulk
loads)."""

from __future__ import annotations

from .audit import AuditLog
from .credentials import Credentials
from .photos import Photos
from .serving import ServingReads
from .sessions import WebSessions
from .state import AdapterState
from .thumbnails import DirectoryThumbnails


class SharedJobs(
    ServingReads,
    Photos,
    DirectoryThumbnails,
    Credentials,
    WebSessions,
    AuditLog,
    AdapterState,
):
    """The jobs whose statements both stores run as they are."""
