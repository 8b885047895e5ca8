"""The sync engine: directory entries -> users and directory thumbnails in the store.

Rules that hold for every mode:
- Change detection by content: a photo whose raw bytes hash the same as last time is not
  touched; a user whose fields are unchanged is not written (so an idle `--watch` writes
  nothing, and serving caches stay warm).
- The directory photo only ever lands in the directory-thumbnail slot, never over an HD photo.
- Garbage in the directory (not an image, over 100 KB, base64 text) is recorded per user and
  the last good thumbnail is kept.
- Users missing from a complete full read are marked gone, never deleted, unless that would
  mark more than `delete_guard` of them: then the sync refuses and says why.
- A run that fails part-way keeps what it committed, leaves the delta cursor where it was and
  marks nobody gone; the next run picks up from there (unchanged entries cost a hash compare).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from queue import Empty, Queue
from typing import TypeVar

from ..errors import Conflict, ImageError, UserPhotoError
from ..model import Account, DirectoryThumbnail, User
from ..store import Store
from ..workers import WorkerPool
from . import status
from .client import DirectoryClient, DirectoryRefused, DirectoryUnavailable, Entry, read_pages
from .config import DirectoryConfig
from .entry import (
    OWNED_KEYS,
    DirectoryUser,
    EntryProblem,
    Flavour,
    account_for,
    directory_id,
    parse,
)
from .notify import ChangeNotifier
from .photo import UNCHANGED, Prepared, directory_thumbnail, prepare_many, prepare_photo
from .status import SyncReport, now

log = logging.getLogger(__name__)

ACTOR = "directory-sync"
# modifyTimestamp has one-second resolution and commits can land out of order: re-read a
# little before the cursor (repeats are de-duplicated by content hashes).
TIMESTAMP_OVERLAP = timedelta(seconds=2)
# DirSync looks at every user object (deleted ones lose objectCategory but keep objectClass);
# the configured user_filter is applied when each changed object is read.
DIRSYNC_FILTER = "(objectClass=user)"
CHANGE_STAMPS = ("modifyTimestamp", "whenChanged", "uSNChanged")
WORKERS = 2  # photo re-encoding processes, started by a full sync
CHUNK = 64  # photos per worker job: well inside one job's CPU limit (~5 ms a photo)
_POOL: PhotoWorkers | None = None
READ_AHEAD = 16  # pages a full read may run ahead of the writes (~3.5 MB a page with photos)
T = TypeVar("T")
Work = tuple[list[Entry], Callable[[], list[Prepared | None]]]  # a page, and its photos' waiter
_POOL_LOCK = threading.Lock()


class PhotoWorkers:
    """Directory photos in the image worker pool (bounded memory and CPU, crashes contained).

    A future per chunk, so a page's photos are re-encoded while the previous page is
    written. A chunk that a photo sank (over its limits, or crashing the decoder) is redone
    photo by photo, so only that photo gets the problem.
    """

    def __init__(self, size: int = WORKERS):
        self.pool = WorkerPool(size)
        self.threads = ThreadPoolExecutor(size, thread_name_prefix="directory-photos")

    def start(self) -> None:
        self.pool.start()

    def pids(self) -> list[int]:
        return self.pool.pids()

    def submit(self, raws: list[bytes], attribute: str) -> Future[list[Prepared]]:
        return self.threads.submit(self._chunk, raws, attribute)

    def _chunk(self, raws: list[bytes], attribute: str) -> list[Prepared]:
        try:
            return self.pool.run(prepare_many, raws, attribute)
        except ImageError:
            pass
        out = []
        for raw in raws:
            try:
                out.append(self.pool.run(prepare_photo, raw, attribute))
            except ImageError as exc:
                out.append(Prepared(None, 0, 0, None, f"{attribute} is not a usable image: {exc}"))
        return out


class SyncEngine:
    def __init__(
        self,
        store: Store,
        config: DirectoryConfig,
        client: DirectoryClient | None = None,
        *,
        on_page: Callable[[int], None] | None = None,
    ):
        self.store = store
        self.config = config
        self.client = client or DirectoryClient(config)
        self.on_page = on_page  # test and progress hook: called with the page number
        # directory id -> user id, for users this engine manages (rebuilt by each full sync).
        self._index: dict[str, str] | None = None
        self._addresses: set[str] | None = None

    # --- public modes ----------------------------------------------------------------------
    def full(self, *, force: bool = False) -> SyncReport:
        """Read every user; add, update, mark gone (guarded). Always records its report."""
        return self._run("full", force=force)

    def delta(self) -> SyncReport:
        """Read what changed since the stored cursor (a full sync when there is none)."""
        cursor = self._cursor()
        if cursor is None:
            return self._run("full", force=False)
        return self._run("delta", cursor=cursor)

    def watch(
        self,
        stop: threading.Event,
        *,
        after_cycle: Callable[[SyncReport], None] | None = None,
        drain: Callable[[], object] | None = None,  # its result is not used
        announce: Callable[[str], None] | None = None,
    ) -> None:
        """Follow the directory until `stop` is set.

        A server that offers RFC 4533 content sync (OpenLDAP with syncprov) pushes each
        change: see `live.SyncreplWatch`. Anywhere else `--watch` polls every
        `watch_interval`, and on AD a change-notification search wakes the poll at once.
        `announce` hears which of the two runs (and why); `drain` retries write-backs.
        """
        recorder = status.WatchRecorder(self.store)
        why = self._watch_mode(stop, recorder)
        if why is None and not stop.is_set():
            from .live import SyncreplWatch  # python-ldap loads only when it is used

            if announce is not None:
                announce(
                    f"watching {self.client.info.uri if self.client.info else '?'}: changes "
                    "pushed by the server (RFC 4533 syncrepl); Ctrl-C stops"
                )
            why = SyncreplWatch(self, recorder).run(stop, after_cycle=after_cycle, drain=drain)
        if why is not None and not stop.is_set():
            if announce is not None:
                announce(
                    f"watching {', '.join(self.config.uris)} every "
                    f"{self.config.watch_interval:g}s ({why}; full reconciliation every "
                    f"{self.config.full_interval:g}s); Ctrl-C stops"
                )
            recorder.update(mode="polling", why=why, interval=self.config.watch_interval)
            self._poll(stop, recorder, after_cycle=after_cycle, drain=drain)
        with contextlib.suppress(UserPhotoError):
            recorder.update(state="stopped", error=None)

    def _watch_mode(self, stop: threading.Event, recorder: status.WatchRecorder) -> str | None:
        """None for syncrepl, else why `--watch` polls. Waits for the directory to answer."""
        while not stop.is_set():
            try:
                info = self.client.refresh_info()
                break
            except (DirectoryUnavailable, DirectoryRefused) as exc:
                self.client.close()
                recorder.update(state="degraded", error=str(exc))
                _sleep(
                    stop,
                    threading.Event(),
                    max(self.config.watch_interval, self.config.backoff * 4),
                )
        else:
            return "stopped"
        if info.is_ad:
            return "Active Directory: change notifications wake the poll at once"
        if not self.config.syncrepl:
            return "syncrepl = false in [directory]"
        if not info.syncrepl:
            return (
                "the server does not offer RFC 4533 content sync; on OpenLDAP, load the "
                "syncprov overlay to get changes pushed"
            )
        if Flavour.of(self.config, False).id_attribute.lower() != "entryuuid":
            return "syncrepl identifies entries by entryUUID, and id_attribute is set otherwise"
        return None

    def _poll(
        self,
        stop: threading.Event,
        recorder: status.WatchRecorder,
        *,
        after_cycle: Callable[[SyncReport], None] | None = None,
        drain: Callable[[], object] | None = None,  # its result is not used
    ) -> None:
        """Poll for changes every `watch_interval` until `stop` is set.

        On AD, a change notification search also wakes the loop the moment something
        changes. An idle cycle writes nothing to the store. A full reconciliation (which is
        what notices deletions) runs every `full_interval`.
        """
        wake = threading.Event()
        notifier: ChangeNotifier | None = None
        notify_retry_at = 0.0
        last_full = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - last_full >= self.config.full_interval:
                report = self.full()
                last_full = time.monotonic()
            else:
                report = self.delta()
                if report.mode == "full":
                    last_full = time.monotonic()
            if drain is not None:
                try:
                    drain()
                except UserPhotoError as exc:  # recorded per user by the writer
                    log.warning("write-back retry failed: %s", exc)
            if after_cycle is not None:
                after_cycle(report)
            recorder.update(state="running" if report.ok else "degraded", error=report.error)
            info = self.client.info
            if (
                report.ok
                and info is not None
                and info.is_ad
                and self.config.notify
                and (notifier is None or not notifier.alive)
                and time.monotonic() >= notify_retry_at
            ):
                notifier = ChangeNotifier(self.config, info.uri, wake)
                if not notifier.start():
                    notifier, notify_retry_at = None, time.monotonic() + 60
            # Back off while the directory is down; the client already retried with backoff.
            _sleep(
                stop,
                wake,
                self.config.watch_interval
                if report.ok
                else max(self.config.watch_interval, self.config.backoff * 4),
            )
        if notifier is not None:
            notifier.stop()

    # --- one run ---------------------------------------------------------------------------
    def _run(self, mode: str, *, force: bool = False, cursor: dict | None = None) -> SyncReport:
        report = SyncReport(mode)
        t0 = time.perf_counter()
        try:
            self._read(report, force=force, cursor=cursor)
        except (DirectoryUnavailable, DirectoryRefused) as exc:
            report.error = str(exc)
            self.client.close()
        report.seconds = round(time.perf_counter() - t0, 3)
        report.finished = now().isoformat(timespec="seconds")
        report.ok = report.error is None
        # An idle delta writes nothing (each write moves the store generation and would empty
        # every serving cache); a full run or any change is always recorded.
        if mode == "full" or report.changed:
            status.record(self.store, report)
        log.info(report.summary())
        return report

    def _read(self, report: SyncReport, *, force: bool, cursor: dict | None) -> None:
        client = self.client
        if (
            report.mode == "delta"
            and cursor is not None
            and cursor.get("kind") == "dirsync"
            and client.connected
            and client.info is not None
        ):
            # A DirSync delta needs no USN: the open connection's root DSE is still right
            # (a reconnect reads it again), and a change notification is answered sooner.
            info = client.info
        else:
            info = client.refresh_info()  # AD: highestCommittedUSN *before* the read starts
        report.server = info.uri
        flavour = Flavour.of(self.config, info.is_ad)
        full = report.mode == "full"
        if (
            cursor is not None
            and cursor.get("server") not in (None, info.server_id)
            and (cursor.get("kind") in ("usn", "dirsync"))
        ):
            # USNs and DirSync cookies are per domain controller: after a failover to another
            # DC the cursor means nothing there, so this run reads everything.
            report.mode, full, cursor = "full", True, None

        users = self._load_users(full)
        search_filter = flavour.user_filter
        dirsync_cookie: bytes | None = None
        gone_ids: list[str] = []
        use_dirsync = info.is_ad and info.dirsync and self.config.dirsync
        if use_dirsync and full:
            # Take the DirSync starting point *before* reading: changes made while the full
            # read runs are then in the next delta.
            dirsync_cookie = self._dirsync_start(flavour, report)
        if not full and cursor is not None and cursor["kind"] == "dirsync":
            # Only the changed objects come back (and deleted ones); each is then read in
            # full through the user filter, so every mode applies entries the same way.
            # DirSync returns an object only when one of the requested attributes changed:
            # ask for the ones we use (not the change stamps, which move with anything).
            watched = [a for a in flavour.attributes(self.config) if a not in CHANGE_STAMPS]
            changed, dirsync_cookie = client.dirsync(
                DIRSYNC_FILTER, [*watched, "isDeleted"], base64.b64decode(cursor["value"])
            )
            guids: list[str] = []
            for _dn, attrs in changed:
                did = directory_id(attrs, flavour.id_attribute)
                if did is None:
                    continue
                if (attrs.get("isdeleted") or [b""])[0].upper() == b"TRUE":
                    gone_ids.append(did)
                else:
                    guids.append(did)
            pages: Iterator[list[Entry]] = self._by_guid(guids, flavour)
        elif full:
            self._processes()  # before any thread starts (see _processes)
            pages = _read_elsewhere(self.config, search_filter, flavour.attributes(self.config))
        else:
            if cursor is not None:
                search_filter = f"(&{flavour.user_filter}{_delta_clause(cursor)})"
            pages = client.search(search_filter, flavour.attributes(self.config))
        # A full read's pages are taken in (and their photos handed to the workers) by a
        # prefetch thread up to READ_AHEAD pages ahead of the writes here; a delta is a page or
        # two, read inline (starting a thread would cost more than it saves).
        work = self._with_photos(pages, flavour)
        source = _prefetch(work, ahead=READ_AHEAD) if full else work

        seen: set[str] = set()
        newest = cursor.get("value") if cursor and cursor.get("kind") == "modifyTimestamp" else None
        newest = self._pipeline(source, users if full else None, flavour, report, seen, newest)

        if full:
            self._mark_gone(users, seen, report, force=force)
        elif gone_ids:
            self._mark_deleted(gone_ids, report)
        # Only now, with every page read, does the cursor move.
        new_cursor: dict[str, str | int | None]  # stored as JSON; _delta_clause reads it
        if dirsync_cookie is not None:
            new_cursor = {
                "kind": "dirsync",
                "server": info.server_id,
                "value": base64.b64encode(dirsync_cookie).decode(),
            }
        elif info.is_ad and info.highest_usn is not None:
            new_cursor = {"kind": "usn", "server": info.server_id, "value": info.highest_usn}
        else:
            new_cursor = {"kind": "modifyTimestamp", "server": info.server_id, "value": newest}
        if new_cursor != self._cursor() and new_cursor["value"] is not None:
            self.store.set_state(status.CURSOR_KEY, json.dumps(new_cursor))

    def _load_users(self, full: bool) -> dict[str, User]:
        """Every user when `full` (and the directory-id index, built once per engine)."""
        users: dict[str, User] = {}
        if full or self._index is None:
            users = {u.id: u for u in self.store.iter_users()}
            self._index = {
                u.attributes.get("directory_id", u.id): u.id
                for u in users.values()
                if u.source == "directory"
            }
        # Every address in the store, so a new entry skips the adoption lookup (full only).
        self._addresses = {a for u in users.values() for a in u.addresses} if full else None
        return users

    def _with_photos(self, pages: Iterator[list[Entry]], flavour: Flavour) -> Iterator[Work]:
        """Each page with its photos' preparation already started (see _prepare_photos)."""
        for page in pages:
            yield page, self._prepare_photos(page, flavour)

    def _pipeline(
        self,
        work: Iterator[Work],
        users: dict[str, User] | None,
        flavour: Flavour,
        report: SyncReport,
        seen: set[str],
        newest: str | None,
    ) -> str | None:
        """Write pages (with their prepared photos); returns the newest modifyTimestamp."""
        for number, (page, prepared) in enumerate(work, 1):
            newest = self._write_page(page, prepared(), flavour, users, report, seen, newest)
            if self.on_page is not None:
                self.on_page(number)
        return newest

    def _dirsync_start(self, flavour: Flavour, report: SyncReport) -> bytes | None:
        """A DirSync cookie for "now", or None (then uSNChanged) if this account may not
        use DirSync (it needs the "Replicating Directory Changes" right)."""
        try:
            # Only the cookie matters here; a cheap attribute keeps the answer small.
            _entries, cookie = self.client.dirsync(
                DIRSYNC_FILTER, [flavour.id_attribute, self.config.mail_attribute], None
            )
        except DirectoryRefused as exc:
            report.problem(f"DirSync refused ({exc}); using uSNChanged for deltas instead")
            return None
        return cookie

    def _by_guid(self, guids: list[str], flavour: Flavour) -> Iterator[list[Entry]]:
        """Full entries for changed objects, through the user filter (computers drop out)."""
        page: list[Entry] = []
        attributes = flavour.attributes(self.config)
        for guid in guids:
            for found in self.client.search(flavour.user_filter, attributes, base=f"<GUID={guid}>"):
                page.extend(found)
            if len(page) >= self.config.page_size:
                yield page
                page = []
        if page:
            yield page

    def _mark_deleted(self, directory_ids: list[str], report: SyncReport) -> None:
        """Deletions DirSync reported: exact, but through the same guard as a full sync."""
        managed = self._managed(self.store.iter_users())
        by_id = {u.attributes.get("directory_id", u.id): u for u in managed}
        missing = [by_id[did] for did in dict.fromkeys(directory_ids) if did in by_id]
        self._mark_gone_guarded(missing, len(managed), report, force=False)

    def _cursor(self) -> dict | None:
        raw = self.store.get_state(status.CURSOR_KEY)
        if not raw:
            return None
        cursor = json.loads(raw)
        return cursor if cursor.get("value") is not None else None

    # --- one entry -------------------------------------------------------------------------
    def _write_page(
        self,
        page: list[Entry],
        prepared: list[Prepared | None],
        flavour: Flavour,
        users: dict[str, User] | None,
        report: SyncReport,
        seen: set[str],
        newest: str | None,
    ) -> str | None:
        """Apply one page in one transaction (each write inside is its own savepoint): the
        initial load of 10,000 users is 20 commits, not 40,000."""
        fresh: list[tuple[DirectoryUser, Prepared | None]] = []
        with self.store.batch():
            for entry, photo in zip(page, prepared, strict=True):
                changed = entry[1].get("modifytimestamp")
                if changed:
                    stamp = changed[0].decode()
                    if newest is None or stamp > newest:
                        newest = stamp
                du = self._parse(entry, flavour, report)
                if du is None:
                    continue
                if self._is_fresh(du, users):
                    # Brand new in a full load: added together below, in a few statements.
                    fresh.append((du, photo))
                    assert self._addresses is not None
                    self._addresses.update((du.address, *du.aliases))
                    continue
                user_id = self._apply_parsed(du, flavour, users, report, photo)
                if user_id is not None:
                    seen.add(user_id)
            if fresh:
                seen.update(self._add_fresh(fresh, flavour, users, report))
        return newest

    def _is_fresh(self, du: DirectoryUser, users: dict[str, User] | None) -> bool:
        return (
            users is not None
            and self._addresses is not None
            and self._index is not None
            and du.directory_id not in self._index
            and du.directory_id not in users
            and du.address not in self._addresses
            and not any(a in self._addresses for a in du.aliases)
        )

    def _add_fresh(
        self,
        fresh: list[tuple[DirectoryUser, Prepared | None]],
        flavour: Flavour,
        users: dict[str, User] | None,
        report: SyncReport,
    ) -> list[str]:
        new = [_new_user(du) for du, _photo in fresh]
        try:
            self.store.add_users(new, actor=ACTOR, via="sync")
        except Conflict:
            # Someone else took an address meanwhile: one by one, each conflict reported.
            done = []
            for du, photo in fresh:
                user_id = self._apply_parsed(du, flavour, users, report, photo)
                if user_id is not None:
                    done.append(user_id)
            return done
        assert self._index is not None
        thumbs: list[DirectoryThumbnail] = []
        for user, (du, photo) in zip(new, fresh, strict=True):
            report.added += 1
            self._index[du.directory_id] = user.id
            if users is not None:
                users[user.id] = user
            if du.photo is None:
                continue
            prepared = photo if photo is not None else self._prepare_one(du.photo)
            thumb = directory_thumbnail(
                user.id, prepared, hashlib.sha256(du.photo).hexdigest(), len(du.photo), None
            )
            thumbs.append(thumb)
            self._count_photo(du, thumb, None, report)
        if thumbs:
            self.store.put_directory_thumbnails(thumbs)
        return [u.id for u in new]

    def _prepare_photos(
        self, page: list[Entry], flavour: Flavour
    ) -> Callable[[], list[Prepared | None]]:
        """Start validating and re-encoding the page's new photos; returns a waiter.

        Every photo goes to the image worker processes (bounded memory and CPU per job; the
        main process is busy parsing LDAP and writing the store meanwhile). Photos whose raw
        hash matches the stored one are skipped.
        """
        attribute = self.config.photo_attribute.lower()
        jobs: dict[int, bytes] = {}
        unchanged: list[int] = []
        for i, (_dn, attrs) in enumerate(page):
            values = attrs.get(attribute)
            if not values:
                continue
            raw = values[0]
            did = directory_id(attrs, flavour.id_attribute)
            user_id = self._index.get(did) if (did and self._index is not None) else None
            old = self.store.get_directory_thumbnail(user_id) if user_id else None
            if old is None or old.raw_hash != hashlib.sha256(raw).hexdigest():
                jobs[i] = raw
            else:
                unchanged.append(i)  # so _apply_photo need not read the slot again
        attribute_name = self.config.photo_attribute
        raws = list(jobs.values())
        inline: list[Prepared] = []
        futures = None
        if raws:  # every directory photo is decoded in the worker pool, never here
            pool = self._processes()
            chunk = min(CHUNK, max(1, len(raws) // (2 * WORKERS)))
            futures = [
                pool.submit(raws[k : k + chunk], attribute_name) for k in range(0, len(raws), chunk)
            ]

        def wait() -> list[Prepared | None]:
            done = inline if futures is None else [p for f in futures for p in f.result()]
            results: list[Prepared | None] = [None] * len(page)
            for i, prepared in zip(jobs, done, strict=True):
                results[i] = prepared
            for i in unchanged:
                results[i] = UNCHANGED
            return results

        return wait

    def _prepare_one(self, raw: bytes) -> Prepared:
        """One photo not prepared ahead with its page, in the worker pool all the same."""
        return self._processes().submit([raw], self.config.photo_attribute).result()[0]

    @staticmethod
    def _processes() -> PhotoWorkers:
        """One pool per process, started on first need and reused by every engine.

        Workers come from a forkserver: a clean process with no threads and none of this
        process's sockets or pipes (a plain fork from a threaded process can deadlock, and
        would keep the parent's connections open). They end when this process does.
        """
        global _POOL
        with _POOL_LOCK:
            if _POOL is None:
                _POOL = PhotoWorkers(WORKERS)
                _POOL.start()
            return _POOL

    def close(self) -> None:
        self.client.close()

    def _parse(self, entry: Entry, flavour: Flavour, report: SyncReport) -> DirectoryUser | None:
        dn, attrs = entry
        report.seen += 1
        try:
            return parse(dn, attrs, self.config, flavour)
        except EntryProblem as exc:
            report.skipped += 1
            report.problem(str(exc))
            return None

    def _apply_parsed(
        self,
        du: DirectoryUser,
        flavour: Flavour,
        users: dict[str, User] | None,
        report: SyncReport,
        prepared: Prepared | None = None,
    ) -> str | None:
        dn = du.dn
        assert self._index is not None
        user_id = self._index.get(du.directory_id)
        current: User | None = None
        if user_id is not None:
            current = users.get(user_id) if users is not None else self.store.find_user(user_id)
        added_before = report.added
        try:
            user = self._apply_user(du, current, report)
        except Conflict as exc:
            report.skipped += 1
            report.problem(f"{dn}: {exc}")
            return None
        if user is None:
            return None
        self._index[du.directory_id] = user.id
        if users is not None:
            users[user.id] = user
        if self._addresses is not None:
            self._addresses.update(user.addresses)
        self._apply_photo(user.id, du, report, prepared, new=report.added > added_before)
        return user.id

    def _apply_user(
        self, du: DirectoryUser, current: User | None, report: SyncReport
    ) -> User | None:
        if current is None:
            # A local user with this address (e.g. created before the directory was
            # connected) is adopted rather than duplicated; its id stays.
            # Not in this engine's index: it may still be known (added by another sync
            # process, e.g. a cron `sync --full` beside `--watch`), by id or by address.
            existing = (
                None
                if self._addresses is not None and du.address not in self._addresses
                else self.store.find_user(du.directory_id) or self.store.find_user(du.address)
            )
            if existing is not None and (
                existing.attributes.get("directory_id", existing.id) == du.directory_id
            ):
                current = existing  # the same directory entry
            elif existing is not None and (
                existing.source != "directory" or existing.directory_gone
            ):
                current = existing
            elif existing is not None:
                raise Conflict(
                    f"{du.address} already belongs to directory entry "
                    f"{existing.attributes.get('dn', existing.id)}"
                )
        if current is None:
            user = _new_user(du)
            self.store.add_user(user, actor=ACTOR, via="sync")
            report.added += 1
            return user
        attributes = {k: v for k, v in current.attributes.items() if k not in OWNED_KEYS}
        attributes.update(du.attributes)
        desired = replace(
            current,
            address=du.address,
            aliases=list(du.aliases),
            display_name=du.display_name,
            account=account_for(
                du.disabled, current.account, current.attributes.get("directory_disabled") == "1"
            ),
            source="directory",
            directory_gone=False,
            attributes=attributes,
        )
        if _same(current, desired):
            report.unchanged += 1
            return current
        if current.directory_gone:
            report.returned += 1
        self.store.update_user(desired, actor=ACTOR, via="sync")
        report.updated += 1
        return desired

    def _apply_photo(
        self,
        user_id: str,
        du: DirectoryUser,
        report: SyncReport,
        prepared: Prepared | None,
        *,
        new: bool = False,
    ) -> None:
        if prepared is UNCHANGED and du.photo is not None:
            report.photos_unchanged += 1  # same raw hash as the stored slot (checked ahead)
            return
        old = None if new else self.store.get_directory_thumbnail(user_id)
        raw = du.photo
        if raw is None:
            if old is not None:
                self.store.delete_directory_thumbnail(user_id)
                report.photos_removed += 1
            return
        raw_hash = hashlib.sha256(raw).hexdigest()
        if old is not None and old.raw_hash == raw_hash:
            # Unchanged -- including the thumbnail our own write-back put there (no loop).
            report.photos_unchanged += 1
            return
        if prepared is None or prepared is UNCHANGED:
            prepared = self._prepare_one(raw)
        thumb = directory_thumbnail(user_id, prepared, raw_hash, len(raw), old)
        self.store.put_directory_thumbnail(thumb)
        self._count_photo(du, thumb, old, report)

    @staticmethod
    def _count_photo(
        du: DirectoryUser,
        thumb: DirectoryThumbnail,
        old: DirectoryThumbnail | None,
        report: SyncReport,
    ) -> None:
        if thumb.problem and thumb.jpeg is (old.jpeg if old else None):
            report.photo_problems += 1
            report.problem(f"{du.dn}: {thumb.problem}")
        else:
            report.photos_new += 1
            if thumb.problem:
                report.problem(f"{du.dn}: {thumb.problem}")

    def _mark_gone(
        self, users: dict[str, User], seen: set[str], report: SyncReport, *, force: bool
    ) -> None:
        managed = self._managed(users.values())
        missing = [u for u in managed if u.id not in seen]
        self._mark_gone_guarded(missing, len(managed), report, force=force)

    @staticmethod
    def _managed(users: Iterable[User]) -> list[User]:
        return [u for u in users if u.source == "directory" and not u.directory_gone]

    def _mark_gone_guarded(
        self, missing: list[User], managed: int, report: SyncReport, *, force: bool
    ) -> None:
        """The one path that marks users gone (full read or DirSync deletions): never more
        than `delete_guard` of the directory's users at once, unless forced."""
        if not missing:
            return
        share = len(missing) / max(1, managed)
        if share > self.config.delete_guard and not force:
            report.error = (
                f"refused to mark {len(missing)} of {managed} directory users gone "
                f"({share:.0%}, more than delete_guard {self.config.delete_guard:.0%}). "
                "If the directory really lost them, run `userphoto sync --full --force`; if "
                "not, check base_dn and user_filter (a wrong filter looks like mass deletion)."
            )
            return
        for user in missing:
            self.store.update_user(replace(user, directory_gone=True), actor=ACTOR, via="sync")
            report.gone += 1


def _sleep(stop: threading.Event, wake: threading.Event, seconds: float) -> None:
    """Wait up to `seconds`, ending early on a change notification or a stop request."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or wake.wait(min(0.1, left)):
            break
    wake.clear()


def _read_elsewhere(
    config: DirectoryConfig, search_filter: str, attributes: list[str]
) -> Iterator[list[Entry]]:
    """The pages of a full read, decoded by a reader process while this one applies them.

    The pipe holds about one page, so the reader stays a page or two ahead and no further.
    A reader still running when the sync stops (an error, a stop request) is ended.
    """
    # Forked from this thread (not from the photo workers' forkserver): the reader sees the
    # network exactly as its caller does (a per-thread network namespace included). It runs
    # only ldap3 and a pipe, so none of this process's locks or connections matter to it,
    # and it holds them only for the length of the read.
    context = multiprocessing.get_context("fork")
    pages, out = context.Pipe(duplex=False)
    reader = context.Process(
        target=read_pages,
        args=(config, search_filter, attributes, out),
        name="directory-reader",
        daemon=True,
    )
    reader.start()
    out.close()  # ours; the reader holds its own end
    try:
        while True:
            try:
                item = pages.recv()
            except EOFError:
                raise DirectoryUnavailable("The directory reader process ended early.") from None
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        pages.close()
        reader.join(1)
        if reader.is_alive():
            reader.terminate()
            reader.join()


def _prefetch(pages: Iterator[T], ahead: int = 2) -> Iterator[T]:
    """Read the next page while this one is processed (the server works on the other core)."""
    queue: Queue[tuple[T | None, BaseException | None]] = Queue(maxsize=ahead)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                if stop.is_set():
                    return
                queue.put((page, None))
            queue.put((None, None))
        except BaseException as exc:  # handed to the consumer, raised there
            queue.put((None, exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()  # a generator's own clean-up (e.g. ending the reader process) runs now

    thread = threading.Thread(target=produce, name="directory-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            page, error = queue.get()
            if error is not None:
                raise error
            if page is None:
                return
            yield page
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get_nowait()
            thread.join(0.05)


def _new_user(du: DirectoryUser) -> User:
    return User(
        id=du.directory_id,
        address=du.address,
        display_name=du.display_name,
        aliases=list(du.aliases),
        account=Account.DISABLED if du.disabled else Account.HD,
        source="directory",
        attributes=dict(du.attributes),
    )


def _same(a: User, b: User) -> bool:
    return (
        a.address == b.address
        and sorted(a.aliases) == sorted(b.aliases)
        and a.display_name == b.display_name
        and a.account == b.account
        and a.source == b.source
        and a.directory_gone == b.directory_gone
        and a.attributes == b.attributes
    )


def _delta_clause(cursor: dict) -> str:
    if cursor["kind"] == "usn":
        return f"(uSNChanged>={int(cursor['value']) + 1})"
    stamp = str(cursor["value"])
    try:
        at = datetime.strptime(stamp[:14], "%Y%m%d%H%M%S") - TIMESTAMP_OVERLAP
        stamp = at.strftime("%Y%m%d%H%M%S") + "Z"
    except ValueError:
        pass  # an unexpected format: use it as the server gave it
    return f"(modifyTimestamp>={stamp})"
