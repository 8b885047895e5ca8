"""Directory photos re-encoded in the image worker pool, a page at a time, ahead of the writes.

The pool is the process's one pool (`workers.py`, every job under the `[limits]` job memory
and CPU): the CLI hands in the App's (`use_pool`); a library caller that hands in none gets
one of `WORKERS` processes under the default limits, started on first need."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

from ...errors import ImageError
from ...model import DirectoryThumbnail, Limits
from ...store import Store
from ...workers import WorkerPool, pool_for
from ..client import Entry
from ..entry import DirectoryUser, Flavour, directory_id
from ..photo import UNCHANGED, Prepared, prepare_many, prepare_photo
from ..status import SyncReport
from . import reconcile

WORKERS = 2  # photo re-encoding processes a library caller's sync starts (no pool handed in)
CHUNK = 64  # photos per worker job: well inside one job's CPU limit (~5 ms a photo)
Waiter = Callable[[], list[Prepared | None]]  # a page's prepared photos, once ready

_POOL: PhotoWorkers | None = None
_POOL_LOCK = threading.Lock()


class PhotoWorkers:
    """Directory photos in the image worker pool (bounded memory and CPU, crashes contained).

    A future per chunk, so a page's photos are re-encoded while the previous page is
    written. A chunk that a photo sank (over its limits, or crashing the decoder) is redone
    photo by photo, so only that photo gets the problem.
    """

    def __init__(self, pool: WorkerPool):
        self.pool = pool
        self.size = pool.size
        self.threads = ThreadPoolExecutor(pool.size, thread_name_prefix="directory-photos")

    def start(self) -> None:
        self.pool.start()

    def pids(self) -> list[int]:
        return self.pool.pids()

    def warm(self) -> None:
        """One small photo through each worker: the imaging stack finishes loading on a
        worker's first photo, which would otherwise delay the first change after a start."""
        buffer = io.BytesIO()
        Image.new("RGB", (96, 96), (128, 128, 128)).save(buffer, "JPEG")
        sample = buffer.getvalue()
        for done in [self.submit([sample], "thumbnailPhoto") for _ in range(self.size)]:
            done.result()

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


def use_pool(pool: WorkerPool) -> None:
    """Directory photos go to `pool` (the App's: `sync` in the CLI) from now on, instead of
    a pool of their own."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.pool is not pool:
            _POOL = PhotoWorkers(pool)


def photo_workers() -> PhotoWorkers:
    """The pool handed in (`use_pool`), else one per process, started on first need (every
    job under the default `[limits]`) and reused by every engine.

    Workers come from a forkserver: a clean process with no threads and none of this
    process's sockets or pipes (a plain fork from a threaded process can deadlock, and
    would keep the parent's connections open). They end when this process does. Call it
    before starting threads when a full read is ahead.
    """
    global _POOL
    with _POOL_LOCK:
        # A pool handed in goes with its App: once that App is closed, one of our own.
        if _POOL is None or _POOL.pool.closed:
            _POOL = PhotoWorkers(pool_for(Limits(), WORKERS))
        _POOL.start()  # at once, not on the first photo (the forkserver; see above)
        return _POOL


def worker_pids() -> list[int]:
    """The photo workers' process ids (none until a sync needed them): for benchmarks."""
    return _POOL.pids() if _POOL is not None else []


def prepare_one(raw: bytes, attribute: str) -> Prepared:
    """One photo not prepared ahead with its page, in the worker pool all the same."""
    return photo_workers().submit([raw], attribute).result()[0]


def prepare_page(
    page: list[Entry],
    flavour: Flavour,
    attribute: str,
    index: dict[str, str] | None,
    store: Store,
) -> Waiter:
    """Start validating and re-encoding the page's new photos; returns a waiter.

    Every photo goes to the image worker processes (bounded memory and CPU per job; the
    main process is busy parsing LDAP and writing the store meanwhile). Photos whose raw
    hash matches the stored one are skipped (marked UNCHANGED, so the writes need not read
    the slot again). `index`: directory id -> user id.
    """
    key = attribute.lower()
    jobs: dict[int, bytes] = {}
    unchanged: list[int] = []
    for i, (_dn, attrs) in enumerate(page):
        values = attrs.get(key)
        if not values:
            continue
        raw = values[0]
        did = directory_id(attrs, flavour.id_attribute)
        user_id = index.get(did) if (did and index is not None) else None
        old = store.get_directory_thumbnail(user_id) if user_id else None
        if reconcile.photo_action(raw, old.raw_hash if old else None) == "unchanged":
            unchanged.append(i)
        else:
            jobs[i] = raw
    raws = list(jobs.values())
    futures: list[Future[list[Prepared]]] = []
    if raws:  # every directory photo is decoded in the worker pool, never here
        pool = photo_workers()
        chunk = min(CHUNK, max(1, len(raws) // (2 * pool.size)))
        futures = [pool.submit(raws[k : k + chunk], attribute) for k in range(0, len(raws), chunk)]

    def wait() -> list[Prepared | None]:
        done = [p for f in futures for p in f.result()]
        results: list[Prepared | None] = [None] * len(page)
        for i, prepared in zip(jobs, done, strict=True):
            results[i] = prepared
        for i in unchanged:
            results[i] = UNCHANGED
        return results

    return wait


def count_photo(
    du: DirectoryUser,
    thumb: DirectoryThumbnail,
    old: DirectoryThumbnail | None,
    report: SyncReport,
) -> None:
    """Tally a new directory-thumbnail value in the report (a problem kept the old JPEG)."""
    if thumb.problem and thumb.jpeg is (old.jpeg if old else None):
        report.photo_problems += 1
        report.problem(f"{du.dn}: {thumb.problem}")
    else:
        report.photos_new += 1
        if thumb.problem:
            report.problem(f"{du.dn}: {thumb.problem}")
