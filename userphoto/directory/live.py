"""`sync --watch` on a server that pushes its changes (RFC 4533 syncrepl refreshAndPersist).

`SyncFeed` (syncrepl.py) delivers what the server says, in order; this applies it through
the same engine steps a full or delta sync uses (parse, adopt, photo checks by content hash,
the page pipeline, and `mark_gone` with its deletion guard), then stores the server's cookie
in the same transaction, so a restart resumes exactly after what the store holds:

- no stored cookie (first run, or the filter/attributes changed): the refresh phase reads
  every entry, like `sync --full`, and marks the users it did not see gone (guarded);
- a stored cookie: the refresh phase brings only what changed while we were away, then
  deletions (as deletes, or as a listing of who is still there);
- persist phase: each add, change or delete, as it commits.

Deletions go through the deletion guard as a batch: those of a refresh together, and in the
persist phase those of one burst (applied once no deletion has come for `SETTLE` seconds; the
cookie is stored only after them). A batch that would mark more than `delete_guard` of the
directory users gone is refused and reported, exactly as a full sync refuses; `sync --full
--force` applies it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..errors import UserPhotoError
from ..model import User
from . import status
from .client import Entry
from .entry import Flavour
from .status import SyncReport, now
from .sync.photos import photo_workers
from .syncrepl import COOKIE_KEY, Event, SyncFeed

if TYPE_CHECKING:
    from .sync.engine import SyncEngine

log = logging.getLogger(__name__)

# Deletions are applied once none has arrived for this long: a burst (a script deleting
# people, a subtree moved out of base_dn) meets the deletion guard as one batch.
SETTLE = 0.5


class SyncreplWatch:
    def __init__(self, engine: SyncEngine, recorder: status.WatchRecorder):
        self.engine = engine
        self.store = engine.store
        self.config = engine.config
        self.recorder = recorder
        self.flavour = Flavour.of(self.config, False)
        self.attributes = self.flavour.attributes(self.config)
        # What a cookie is valid for: another base, filter or attribute list needs a full read.
        self.identity = {
            "base": self.config.base_dn,
            "filter": self.flavour.user_filter,
            "attributes": self.attributes,
        }
        self.report = SyncReport("delta")
        self.refreshing = False
        self.full = False
        self.users: dict[str, User] | None = None  # every user, during a full refresh
        self.seen: set[str] = set()  # user ids the full refresh saw
        self.present: set[str] = set()  # entryUUIDs listed present in this refresh
        self.deletes: list[str] = []  # deleted entryUUIDs, applied once the burst settles
        self.last_delete = 0.0
        self.cookie: str | None = None  # the newest cookie not stored yet
        self.after_cycle: Callable[[SyncReport], None] | None = None
        self.t0 = time.perf_counter()

    # --- the loop --------------------------------------------------------------------------
    def run(
        self,
        stop: threading.Event,
        *,
        after_cycle: Callable[[SyncReport], None] | None = None,
        drain: Callable[[], object] | None = None,  # its result is not used
    ) -> str | None:
        """Until `stop`; returns None, or why syncrepl cannot be used (then the caller polls)."""
        self.after_cycle = after_cycle
        cookie = self.stored_cookie()
        if cookie is None:
            photo_workers()  # a full read ahead; before the feed thread starts
        self.engine.load_users(False)  # the directory-id index
        feed = SyncFeed(
            self.config,
            self.flavour.user_filter,
            self.attributes,
            cookie,
            chunk=self.config.page_size,
        )
        self.recorder.update(mode="syncrepl", sessions=0)
        feed.start()
        last_drain = 0.0
        try:
            while not stop.is_set():
                events = feed.get(timeout=0.1)
                if events:
                    fallback = self.apply(events)
                    if fallback is not None:
                        return fallback
                    self.recorder.update(sessions=feed.sessions)
                if self.deletes and time.monotonic() - self.last_delete >= SETTLE:
                    with self.store.batch():
                        self._flush_deletes()
                        self._save_cookie()
                    self._end_chunk()
                if drain is not None and time.monotonic() - last_drain >= (
                    self.config.watch_interval
                ):
                    last_drain = time.monotonic()
                    try:
                        drain()  # write-backs that failed earlier (the directory was down)
                    except UserPhotoError as exc:
                        log.warning("write-back retry failed: %s", exc)
                self.recorder.beat()
        finally:
            # Deletions still settling are not applied, and the stored cookie is from before
            # them: the server sends them again on the next start.
            feed.stop()
            self.engine.client.close()
        return None

    def stored_cookie(self) -> str | None:
        raw = self.store.get_state(COOKIE_KEY)
        if not raw:
            return None
        stored = json.loads(raw)
        if {k: stored.get(k) for k in self.identity} != self.identity:
            return None  # the cookie describes another view of the directory
        return stored.get("value")

    # --- one chunk of events ---------------------------------------------------------------
    def apply(self, events: list[Event]) -> str | None:
        """Apply events in order, in one transaction with the cookie that covers them."""
        entries: list[Entry] = []

        def flush() -> None:
            if entries:
                self._entries(entries)
                entries.clear()

        with self.store.batch():
            for event in events:
                kind = event.kind
                if kind == "entry":
                    # Keep the server's order (a delete, then a re-add of the same address).
                    self._flush_deletes()
                    assert event.entry is not None
                    entries.append(event.entry)
                    if self.refreshing:
                        self.present.update(event.uuids)
                elif kind == "delete":
                    flush()
                    self.deletes.extend(event.uuids)
                    self.last_delete = time.monotonic()
                elif kind == "present":
                    self.present.update(event.uuids)
                elif kind in ("present_end", "refresh_done", "session"):
                    flush()
                    self._flush_deletes()
                    if kind == "present_end":
                        self._gone_unless_present()
                    elif kind == "refresh_done":
                        self._refresh_done()
                    else:
                        self._session(event.full)
                elif kind == "down":
                    self.recorder.update(state="degraded", error=event.error)
                elif kind == "up":
                    self.recorder.update(state="running", error=None)
                elif kind == "unsupported":
                    return (
                        f"the server refused the content-sync search ({event.error}); on "
                        "OpenLDAP, load the syncprov overlay on this database"
                    )
                if event.cookie is not None:
                    self.cookie = event.cookie
            flush()
            self._save_cookie()
        self._end_chunk()
        return None

    def _save_cookie(self) -> None:
        """Store the newest cookie, unless deletions before it are still settling."""
        if self.cookie is not None and not self.deletes:
            self.store.set_state(COOKIE_KEY, json.dumps({**self.identity, "value": self.cookie}))
            self.cookie = None

    def _end_chunk(self) -> None:
        """Report what the persist phase applied (a refresh reports once, when done)."""
        if self.refreshing or self.deletes:
            return
        report = self.report
        if report.seen or report.gone or report.error:
            self._finish(report, record=report.changed)
            if self.after_cycle is not None and report.changed:
                self.after_cycle(report)
        self._new_report()

    def _session(self, full: bool) -> None:
        """A (re)started search: a refresh phase comes first."""
        self.refreshing, self.full = True, full
        self.report = SyncReport("full" if full else "delta")
        self.report.server = self.engine.client.info.uri if self.engine.client.info else None
        self.t0 = time.perf_counter()
        self.present, self.seen = set(), set()
        self.users = self.engine.load_users(True) if full else None

    def _entries(self, entries: list[Entry]) -> None:
        size = self.config.page_size
        pages: Iterator[list[Entry]] = (entries[k : k + size] for k in range(0, len(entries), size))
        self.engine.apply_pages(pages, self.flavour, self.users, self.report, self.seen)

    def _flush_deletes(self) -> None:
        """Deleted entries, as one batch through the deletion guard."""
        if not self.deletes:
            return
        index = self.engine.index
        users = {u.id: u for u in self.store.iter_users()}
        gone = {index.get(u, u) for u in self.deletes}
        self.deletes = []
        self.engine.mark_gone(users, set(users) - gone, self.report, force=False)

    def _gone_unless_present(self) -> None:
        """The refresh listed who is still there: everyone else managed is gone (guarded)."""
        users = {u.id: u for u in self.store.iter_users()}
        seen = {
            u.id for u in users.values() if u.attributes.get("directory_id", u.id) in self.present
        }
        self.engine.mark_gone(users, seen, self.report, force=False)
        self.present = set()

    def _refresh_done(self) -> None:
        report = self.report
        if self.full and self.users is not None:
            # Like `sync --full`: whoever the complete read did not see is gone (guarded).
            self.engine.mark_gone(self.users, self.seen, report, force=False)
        self.refreshing, self.users, self.present = False, None, set()
        self.engine.end_full_read()
        self._finish(report, record=report.changed or report.mode == "full")
        self.recorder.update(
            refresh={
                "full": report.mode == "full",
                "entries": report.seen,
                "deleted": report.gone,
                "seconds": report.seconds,
                "at": report.finished,
            }
        )
        log.info("syncrepl refresh done: %s", report.summary())
        if self.after_cycle is not None:
            self.after_cycle(report)
        self._new_report()

    def _new_report(self) -> None:
        self.report = SyncReport("delta")
        self.report.server = self.engine.client.info.uri if self.engine.client.info else None
        self.t0 = time.perf_counter()

    def _finish(self, report: SyncReport, *, record: bool) -> None:
        report.seconds = round(time.perf_counter() - self.t0, 3)
        report.finished = now().isoformat(timespec="seconds")
        report.ok = report.error is None
        if record:
            status.record(self.store, report)
