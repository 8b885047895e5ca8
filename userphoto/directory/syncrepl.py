"""RFC 4533 content synchronization (syncrepl refreshAndPersist): the server pushes each change.

OpenLDAP has no persistent search; with its `syncprov` overlay it offers content sync instead.
`SyncFeed` holds one refreshAndPersist search open in a thread (python-ldap's
`ldap.syncrepl` consumer; everything else in the package stays on ldap3) and hands what the
server sends, in order, to the sync engine as `Event`s in chunks:

- refresh phase: the entries changed since the cookie (every entry without one), then the
  deletions (as deletes, or as a "present" listing whose complement is gone);
- persist phase: each add, change or delete as it commits, within milliseconds.

The cookie the server attaches moves with the events; the engine stores it only after it has
applied everything before it, so a restart resumes exactly where the store is. A lost
connection is retried with backoff (every URI in order) and resumes from the last cookie.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from queue import Empty, Queue
from typing import Any

import ldap
import ldap.ldapobject
import ldap.syncrepl

from .client import Attrs, Entry
from .config import DirectoryConfig

log = logging.getLogger(__name__)

COOKIE_KEY = "directory.syncrepl"
REFRESH_REQUIRED = 4096  # e-syncRefreshRequired: the cookie is too old; start without it
MAX_BACKOFF = 30.0
# Search refusals that mean "no content sync here" rather than "try again".
_UNSUPPORTED = (
    ldap.UNAVAILABLE_CRITICAL_EXTENSION,
    ldap.PROTOCOL_ERROR,
    ldap.UNWILLING_TO_PERFORM,
    ldap.INSUFFICIENT_ACCESS,
)


@dataclass
class Event:
    """One thing the server said, in the order it said it.

    kind: "session" (a new search started: `full` when it runs without a cookie),
    "entry" (added or changed: `entry`), "delete" (`uuids`), "present" (`uuids` still there),
    "present_end" (the present listing is complete: everything managed and not listed is
    gone), "refresh_done", "down" / "up" (the connection, with `error`), "unsupported"
    (`error` says why: the caller falls back to polling).
    """

    kind: str
    entry: Entry | None = None
    uuids: list[str] = field(default_factory=list)
    cookie: str | None = None
    full: bool = False
    error: str | None = None


class _Consumer(ldap.ldapobject.SimpleLDAPObject, ldap.syncrepl.SyncreplConsumer):
    """python-ldap's consumer, recording each callback as an Event."""

    def __init__(self, uri: str, cookie: str | None) -> None:
        super().__init__(uri)
        self.cookie = cookie
        self.events: list[Event] = []

    def syncrepl_get_cookie(self) -> str | None:
        return self.cookie

    def syncrepl_set_cookie(self, cookie: str) -> None:
        self.cookie = cookie
        # The cookie covers what came before it: attached to the last event, or on its own.
        if self.events and self.events[-1].cookie is None:
            self.events[-1].cookie = cookie
        else:
            self.events.append(Event("cookie", cookie=cookie))

    def syncrepl_entry(self, dn: str, attrs: dict[str, list[bytes]], uuid: str) -> None:
        lowered: Attrs = {k.lower(): list(v) for k, v in attrs.items()}
        self.events.append(Event("entry", entry=(dn, lowered), uuids=[uuid]))

    def syncrepl_delete(self, uuids: list[str]) -> None:
        self.events.append(Event("delete", uuids=list(uuids)))

    def syncrepl_present(self, uuids: list[str] | None, refreshDeletes: bool = False) -> None:
        if uuids is not None:
            last = self.events[-1] if self.events else None
            if last is not None and last.kind == "entry" and last.uuids == uuids:
                return  # python-ldap reports every refreshed entry as present too
            self.events.append(Event("present", uuids=list(uuids)))
        elif not refreshDeletes:
            self.events.append(Event("present_end"))

    def syncrepl_refreshdone(self) -> None:
        self.events.append(Event("refresh_done"))


class SyncFeed:
    """A refreshAndPersist search kept open in a thread; `get` returns chunks of events."""

    def __init__(
        self,
        config: DirectoryConfig,
        search_filter: str,
        attributes: list[str],
        cookie: str | None,
        *,
        chunk: int = 500,
    ) -> None:
        self.config = config
        self.search_filter = search_filter
        self.attributes = attributes
        self.cookie = cookie
        self.chunk = chunk
        self.sessions = 0  # searches started (1 + reconnects)
        self._queue: Queue[list[Event]] = Queue(maxsize=4)  # bounded: the reader waits for us
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="directory-syncrepl", daemon=True)
        self._conn: _Consumer | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(Empty):
                self._queue.get_nowait()
            self._thread.join(0.05)

    def get(self, timeout: float) -> list[Event] | None:
        try:
            return self._queue.get(timeout=timeout)
        except Empty:
            return None

    # --- the reader thread -----------------------------------------------------------------
    def _put(self, events: list[Event]) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self._queue.put(events, timeout=0.1)
                return

    def _run(self) -> None:
        delay = self.config.backoff
        while not self._stop.is_set():
            try:
                self._session()
                return  # stopped
            except _Unsupported as exc:
                self._put([Event("unsupported", error=str(exc))])
                return
            except _RefreshRequired:
                log.warning("syncrepl: the server no longer knows our cookie; reading everything")
                self.cookie = None
                continue
            except Exception as exc:  # the connection, or a message we could not decode
                error = describe(exc)
                log.warning("syncrepl: %s; reconnecting in %.1fs", error, delay)
                self._put([Event("down", error=f"the directory connection was lost: {error}")])
            finally:
                self._close()
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, MAX_BACKOFF)

    def _connect(self) -> _Consumer:
        errors: list[str] = []
        for uri in self.config.uris:
            conn = _Consumer(uri, self.cookie)
            try:
                configure(conn, self.config, uri)
                conn.simple_bind_s(self.config.bind_dn or "", self.config.bind_password or "")
                return conn
            except ldap.INVALID_CREDENTIALS:
                raise ldap.LDAPError(
                    f"{uri} refused the bind as {self.config.bind_dn or '(anonymous)'}: "
                    "wrong bind_dn or password"
                ) from None
            except ldap.LDAPError as exc:
                errors.append(f"{uri}: {describe(exc)}")
                with contextlib.suppress(Exception):
                    conn.unbind_s()
        raise ldap.SERVER_DOWN("no directory server answered (" + "; ".join(errors) + ")")

    def _session(self) -> None:
        conn = self._conn = self._connect()
        conn.timeout = -1  # the search runs for as long as we watch
        try:
            msgid = conn.syncrepl_search(
                self.config.base_dn,
                ldap.SCOPE_SUBTREE,
                mode="refreshAndPersist",
                filterstr=self.search_filter,
                attrlist=self.attributes,
            )
        except _UNSUPPORTED as exc:
            raise _Unsupported(describe(exc)) from None
        self.sessions += 1
        conn.events.append(Event("session", full=self.cookie is None))
        first = True
        while not self._stop.is_set():
            try:
                # Wait for the next message, then take whatever else is already there.
                # (Not timeout=0: python-ldap's poll answer then breaks its control decoding.)
                busy = conn.syncrepl_poll(msgid=msgid, timeout=0.001 if conn.events else 0.2)
            except ldap.TIMEOUT:
                busy = True
            except _UNSUPPORTED as exc:
                if first:
                    raise _Unsupported(describe(exc)) from None
                raise
            except ldap.LDAPError as exc:
                if _result(exc) == REFRESH_REQUIRED:
                    raise _RefreshRequired from None
                raise
            else:
                if first:
                    first = False
                    self._put([Event("up")])
                # The cookie moves with what arrived; a reconnect resumes from it.
                self.cookie = conn.cookie
                if conn.events and len(conn.events) < self.chunk and busy:
                    continue  # more may be waiting: batch them
            if conn.events:
                events, conn.events = conn.events, []
                self._put(events)
            if not busy:
                raise ldap.SERVER_DOWN("the server ended the content-sync search")

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.unbind_s()


class _Unsupported(Exception):
    pass


class _RefreshRequired(Exception):
    pass


def configure(conn: ldap.ldapobject.SimpleLDAPObject, config: DirectoryConfig, uri: str) -> None:
    """The same connection rules as the ldap3 client: timeouts, verified TLS, StartTLS."""
    set_option: Callable[[int, Any], None] = conn.set_option
    set_option(ldap.OPT_PROTOCOL_VERSION, 3)
    set_option(ldap.OPT_REFERRALS, 0)
    set_option(ldap.OPT_NETWORK_TIMEOUT, config.timeout)
    # A silently dead connection (a server that vanished without closing) is noticed.
    set_option(ldap.OPT_X_KEEPALIVE_IDLE, 30)
    set_option(ldap.OPT_X_KEEPALIVE_INTERVAL, 10)
    set_option(ldap.OPT_X_KEEPALIVE_PROBES, 3)
    conn.timeout = config.timeout  # for the bind and StartTLS
    if config.ldaps or config.starttls:
        set_option(
            ldap.OPT_X_TLS_REQUIRE_CERT,
            ldap.OPT_X_TLS_DEMAND if config.tls_verify else ldap.OPT_X_TLS_NEVER,
        )
        if config.ca_file:
            set_option(ldap.OPT_X_TLS_CACERTFILE, config.ca_file)
        set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        if config.starttls and not uri.lower().startswith("ldaps://"):
            conn.start_tls_s()


def _result(exc: ldap.LDAPError) -> int | None:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return info.get("result")


def describe(exc: BaseException) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else None
    if info is not None:
        text = info.get("desc", type(exc).__name__)
        if info.get("info"):
            text += f" ({info['info']})"
    else:
        text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")[:300]
