"""The sync engine: one full or delta run, from the directory's pages to the store's writes.

The rules every mode follows are in the package's docstring; what to do with one entry is
decided by `reconcile` (pure), and this module looks things up and writes them. (A little
over 400 lines: the run, page and entry steps share the directory-id index and the report,
which splitting them would pass around.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from ...errors import Conflict
from ...model import DirectoryThumbnail, User
from ...store import Store
from .. import status
from ..client import DirectoryClient, DirectoryRefused, DirectoryUnavailable, Entry
from ..config import DirectoryConfig
from ..entry import DirectoryUser, EntryProblem, Flavour, parse
from ..photo import UNCHANGED, Prepared, directory_thumbnail
from ..status import SyncReport, now
from . import cursors, dirsync, photos, reconcile
from . import pages as page_reader
from .pages import prefetch, read_elsewhere

log = logging.getLogger(__name__)

ACTOR = "directory-sync"
Work = tuple[list[Entry], photos.Waiter]  # a page, and its photos' waiter


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
        # Every address in the store during a full read (a new entry then skips the
        # adoption lookups); None otherwise.
        self._addresses: set[str] | None = None

    # --- public modes ----------------------------------------------------------------------
    def full(self, *, force: bool = False) -> SyncReport:
        """Read every user; add, update, mark gone (guarded). Always records its report."""
        return self._run("full", force=force)

    def delta(self) -> SyncReport:
        """Read what changed since the stored cursor (a full sync when there is none)."""
        cursor = cursors.load(self.store)
        if cursor is None:
            return self._run("full", force=False)
        return self._run("delta", cursor=cursor)

    def close(self) -> None:
        self.client.close()

    # --- steps other watchers share (live.SyncreplWatch) -----------------------------------
    @property
    def index(self) -> dict[str, str]:
        """Directory id -> user id of the users this engine manages (after `load_users`)."""
        return self._index or {}

    def load_users(self, full: bool) -> dict[str, User]:
        """Every user when `full` (and the directory-id index, built once per engine)."""
        users: dict[str, User] = {}
        if full or self._index is None:
            users = {u.id: u for u in self.store.iter_users()}
            self._index = {
                reconcile.directory_key(u): u.id for u in users.values() if u.source == "directory"
            }
        # Every address in the store, so a new entry skips the adoption lookup (full only).
        self._addresses = {a for u in users.values() for a in u.addresses} if full else None
        return users

    def end_full_read(self) -> None:
        """A full read is over: entries are looked up one by one again."""
        self._addresses = None

    def apply_pages(
        self,
        pages: Iterator[list[Entry]],
        flavour: Flavour,
        users: dict[str, User] | None,
        report: SyncReport,
        seen: set[str],
        newest: str | None = None,
    ) -> str | None:
        """Apply pages of entries (their photos prepared a page ahead), one transaction a
        page. `users` (every user) during a full read, else None; `seen` collects the user
        ids applied. Returns the newest modifyTimestamp."""
        return self._pipeline(
            self._with_photos(pages, flavour), users, flavour, report, seen, newest
        )

    def mark_gone(
        self, users: dict[str, User], seen: set[str], report: SyncReport, *, force: bool
    ) -> None:
        """Mark every managed user not in `seen` gone, through the deletion guard."""
        self._mark(
            reconcile.missing_from_read(users.values(), seen, self.config.delete_guard, force),
            report,
        )

    # --- one run ---------------------------------------------------------------------------
    def _run(
        self, mode: str, *, force: bool = False, cursor: cursors.Cursor | None = None
    ) -> SyncReport:
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

    def _read(self, report: SyncReport, *, force: bool, cursor: cursors.Cursor | None) -> None:
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
        if not cursors.valid_on(cursor, info):
            # After a failover to another DC the cursor means nothing there: read everything.
            report.mode, full, cursor = "full", True, None

        users = self.load_users(full)
        attributes = flavour.attributes(self.config)
        dirsync_cookie: bytes | None = None
        gone_ids: list[str] = []
        if info.is_ad and info.dirsync and self.config.dirsync and full:
            # Take the DirSync starting point *before* reading: changes made while the full
            # read runs are then in the next delta.
            dirsync_cookie = dirsync.start(client, flavour, self.config.mail_attribute, report)
        if not full and cursor is not None and cursor["kind"] == "dirsync":
            changes = dirsync.changes(client, self.config, flavour, cursor["value"])
            dirsync_cookie, gone_ids = changes.cookie, changes.deleted
            pages: Iterator[list[Entry]] = dirsync.by_guid(
                client, self.config, flavour, changes.changed
            )
        elif full:
            photos.photo_workers()  # before any thread starts (see photo_workers)
            pages = read_elsewhere(self.config, flavour.user_filter, attributes)
        else:
            search_filter = flavour.user_filter
            if cursor is not None:
                search_filter = f"(&{flavour.user_filter}{cursors.delta_clause(cursor)})"
            pages = client.search(search_filter, attributes)
        # A full read's pages are taken in (and their photos handed to the workers) by a
        # prefetch thread up to READ_AHEAD pages ahead of the writes here; a delta is a page or
        # two, read inline (starting a thread would cost more than it saves).
        work = self._with_photos(pages, flavour)
        source = prefetch(work, ahead=page_reader.READ_AHEAD) if full else work

        seen: set[str] = set()
        newest = self._pipeline(
            source, users if full else None, flavour, report, seen, cursors.newest_stamp(cursor)
        )
        if full:
            self.mark_gone(users, seen, report, force=force)
        elif gone_ids:
            # Deletions DirSync reported: exact, but through the same guard as a full sync.
            gone = reconcile.deleted(self.store.iter_users(), gone_ids, self.config.delete_guard)
            self._mark(gone, report)
        # Only now, with every page read, does the cursor move.
        cursors.save(self.store, cursors.following(info, dirsync_cookie, newest))

    def _with_photos(self, pages: Iterator[list[Entry]], flavour: Flavour) -> Iterator[Work]:
        """Each page with its photos' preparation already started (see photos.prepare_page)."""
        for page in pages:
            yield (
                page,
                photos.prepare_page(
                    page, flavour, self.config.photo_attribute, self._index, self.store
                ),
            )

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

    # --- one page --------------------------------------------------------------------------
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
                if (
                    users is not None
                    and self._addresses is not None
                    and self._index is not None
                    and reconcile.is_fresh(du, self._index, users, self._addresses)
                ):
                    # Brand new in a full load: added together below, in a few statements.
                    fresh.append((du, photo))
                    self._addresses.update((du.address, *du.aliases))
                    continue
                user_id = self._apply(du, users, report, photo)
                if user_id is not None:
                    seen.add(user_id)
            if fresh:
                seen.update(self._add_fresh(fresh, users, report))
        return newest

    def _add_fresh(
        self,
        fresh: list[tuple[DirectoryUser, Prepared | None]],
        users: dict[str, User] | None,
        report: SyncReport,
    ) -> list[str]:
        new = [reconcile.new_user(du) for du, _photo in fresh]
        try:
            self.store.add_users(new, actor=ACTOR, via="sync")
        except Conflict:
            # Someone else took an address meanwhile: one by one, each conflict reported.
            done = []
            for du, photo in fresh:
                user_id = self._apply(du, users, report, photo)
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
            prepared = (
                photo
                if photo is not None
                else photos.prepare_one(du.photo, self.config.photo_attribute)
            )
            thumb = directory_thumbnail(
                user.id, prepared, reconcile.raw_hash(du.photo), len(du.photo), None
            )
            thumbs.append(thumb)
            photos.count_photo(du, thumb, None, report)
        if thumbs:
            self.store.put_directory_thumbnails(thumbs)
        return [u.id for u in new]

    # --- one entry -------------------------------------------------------------------------
    def _parse(self, entry: Entry, flavour: Flavour, report: SyncReport) -> DirectoryUser | None:
        dn, attrs = entry
        report.seen += 1
        try:
            return parse(dn, attrs, self.config, flavour)
        except EntryProblem as exc:
            report.skipped += 1
            report.problem(str(exc))
            return None

    def _apply(
        self,
        du: DirectoryUser,
        users: dict[str, User] | None,
        report: SyncReport,
        prepared: Prepared | None = None,
    ) -> str | None:
        """One entry: its user (added, adopted, updated or left), then its photo."""
        assert self._index is not None
        user_id = self._index.get(du.directory_id)
        current: User | None = None
        if user_id is not None:
            current = users.get(user_id) if users is not None else self.store.find_user(user_id)
        existing: User | None = None
        if current is None and (self._addresses is None or du.address in self._addresses):
            # Not in this engine's index: it may still be known (added by another sync
            # process, e.g. a cron `sync --full` beside `--watch`), by id or by address.
            existing = self.store.find_user(du.directory_id) or self.store.find_user(du.address)
        decision = reconcile.decide(du, current, existing)
        user = decision.user
        try:
            if decision.action == "conflict":
                raise Conflict(decision.problem or du.address)
            assert user is not None
            if decision.action == "add":
                self.store.add_user(user, actor=ACTOR, via="sync")
                report.added += 1
            elif decision.action == "unchanged":
                report.unchanged += 1
            else:
                self.store.update_user(user, actor=ACTOR, via="sync")
                report.returned += int(decision.returned)
                report.updated += 1
        except Conflict as exc:
            report.skipped += 1
            report.problem(f"{du.dn}: {exc}")
            return None
        self._index[du.directory_id] = user.id
        if users is not None:
            users[user.id] = user
        if self._addresses is not None:
            self._addresses.update(user.addresses)
        self._apply_photo(user.id, du, report, prepared, new=decision.action == "add")
        return user.id

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
        action = reconcile.photo_action(du.photo, old.raw_hash if old else None)
        if action == "remove":
            self.store.delete_directory_thumbnail(user_id)
            report.photos_removed += 1
        elif action == "unchanged":
            report.photos_unchanged += 1
        elif action == "replace":
            raw = du.photo
            assert raw is not None
            if prepared is None or prepared is UNCHANGED:
                prepared = photos.prepare_one(raw, self.config.photo_attribute)
            thumb = directory_thumbnail(user_id, prepared, reconcile.raw_hash(raw), len(raw), old)
            self.store.put_directory_thumbnail(thumb)
            photos.count_photo(du, thumb, old, report)

    def _mark(self, gone: reconcile.Gone, report: SyncReport) -> None:
        """The one path that marks users gone (full read, DirSync or syncrepl deletions)."""
        if gone.refused is not None:
            report.error = gone.refused
            return
        for user in gone.users:
            self.store.update_user(reconcile.as_gone(user), actor=ACTOR, via="sync")
            report.gone += 1
