"""Bulk import from a folder or zip (the contact sheet is `review.py`, export and restore
`archive.py`).

Import runs in three steps:

1. **Plan** (parent, cheap): list the files, match each name to a user, and decide what needs
   work. Unmatched, ambiguous and duplicate names, and users whose account cannot hold photos,
   are settled here without reading a byte.
2. **Process** (worker processes, all cores): read the file, hash it, skip it when the hash
   equals the user's saved photo (idempotent re-runs), else decode, face-crop and render every
   size. A bad file becomes a report line, never a stopped run.
3. **Store** (parent only): SQLite has one writer, so results are written one transaction per
   photo as they arrive. A killed run loses at most the photos in flight; re-running skips
   everything already stored (same hash), so a re-run is the resume.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import stat
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from . import imaging
from .config import Settings
from .errors import AccountUnavailable, ImageError
from .matching import FileMatcher, MapMatcher, Matcher, Pattern, parse_map, suggest_patterns
from .model import (
    Rendered,
)
from .photos import Photos, RenderOptions, Runner
from .store import Store

if TYPE_CHECKING:
    pass


class Status(StrEnum):
    IMPORTED = "imported"  # a new photo for a user who had none
    REPLACED = "replaced"  # replaced a different saved photo (--on-conflict replace)
    UNCHANGED = "unchanged"  # the user's saved photo has exactly these bytes already
    KEPT = "kept"  # the user has another photo and --on-conflict skip kept it
    UNMATCHED = "unmatched"
    AMBIGUOUS = "ambiguous"  # the name matches several users
    DUPLICATE = "duplicate"  # several files name the same user
    INVALID = "invalid-image"
    FAILED = "failed"  # the user cannot take a photo, or storing it failed
    SKIPPED = "skipped"  # not a regular file inside the folder: a link, FIFO, device or socket


# Dry-run wording: what a real run would do.
WOULD = {Status.IMPORTED: "import", Status.REPLACED: "replace"}
PROBLEMS = (
    Status.UNMATCHED,
    Status.AMBIGUOUS,
    Status.DUPLICATE,
    Status.INVALID,
    Status.FAILED,
    Status.SKIPPED,
)

# Files a file manager leaves behind; never photos, not worth an "unmatched" line.
_IGNORED = {"thumbs.db", "desktop.ini", "userphoto-export.json"}  # (the last: an export's MANIFEST)


@dataclass(frozen=True)
class Source:
    """One file to import: a path, or a member of a zip archive."""

    path: str
    member: str | None = None
    label: str = ""  # how reports name it: relative to the imported folder, or the member
    root: str = ""  # the imported folder: the file must stay inside it when read
    skip: str = ""  # why this entry is not read at all (a link, a FIFO, ...): reported as such

    @property
    def name(self) -> str:
        return self.label or (f"{self.path}!{self.member}" if self.member else self.path)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.member).stem if self.member else Path(self.path).stem

    def read(self, limit: int) -> bytes:
        """At most `limit` bytes: enough to refuse an oversized file without loading it."""
        if self.member is None:
            return read_regular(self.path, limit, inside=self.root or None)
        with _zip(self.path).open(self.member) as f:
            return f.read(limit)


class NotRegularFile(OSError):
    """A path that is not a plain file inside the folder being read: never opened for data."""


def not_regular(mode: int) -> str:
    """Why a file of this type is not read, or "" for a regular file."""
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISLNK(mode):
        return "a symbolic link (links are never followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISDIR(mode):
        return "a folder, not a regular file"
    return "not a regular file"


def _inside(path: str, folder: str) -> bool:
    """Whether `path`'s folder resolves inside `folder` (its last part is O_NOFOLLOW's)."""
    real = os.path.realpath(os.path.dirname(path))
    root = os.path.realpath(folder)
    return os.path.commonpath([real, root]) == root


def read_regular(path: str, limit: int, *, inside: str | None = None) -> bytes:
    """At most `limit` bytes of a regular file; a link, FIFO or device is refused.

    The last component is opened with O_NOFOLLOW (a link fails instead of being followed),
    non-blocking (a FIFO put where a file was listed cannot hang the reader), and the opened
    file is checked with fstat, so a file swapped after the listing is still caught. With
    `inside`, a path that resolves outside that folder (a linked parent folder) is refused.
    """
    if inside is not None and not _inside(path, inside):
        raise NotRegularFile(f"{printable(path)} leads outside {printable(inside)}; not read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(
                f"{printable(path)} is a symbolic link (links are never followed)"
            ) from None
        raise
    with open(fd, "rb") as f:
        reason = not_regular(os.fstat(fd).st_mode)
        if reason:
            raise NotRegularFile(f"{printable(path)} is {reason}")
        return f.read(limit)


def printable(name: str) -> str:
    """A name safe to print: control characters (terminal escapes) shown as \\x1b etc."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)


def _member_skip(info: zipfile.ZipInfo) -> str:
    """Why a zip member is not read ("" for a plain file with a plain name)."""
    name = info.filename
    mode = info.external_attr >> 16
    if not name.isprintable():
        return "a name with control characters"
    if name.startswith("/") or ".." in PurePosixPath(name).parts:
        return "a name that leads outside the archive's folder"
    # A symlink or device as unzip would make it (many writers leave the type bits 0).
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return not_regular(mode)
    return ""


_zips: dict[str, zipfile.ZipFile] = {}


def _zip(path: str) -> zipfile.ZipFile:
    """One open archive per process: re-reading the central directory per file is slow."""
    archive = _zips.get(path)
    if archive is None:
        archive = _zips[path] = zipfile.ZipFile(path)
    return archive


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in _IGNORED


def _why_skipped(path: str) -> str:
    """Only regular files are imported: a link may point anywhere, a FIFO would block the
    reader, a device never ends. (Looked at without following links.)"""
    try:
        return not_regular(os.lstat(path).st_mode)
    except OSError as exc:
        return f"cannot look at it: {exc.strerror or exc}"


def _folder(path: Path) -> list[Source]:
    found: list[Source] = []
    root = str(path)
    for folder, dirs, files in os.walk(path):  # never descends into a linked folder
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]):
            if _hidden(name):
                continue
            full = os.path.join(folder, name)
            label = printable(os.path.relpath(full, path))
            found.append(Source(full, label=label, root=root, skip=_why_skipped(full)))
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
    return found


def scan(path: Path) -> list[Source]:
    """Every candidate file under a folder (recursively) or in a zip, in name order.

    Links, FIFOs, devices and sockets are listed with the reason they are skipped, so the
    report names them; they are never opened.
    """
    if path.is_dir():
        return _folder(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [
                Source(
                    str(path),
                    info.filename,
                    label=printable(info.filename),
                    skip=_member_skip(info),
                )
                for info in sorted(archive.infolist(), key=lambda i: i.filename)
                if not info.is_dir()
                and not _hidden(PurePosixPath(info.filename).name)
                and not info.filename.startswith("__MACOSX/")
            ]
    if path.exists():
        raise ValueError(f"{path} is neither a folder nor a zip archive.")
    raise ValueError(f"{path} does not exist.")


# --- per-file work (runs in worker processes) ------------------------------------------------


@dataclass(frozen=True)
class Job:
    source: Source
    current_hash: str | None  # the user's saved photo, if any
    replace: bool  # --on-conflict replace
    render: bool  # False for a dry run: the same decode and checks, nothing rendered
    options: RenderOptions  # Photos' own, for this user: the import renders as `set` does


@dataclass
class Outcome:
    status: Status
    sha256: str = ""
    detail: str = ""
    rendered: Rendered | None = None


def process(job: Job) -> Outcome:
    """Read, hash, and (unless unchanged or kept) validate and render one file."""
    try:
        data = job.source.read(job.options.limits.max_bytes + 1)
    except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
        return Outcome(Status.INVALID, detail=f"cannot read: {exc}")
    sha = hashlib.sha256(data).hexdigest()
    if sha == job.current_hash:
        return Outcome(Status.UNCHANGED, sha, "same bytes as the saved photo")
    if job.current_hash is not None and not job.replace:
        return Outcome(Status.KEPT, sha, "has another photo (use --on-conflict replace)")
    status = Status.IMPORTED if job.current_hash is None else Status.REPLACED
    try:
        if not job.render:
            # The import's own decode (a truncated file fails here as it would there), so
            # the dry run's plan is what the import will do; only rendering is left out.
            options = job.options
            _image, info, _scale = imaging.normalize(data, options.limits, target=options.max_size)
            return Outcome(status, sha, f"{info.format} {info.width}×{info.height}")
        rendered = job.options.render(data)
    except ImageError as exc:
        return Outcome(Status.INVALID, sha, str(exc))
    except Exception as exc:  # a decoder bug must not stop the other 9,999 files
        return Outcome(Status.INVALID, sha, f"unexpected {type(exc).__name__}: {exc}")
    return Outcome(status, sha, rendered=rendered)


def _init_worker() -> None:
    # Load the face detector once per worker, before the first photo, so it is not timed per file.
    from .facecrop import warm_up

    warm_up()


def _start_worker() -> None:
    """Pool initializer: warm up, and never outlive the importing process.

    After a `kill -9` of the parent, forked workers still hold each other's ends of the
    pool's pipes, so they would wait for work forever; a watchdog ends them instead.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    _init_worker()


# --- plan, run, report -----------------------------------------------------------------------


@dataclass
class Item:
    """One file's line in the plan and the report."""

    file: str
    status: Status | None = None  # None: still to be processed
    user: str = ""  # the matched user's primary address
    detail: str = ""
    sha256: str = ""
    crop: str = ""
    crop_reason: str = ""  # CropReason value of the stored crop
    crop_confidence: float | None = None
    crop_guess: bool = False  # the crop is a guess: an admin should look at it
    # The automatic photo checks that did not pass (`id=outcome: words; ...`; docs/checks.md).
    checks: str = ""
    version: int | None = None
    user_id: str = field(default="", repr=False)


@dataclass
class Plan:
    items: list[Item]
    sources: dict[str, Source]  # by Item.file
    hint: str = ""  # another --match that would match unmatched files, said once

    @property
    def pending(self) -> list[Item]:
        return [i for i in self.items if i.status is None]


def plan(sources: list[Source], matcher: FileMatcher) -> Plan:
    """Match every file to a user; settle the files that need no reading.

    Unmatched files that another pattern would match (`Adele Vance.jpg` with `{name}`) say
    so on their line, and the plan's `hint` says it once.
    """
    items = [Item(s.name) for s in sources]
    by_user: dict[str, list[Item]] = {}
    for source, item in zip(sources, items, strict=True):
        if source.skip:
            item.status, item.detail = Status.SKIPPED, source.skip
            continue
        users = matcher.match(source.stem)
        if not users:
            item.status = Status.UNMATCHED
            item.detail = matcher.unmatched(source.stem)
        elif len(users) > 1:
            item.status = Status.AMBIGUOUS
            item.detail = "matches " + ", ".join(u.address for u in users)
        else:
            user = users[0]
            item.user, item.user_id = user.address, user.id
            try:
                Photos.check_account(user)
            except AccountUnavailable:
                item.status = Status.FAILED
                item.detail = f"account is {user.account.value}; it cannot hold photos"
            by_user.setdefault(user.id, []).append(item)
    for group in by_user.values():
        if len(group) > 1:
            names = ", ".join(Path(i.file).name for i in group)
            for item in group:
                item.status = Status.DUPLICATE
                item.detail = f"{len(group)} files name {item.user}: {names}"
    the_plan = Plan(items, {s.name: s for s in sources})
    if isinstance(matcher, Matcher):
        _hint(the_plan, matcher)
    return the_plan


def _hint(the_plan: Plan, matcher: Matcher) -> None:
    unmatched = [i for i in the_plan.items if i.status is Status.UNMATCHED]
    stems = [the_plan.sources[i.file].stem for i in unmatched]
    suggestions = suggest_patterns(stems, matcher, limit=1)
    if not suggestions:
        return
    best = suggestions[0]
    files = "file" if best.matches == 1 else "files"
    the_plan.hint = f"{best.matches} {files} would match with --match '{best.pattern}'"
    for item in unmatched:
        item.detail += f" — {the_plan.hint}"


class Progress(Protocol):
    """What run() reports progress to; the CLI passes a tqdm bar."""

    def update(self, n: float | None = 1) -> bool | None: ...

    def close(self) -> None: ...


def run(
    the_plan: Plan,
    photos: Photos,
    settings: Settings,
    *,
    jobs: int = 1,
    replace: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    actor: str = "admin",
) -> list[Item]:
    """Process every pending item (workers) and store the results (here). Returns all items.

    Files go through `photos` as uploads do: rendered with its options for each user, stored
    with `put`, and a refused file is audited as a refused upload (so `diagnose` explains it).
    (`settings` is kept for callers; what rendering uses is `photos.settings`.)
    """
    store = photos.store
    hashes = store.saved_photo_hashes()
    users = {i.user_id: photos.store.find_user(i.user_id) for i in the_plan.pending}
    work: list[tuple[Item, Job]] = []
    for item in the_plan.pending:
        user = users[item.user_id]
        if user is None:  # deleted since the plan was made
            item.status, item.detail = Status.FAILED, "the user no longer exists"
            continue
        job = Job(
            source=the_plan.sources[item.file],
            current_hash=hashes.get(user.id),
            replace=replace,
            render=not dry_run,
            options=photos.render_options(user),
        )
        work.append((item, job))

    def finish(item: Item, outcome: Outcome) -> None:
        item.sha256, item.detail = outcome.sha256, outcome.detail
        item.status = outcome.status
        user = users[item.user_id]
        assert user is not None
        if outcome.status is Status.INVALID and not dry_run:
            photos.refused(user, f"import of {item.file}: {item.detail}", actor=actor, via="import")
        if outcome.rendered is None:
            return
        try:
            photo = photos.put(user, outcome.rendered, actor=actor, via="import")
        except Exception as exc:  # e.g. the account was disabled meanwhile
            item.status, item.detail = Status.FAILED, f"not stored: {exc}"
            photos.refused(user, f"import of {item.file}: {item.detail}", actor=actor, via="import")
            return
        item.crop, item.version = str(photo.crop), photo.version
        decision = photo.crop_decision
        item.crop_reason, item.crop_confidence = decision.reason.value, decision.confidence
        item.crop_guess = decision.guess
        item.checks = "; ".join(
            f"{r.id}={r.outcome}: {r.words}" for r in photo.checks if r.outcome != "pass"
        )
        item.detail = (
            f"version {photo.version}, sizes {photo.sizes[0]}..{photo.largest}, crop {decision}"
        )

    try:
        for item, outcome in _execute(work, jobs, photos.runner):
            finish(item, outcome)
            if progress is not None:
                progress.update()
    finally:
        if progress is not None:
            progress.close()
    return the_plan.items


def _execute(
    work: list[tuple[Item, Job]], jobs: int, runner: Runner | None = None
) -> Iterator[tuple[Item, Outcome]]:
    """Outcomes as they complete. A bounded window keeps memory flat and a kill cheap.

    With a runner (the image worker pool) every file is processed there, under the pool's
    memory and CPU limits; `jobs` caps how many run at once.
    """
    if runner is None:
        if jobs <= 1 or len(work) <= 1:
            for item, job in work:
                yield item, process(job)
            return
        yield from _execute_processes(work, jobs)
        return

    def bounded(job: Job) -> Outcome:
        try:
            return runner.run(process, job)
        except ImageError as exc:  # over the job's limits, or the decoder crashed
            return Outcome(Status.INVALID, detail=exc.message)

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="import") as threads:
        yield from _windowed(threads, bounded, work, jobs * 2)


def _execute_processes(work: list[tuple[Item, Job]], jobs: int) -> Iterator[tuple[Item, Outcome]]:
    """Without a worker pool (library callers): a process pool of our own."""
    # Load OpenCV and the detector here, once: forked workers inherit them instead of each
    # paying ~0.3 s at start (workers started another way load it in _init_worker).
    _init_worker()
    with ProcessPoolExecutor(max_workers=jobs, initializer=_start_worker) as pool:
        yield from _windowed(pool, process, work, jobs * 3)


def _windowed(
    executor: Executor,
    run: Callable[[Job], Outcome],
    work: list[tuple[Item, Job]],
    window: int,
) -> Iterator[tuple[Item, Outcome]]:
    """At most `window` jobs in flight; outcomes in the order they complete. On an error or
    an abandoned iteration, queued jobs are cancelled instead of run."""
    pending = iter(work)
    in_flight: dict[Future[Outcome], Item] = {}
    try:
        for item, job in islice(pending, window):
            in_flight[executor.submit(run, job)] = item
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                item = in_flight.pop(future)
                for next_item, next_job in islice(pending, 1):
                    in_flight[executor.submit(run, next_job)] = next_item
                yield item, future.result()
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise


def summary(items: Iterable[Item]) -> Counter[Status]:
    return Counter(i.status for i in items if i.status is not None)


# A spreadsheet runs a cell that starts with one of these as a formula (`=HYPERLINK(...)`).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a leading formula character gets a ' before
    it (the OWASP advice for CSV injection). Numbers and empty cells are left alone."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(path: Path, rows: list[dict[str, object]], fieldnames: list[str]) -> None:
    """Every CSV the project writes goes through here, so no cell is a formula."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)


def write_report(items: list[Item], path: Path) -> None:
    """JSON when the name ends in .json, else CSV; one row per file."""
    rows = [
        {k: str(v) if isinstance(v, Status) else v for k, v in asdict(i).items() if k != "user_id"}
        for i in items
    ]
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return
    write_csv(path, rows, list(rows[0]) if rows else ["file"])


def load_matcher(store: Store, pattern: str) -> Matcher:
    return Matcher(Pattern.parse(pattern), store.iter_users())


MAP_LIMIT = 64 << 20  # a mapping file of a million rows is far less


def load_map(store: Store, path: Path) -> MapMatcher:
    """A matcher from a mapping file (CSV: header, then file name, user per line)."""
    try:
        data = read_regular(str(path), MAP_LIMIT + 1)
    except OSError as exc:
        raise ValueError(f"Cannot read the mapping file {path}: {exc.strerror or exc}.") from None
    if len(data) > MAP_LIMIT:
        raise ValueError(f"The mapping file {path} is larger than {MAP_LIMIT >> 20} MiB.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")  # Excel's "CSV" in Western locales
    rows = parse_map(text)
    return MapMatcher(rows, store.iter_users(), source=f"the map {path.name}")
