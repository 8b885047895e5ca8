"""One LDAP connection with failover, retry with backoff, paged search and photo writes.

Everything else in the package talks to the directory through `DirectoryClient`, so the rules
for a directory that is down or slow live here once: try each URI in order, retry the whole
operation with exponential backoff, and give up with `DirectoryUnavailable` (which names the
servers tried and the last error, never the password).
"""

from __future__ import annotations

import contextlib
import logging
import math
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import ldap3
from ldap3.core import exceptions as lx

from ..errors import UserPhotoError
from .config import DirectoryConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
Attrs = dict[str, list[bytes]]  # attribute name (lower-case) -> raw values
Entry = tuple[str, Attrs]  # (dn, attributes)

AD_CAPABILITY = "1.2.840.113556.1.4.800"  # LDAP_CAP_ACTIVE_DIRECTORY_OID in the root DSE
PAGED_OID = "1.2.840.113556.1.4.319"
DIRSYNC_OID = "1.2.840.113556.1.4.841"
SYNC_REQUEST_OID = "1.3.6.1.4.1.4203.1.9.1.1"  # RFC 4533 content sync (OpenLDAP: syncprov)

# Failures worth another attempt: the network, the server going away, or the server saying
# it is busy. Bad credentials or a bad filter are not retried (they will not get better).
_TRANSIENT: tuple[type[BaseException], ...] = (
    lx.LDAPCommunicationError,
    lx.LDAPSessionTerminatedByServerError,
    lx.LDAPSocketOpenError,
    lx.LDAPStartTLSError,
    lx.LDAPBusyResult,
    lx.LDAPUnavailableResult,
    lx.LDAPTimeLimitExceededResult,
    lx.LDAPAdminLimitExceededResult,
    lx.LDAPResponseTimeoutError,
    OSError,
)


class DirectoryUnavailable(UserPhotoError):
    """No configured directory server answered after every retry."""

    code = "directory_unavailable"
    status = 503


class DirectoryRefused(UserPhotoError):
    """The directory answered but refused (credentials, permissions, a bad filter or DN)."""

    code = "directory_refused"
    status = 502


@dataclass(frozen=True)
class ServerInfo:
    uri: str
    is_ad: bool
    server_id: str  # the DC's dsServiceName on AD, else the URI: delta cursors are per server
    highest_usn: int | None  # AD highestCommittedUSN at connect time
    dirsync: bool = False  # the server offers the AD DirSync control
    syncrepl: bool = False  # the server offers RFC 4533 content synchronization


class DirectoryClient:
    def __init__(self, config: DirectoryConfig, *, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self._sleep = sleep
        self._conn: ldap3.Connection | None = None
        self.info: ServerInfo | None = None

    # --- connection ------------------------------------------------------------------------
    def server(self, uri: str) -> ldap3.Server:
        """An ldap3 server object for `uri` with this configuration's TLS and timeout."""
        tls = None
        if self.config.ldaps or self.config.starttls:
            # Verified by default: against ca_file when given, else the system's CAs.
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED if self.config.tls_verify else ssl.CERT_NONE,
                ca_certs_file=self.config.ca_file,
            )
        return ldap3.Server(uri, get_info=ldap3.NONE, connect_timeout=self.config.timeout, tls=tls)

    def _open(self, uri: str) -> ldap3.Connection:
        conn = ldap3.Connection(
            self.server(uri),
            user=self.config.bind_dn,
            password=self.config.bind_password,
            auto_bind=ldap3.AUTO_BIND_NONE,
            receive_timeout=max(1, math.ceil(self.config.timeout)),  # ldap3 wants an int
            raise_exceptions=True,
            read_only=False,
        )
        try:
            conn.open()
            if self.config.starttls and not uri.lower().startswith("ldaps://"):
                conn.start_tls()
        except BaseException:
            # ldap3 leaves the socket of a refused or failed connect open: close it here.
            sock = getattr(conn, "socket", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
            raise
        try:
            conn.bind()
        except lx.LDAPInvalidCredentialsResult:
            conn.unbind()
            raise DirectoryRefused(
                f"{uri} refused the bind as {self.config.bind_dn or '(anonymous)'}: "
                "wrong bind_dn or password."
            ) from None
        return conn

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def connect(self) -> ldap3.Connection:
        """A bound connection to the first URI that answers (failover in order)."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        errors: list[str] = []
        for uri in self.config.uris:
            try:
                conn = self._open(uri)
            except DirectoryRefused:
                raise
            except (lx.LDAPException, OSError) as exc:
                errors.append(f"{uri}: {_describe(exc)}")
                continue
            self._conn = conn
            self.info = self._root_dse(conn, uri)
            return conn
        raise DirectoryUnavailable("No directory server answered (" + "; ".join(errors) + ").")

    def _root_dse(self, conn: ldap3.Connection, uri: str) -> ServerInfo:
        conn.search(
            "",
            "(objectClass=*)",
            ldap3.BASE,
            attributes=[
                "supportedCapabilities",
                "supportedControl",
                "dsServiceName",
                "highestCommittedUSN",
            ],
        )
        attrs = _lower(conn.response[0]["raw_attributes"]) if conn.response else {}
        caps = {v.decode() for v in attrs.get("supportedcapabilities", [])}
        usn = attrs.get("highestcommittedusn")
        dsa = attrs.get("dsservicename")
        controls = {v.decode() for v in attrs.get("supportedcontrol", [])}
        return ServerInfo(
            uri=uri,
            is_ad=AD_CAPABILITY in caps,
            server_id=dsa[0].decode() if dsa else uri,
            highest_usn=int(usn[0]) if usn else None,
            dirsync=DIRSYNC_OID in controls,
            syncrepl=SYNC_REQUEST_OID in controls,
        )

    def refresh_info(self) -> ServerInfo:
        """Connect (with retry and failover) and re-read the root DSE: AD's
        highestCommittedUSN moves with every change."""

        def op(conn: ldap3.Connection) -> ServerInfo:
            assert self.info is not None  # connect() sets it before any operation runs
            self.info = self._root_dse(conn, self.info.uri)
            return self.info

        return self.retry(op, "the connection check")

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already gone; nothing to tidy up
                self._conn.unbind()
            self._conn = None

    def __enter__(self) -> DirectoryClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- retry -----------------------------------------------------------------------------
    def retry(self, operation: Callable[[ldap3.Connection], T], what: str = "") -> T:
        """Run `operation` on a live connection, reconnecting with backoff on transient errors."""
        delay = self.config.backoff
        last: BaseException | None = None
        for attempt in range(self.config.retries):
            if attempt:
                log.warning(
                    "directory: %s failed (%s); retrying in %.1fs",
                    what or "operation",
                    _describe(last),
                    delay,
                )
                self._sleep(delay)
                delay *= 2
            try:
                return operation(self.connect())
            except DirectoryUnavailable as exc:
                last = exc
                self.close()
            except _TRANSIENT as exc:
                last = exc
                self.close()
            except lx.LDAPOperationResult as exc:
                raise DirectoryRefused(
                    f"The directory refused {what or 'the request'}: {_describe(exc)}"
                ) from None
        raise DirectoryUnavailable(
            f"The directory did not answer {what or 'the request'} after "
            f"{self.config.retries} attempts: {_describe(last)}"
        )

    # --- reading ---------------------------------------------------------------------------
    def search(
        self, search_filter: str, attributes: list[str], *, base: str | None = None
    ) -> Iterator[list[Entry]]:
        """Pages of entries under `base_dn` (simple paged results throughout).

        A connection lost mid-search restarts the search (a paging cookie does not survive a
        reconnect); callers de-duplicate, and their change detection makes repeats cheap.
        """
        base = base or self.config.base_dn
        cookie: bytes | None = None
        restarts = 0
        while True:

            def page(
                conn: ldap3.Connection, cookie: bytes | None = cookie
            ) -> tuple[list[Entry], bytes | None]:
                conn.search(
                    base,
                    search_filter,
                    ldap3.SUBTREE,
                    attributes=attributes,
                    paged_size=self.config.page_size,
                    paged_cookie=cookie,
                )
                entries = [
                    (r["dn"], _lower(r["raw_attributes"]))
                    for r in conn.response
                    if r.get("type") == "searchResEntry"
                ]
                control = (conn.result.get("controls") or {}).get(PAGED_OID)
                return entries, (control["value"]["cookie"] or None) if control else None

            try:
                entries, cookie = self.retry(page, "the user search")
            except DirectoryUnavailable:
                raise
            except DirectoryRefused:
                if cookie is None or restarts >= self.config.retries:
                    raise
                restarts += 1  # a stale cookie after a reconnect: start the search over
                cookie = None
                continue
            yield entries
            if not cookie:
                return

    def read(self, dn: str, attributes: list[str]) -> Attrs | None:
        def op(conn: ldap3.Connection) -> Attrs | None:
            try:
                conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=attributes)
            except lx.LDAPNoSuchObjectResult:
                return None
            return _lower(conn.response[0]["raw_attributes"]) if conn.response else None

        return self.retry(op, f"reading {dn}")

    def dirsync(
        self, search_filter: str, attributes: list[str], cookie: bytes | None
    ) -> tuple[list[Entry], bytes]:
        """AD DirSync: the entries changed since `cookie` (all of them without one), and the
        next cookie. Deleted objects come back too, with isDeleted (show-deleted control)."""

        def op(conn: ldap3.Connection) -> tuple[list[Entry], bytes]:
            sync = conn.extend.microsoft.dir_sync(
                self.config.base_dn,
                search_filter,
                attributes=attributes,
                cookie=cookie,
                incremental_values=False,
            )
            entries: list[Entry] = []
            while True:
                try:
                    response = sync.loop()
                except lx.LDAPExtensionError as exc:  # no DirSync answer: treat as refused
                    raise lx.LDAPUnwillingToPerformResult(str(exc)) from None
                entries.extend(
                    (r["dn"], _lower(r["raw_attributes"]))
                    for r in response
                    if r.get("type") == "searchResEntry"
                )
                if not sync.more_results:
                    return entries, sync.cookie

        return self.retry(op, "the DirSync search")

    # --- writing ---------------------------------------------------------------------------
    def write_photo(self, dn: str, data: bytes | None) -> None:
        """Replace the photo attribute of `dn` with `data`, or clear it when None."""
        attribute = self.config.photo_attribute
        values: list[bytes] = [data] if data else []

        def op(conn: ldap3.Connection) -> None:
            # Clearing a photo that was not there is already the state we want.
            with contextlib.suppress(lx.LDAPNoSuchAttributeResult):
                conn.modify(dn, {attribute: [(ldap3.MODIFY_REPLACE, values)]})

        self.retry(op, f"writing {attribute} of {dn}")


def _lower(attrs: dict[str, Any]) -> Attrs:
    return {k.lower(): list(v or ()) for k, v in attrs.items()}


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no error recorded"
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")[:300]
