"""What sync did last, kept in the store for `sync --status` and the troubleshooter.

One JSON value under `directory.status`: the last full, delta and watch runs (counts, error,
per-entry problems). Per-user facts live with the user: `User.attributes["directory_changed"]`
(the directory's last change of that entry) and `DirectoryThumbnail.problem`/`seen`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..store import Store

STATUS_KEY = "directory.status"
CURSOR_KEY = "directory.cursor"
MAX_PROBLEMS = 200


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SyncReport:
    mode: str  # "full" | "delta"
    started: str = field(default_factory=lambda: now().isoformat(timespec="seconds"))
    finished: str | None = None
    ok: bool = False
    server: str | None = None
    seen: int = 0  # entries read
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # entries that cannot become users (no mail, conflicts)
    photos_new: int = 0
    photos_unchanged: int = 0
    photos_removed: int = 0
    photo_problems: int = 0
    gone: int = 0
    returned: int = 0  # users seen again after being marked gone
    seconds: float = 0.0
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)

    @property
    def changed(self) -> bool:
        return bool(
            self.added
            or self.updated
            or self.photos_new
            or self.photos_removed
            or self.gone
            or self.returned
            or self.photo_problems
            or self.error
        )

    def summary(self) -> str:
        rate = f", {self.seen / self.seconds:,.0f} entries/s" if self.seconds and self.seen else ""
        text = (
            f"{self.mode} sync {'ok' if self.ok else 'FAILED'}: {self.seen} entries read, "
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.skipped} skipped; photos {self.photos_new} new, "
            f"{self.photos_unchanged} unchanged, {self.photos_removed} removed, "
            f"{self.photo_problems} unusable; {self.gone} marked gone, "
            f"{self.returned} returned ({self.seconds:.2f}s{rate})"
        )
        if self.error:
            text += f"\n  error: {self.error}"
        return text


def load(store: Store) -> dict[str, Any]:
    raw = store.get_state(STATUS_KEY)
    return json.loads(raw) if raw else {}


def record(store: Store, report: SyncReport) -> None:
    status = load(store)
    status[report.mode] = asdict(report)
    if report.ok:
        status[f"last_ok_{report.mode}"] = report.finished
    store.set_state(STATUS_KEY, json.dumps(status))


def record_watch(store: Store, state: dict[str, Any]) -> None:
    status = load(store)
    status["watch"] = state
    store.set_state(STATUS_KEY, json.dumps(status))


class WatchRecorder:
    """The `watch` entry of the status: written when its state changes, else as a heartbeat
    every `every` seconds (an idle watch writes next to nothing)."""

    def __init__(self, store: Store, every: float = 300.0):
        self.store = store
        self.every = every
        stamp = now().isoformat(timespec="seconds")
        self.state: dict[str, Any] = {
            "state": "starting",
            "since": stamp,
            "heartbeat": stamp,
            "pid": os.getpid(),
            "error": "starting",
        }
        self._written = 0.0

    def update(self, **changes: Any) -> None:
        changed = any(self.state.get(k) != v for k, v in changes.items())
        self.state.update(changes)
        if changed or time.monotonic() - self._written >= self.every:
            self._write()

    def beat(self) -> None:
        if time.monotonic() - self._written >= self.every:
            self._write()

    def _write(self) -> None:
        self.state["heartbeat"] = now().isoformat(timespec="seconds")
        record_watch(self.store, dict(self.state))
        self._written = time.monotonic()


def format_status(status: dict[str, Any], *, pending_writebacks: int = 0) -> str:
    if not status:
        return "No directory sync has run yet. Start with `userphoto sync --full`."
    lines: list[str] = []
    for mode in ("full", "delta"):
        run = status.get(mode)
        if not run:
            lines.append(f"{mode}: never run")
            continue
        verdict = "ok" if run.get("ok") else "FAILED"
        lines.append(
            f"{mode}: {verdict} at {run.get('finished') or run.get('started')} from "
            f"{run.get('server') or '(no server reached)'} — {run.get('seen', 0)} read, "
            f"{run.get('added', 0)} added, {run.get('updated', 0)} updated, "
            f"photos {run.get('photos_new', 0)} new / "
            f"{run.get('photo_problems', 0)} unusable, {run.get('gone', 0)} gone "
            f"({run.get('seconds', 0):.2f}s)"
        )
        if not run.get("ok") and status.get(f"last_ok_{mode}"):
            lines.append(f"  last good {mode}: {status[f'last_ok_{mode}']}")
        if run.get("error"):
            lines.append(f"  error: {run['error']}")
        for problem in run.get("problems", [])[:10]:
            lines.append(f"  problem: {problem}")
        extra = len(run.get("problems", [])) - 10
        if extra > 0:
            lines.append(f"  ... and {extra} more problems")
    watch = status.get("watch")
    if watch:
        lines.append(
            f"watch: {watch.get('state', '?')} since {watch.get('since')}, last heartbeat "
            f"{watch.get('heartbeat')}, pid {watch.get('pid')}"
            + (f" — {watch['error']}" if watch.get("error") else "")
        )
        if watch.get("mode") == "syncrepl":
            lines.append(
                "  changes: pushed by the server (RFC 4533 syncrepl refreshAndPersist), "
                f"{watch.get('sessions', 1)} session(s)"
            )
        elif watch.get("mode") == "polling":
            lines.append(f"  changes: polling every {watch.get('interval')}s — {watch.get('why')}")
        refresh = watch.get("refresh")
        if refresh:
            how = (
                "read every entry (no stored cookie)"
                if refresh.get("full")
                else "resumed from the stored cookie"
            )
            lines.append(
                f"  last refresh: {how}, {refresh.get('entries', 0)} entries read, "
                f"{refresh.get('deleted', 0)} deletions ({refresh.get('seconds', 0):.2f}s)"
            )
    else:
        lines.append("watch: never run")
    if pending_writebacks:
        lines.append(f"write-back: {pending_writebacks} pending (retried by `sync --watch`)")
    return "\n".join(lines)
