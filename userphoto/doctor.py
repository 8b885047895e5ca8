"""The org-wide checks: every user's photo in one pass over the store, with counts and fixes.

Per-user checks are pure functions of one `PhotoStatus` row (no I/O, no image work), so
100,000 users take seconds. `userphoto diagnose ADDRESS` explains any single user in depth.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .app import App
from .directory import status as directory_status
from .findings import ADDRESS, CATALOGUE, LEVEL_ORDER, Cause, Finding, Level, cause
from .model import GUESSES, MEETING_SIZE, Account, Picture
from .resolve import usable_url
from .store import PhotoStatus

# The doctor's vocabulary is the catalogue's (one level, title and fix per finding).
CHECKS: dict[str, Finding] = CATALOGUE


def user_findings(s: PhotoStatus) -> list[str]:
    """The doctor's per-user checks: codes into CHECKS. Cheap: no I/O, no image work."""
    u, found = s.user, []
    if u.directory_gone:
        return ["directory_gone"]
    if s.directory_problem:
        found.append("directory_thumbnail_problem")
    if u.picture is Picture.URL and not usable_url(u.picture_url):
        found.append("url_missing")
    if u.picture is Picture.HIDDEN:
        found.append("picture_hidden")
    elif u.picture is Picture.DEFAULT:
        found.append("picture_default")
    if u.account in (Account.ABSENT, Account.DISABLED):
        found.append("account_unavailable")
        return found
    if u.account is Account.SD_ONLY:
        found.append("sd_only")
    if s.has_preview:
        found.append("preview_not_saved")
    if s.sizes:
        if max(s.sizes) < MEETING_SIZE and u.account is Account.HD:
            found.append("source_too_small")
        if s.crop_reason in GUESSES:
            found.append("crop_guess")
        if s.directory_usable and not s.directory_written_by_us:
            found.append("directory_disagrees")
    elif s.directory_usable:
        found.append("removal_record" if u.removal_record else "directory_only")
    elif u.picture is Picture.PHOTO:
        found.append("no_photo")
    return found


@dataclass
class DoctorReport:
    users: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    worst: list[tuple[str, list[str]]] = field(default_factory=list)
    org: list[Cause] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.counts.items() if CHECKS[code].level is Level.ERROR) + sum(
            1 for c in self.org if c.level is Level.ERROR
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "seconds": round(self.seconds, 3),
            "errors": self.errors,
            "findings": [
                {
                    "code": code,
                    "level": CHECKS[code].level.value,
                    "title": CHECKS[code].title,
                    "count": n,
                    "fix": list(CHECKS[code].fixes(address=ADDRESS)),
                    "choice": CHECKS[code].choice,
                    "examples": self.examples[code],
                }
                for code, n in self._ordered()
            ],
            "organization": [c.to_dict() for c in self.org],
            "worst": [{"address": a, "findings": f} for a, f in self.worst],
        }

    def _ordered(self) -> list[tuple[str, int]]:
        return sorted(
            self.counts.items(), key=lambda kv: (LEVEL_ORDER[CHECKS[kv[0]].level], -kv[1])
        )

    def text(self) -> str:
        lines = [f"{self.users:,} users checked in {self.seconds:.1f}s"]
        for org in self.org:
            lines.append(f"[{org.level.value}] {org.message}")
            lines += [f"    fix: {f}" for f in org.fix]
        if not self.counts:
            lines.append("No findings: every photo shows as it should.")
        for code, n in self._ordered():
            check = CHECKS[code]
            lines.append(f"[{check.level.value:<7}] {n:>7,}  {check.title}")
            lines.append(f"{'':>19}e.g. {', '.join(self.examples[code])}")
            label = "fix (overrides the user's choice)" if check.choice else "fix"
            for command in check.fixes(address=ADDRESS):
                lines.append(f"{'':>19}{label}: {command}")
        if self.worst:
            lines.append("Worst offenders:")
            lines += [f"  {a}: {', '.join(f)}" for a, f in self.worst]
        lines.append(f"{self.errors} error(s). `userphoto diagnose ADDRESS` explains any one user.")
        return "\n".join(lines)


def doctor(app: App, progress: Callable[[int], None] | None = None) -> DoctorReport:
    """Every org-wide check in one pass over the store."""
    start = time.perf_counter()
    report = DoctorReport()
    scored: list[tuple[int, str, list[str]]] = []
    for status in app.store.iter_photo_status():
        report.users += 1
        found = user_findings(status)
        for code in found:
            report.counts[code] += 1
            examples = report.examples.setdefault(code, [])
            if len(examples) < 5:
                examples.append(status.user.address)
        score = sum(
            3 if CHECKS[c].level is Level.ERROR else 1
            for c in found
            if CHECKS[c].level is not Level.INFO
        )
        if score:
            scored.append((score, status.user.address, found))
            if len(scored) > 200:
                scored.sort(key=lambda t: -t[0])
                del scored[10:]
        if progress and report.users % 1000 == 0:
            progress(1000)
    if progress:
        progress(report.users % 1000)
    scored.sort(key=lambda t: (-t[0], t[1]))
    report.worst = [(a, f) for _s, a, f in scored[:10]]
    report.org = _org_checks(app)
    report.seconds = time.perf_counter() - start
    return report


def _org_checks(app: App) -> list[Cause]:
    out: list[Cause] = []
    status = directory_status.load(app.store)
    for mode in ("full", "delta"):
        run = status.get(mode)
        if run and not run.get("ok"):
            out.append(cause("sync_failed", mode=mode, detail=run.get("error") or "unknown error"))
    if not app.settings.self_service:
        out.append(cause("self_service_disabled", address=ADDRESS))
    if not app.store.list_partners():
        out.append(cause("no_partners"))
    return out
