"""The org-wide checks: every user's photo at once, with counts, examples and fixes.

The per-user rule is `findings.user_findings`, pure over a small `UserFacts` value. The store
counts users per distinct facts value in one set-based query (`Store.photo_facts`: a few
hundred groups for any organization size), and the rule runs once per group: a million users
cost one database pass, not a million Python rows. `userphoto diagnose ADDRESS` explains any
single user in depth.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .context import Context
from .findings import (
    ADDRESS,
    CATALOGUE,
    LEVEL_ORDER,
    Cause,
    Finding,
    Level,
    UserFacts,
    cause,
    is_problem,
)
from .findings import user_findings as rule
from .model import GUESSES, MEETING_SIZE, Picture
from .resolve import usable_url
from .store import PhotoStatus

# The doctor's vocabulary is the catalogue's (one level, title and fix per finding).
CHECKS: dict[str, Finding] = CATALOGUE
WORST = 10  # worst offenders listed
EXAMPLES = 5  # example addresses per finding


def facts_of(s: PhotoStatus) -> UserFacts:
    """One status row's facts (the admin listing's rows; the store computes the same in SQL)."""
    u = s.user
    return UserFacts(
        directory_gone=u.directory_gone,
        directory_problem=bool(s.directory_problem),
        picture=u.picture,
        url_usable=u.picture is not Picture.URL or usable_url(u.picture_url),
        account=u.account,
        has_preview=s.has_preview,
        has_sizes=bool(s.sizes),
        below_meeting_size=bool(s.sizes) and max(s.sizes) < MEETING_SIZE,
        crop_guess=s.crop_reason in GUESSES,
        directory_usable=bool(s.directory_usable),
        directory_ours=s.directory_written_by_us,
        removal_record=u.removal_record is not None,
    )


def user_findings(s: PhotoStatus) -> list[str]:
    """The per-user rule for one status row: codes into CHECKS (the admin listing's rows)."""
    return list(rule(facts_of(s)))


def score(codes: tuple[str, ...] | list[str]) -> int:
    """How bad one user's findings are: 3 per error, 1 per warning (the worst offenders)."""
    return sum(
        3 if CHECKS[c].level is Level.ERROR else 1
        for c in codes
        if CHECKS[c].level is not Level.INFO
    )


@dataclass
class DoctorReport:
    users: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    worst: list[tuple[str, list[str]]] = field(default_factory=list)
    org: list[Cause] = field(default_factory=list)
    seconds: float = 0.0
    # Counts are findings (one person can have several); these say how many people they are
    # about, and how many of them the admin listing's Problems filter shows (the same rule).
    flagged: int = 0  # people with an error or warning (the admin listing's Findings column)
    problem_people: int = 0  # people with a finding marked `problem`

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.counts.items() if CHECKS[code].level is Level.ERROR) + sum(
            1 for c in self.org if c.level is Level.ERROR
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "people_flagged": self.flagged,
            "people_with_problems": self.problem_people,
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
        lines.append(
            f"Errors and warnings are about {self.flagged:,} people; {self.problem_people:,} "
            "of them with a problem to fix (the admin page's Problems filter)."
        )
        lines.append(f"{self.errors} error(s). `userphoto diagnose ADDRESS` explains any one user.")
        return "\n".join(lines)


def doctor(
    app: Context,
    progress: Callable[[int], None] | None = None,
    phase: Callable[[str], None] | None = None,
    sync_runs: Mapping[str, Any] | None = None,
) -> DoctorReport:
    """Every org-wide check: the store counts users per facts value, the rule runs per value.

    `phase` names each step as it starts; `progress` advances by users as their group's
    findings are counted. The database's grouping is the long step and reports nothing
    until it is done: the phase says what is being waited for. `sync_runs`: what the last
    directory syncs did (`directory.status.load(store)`, handed in by the CLI and the admin
    page: the doctor imports no directory code); None: no directory checks.
    """
    start = time.perf_counter()
    report = DoctorReport()
    if phase:
        phase("grouping users in the database")
    groups = app.store.photo_facts(first=WORST)  # WORST >= EXAMPLES: enough addresses for both
    if phase:
        phase(f"checking {len(groups)} kinds of user")
    firsts: dict[str, list[tuple[str, int]]] = {}  # code -> (address, position in findings)
    scored: list[tuple[int, str, list[str]]] = []
    for group in groups:
        report.users += group.users
        found = rule(group.facts)
        if any(CHECKS[c].level is not Level.INFO for c in found):
            report.flagged += group.users
        if is_problem(group.facts):  # the Problems filter's rule (facts_sql.problems_sql)
            report.problem_people += group.users
        for i, code in enumerate(found):
            report.counts[code] += group.users
            firsts.setdefault(code, []).extend((a, i) for a in group.first[:EXAMPLES])
        worth = score(found)
        if worth:
            scored.extend((worth, a, list(found)) for a in group.first)
        if progress:
            progress(group.users)
    for code, seen in firsts.items():
        seen.sort()
        report.examples[code] = [a for a, _ in seen[:EXAMPLES]]
    # Findings in the order a walk by address first meets them (ties in the listing keep it).
    first_met = sorted(report.counts, key=lambda code: min(firsts[code]))
    report.counts = Counter({code: report.counts[code] for code in first_met})
    scored.sort(key=lambda t: (-t[0], t[1]))
    report.worst = [(a, f) for _s, a, f in scored[:WORST]]
    if phase:
        phase("checking the organization")
    report.org = _org_checks(app, sync_runs or {})
    report.seconds = time.perf_counter() - start
    return report


def _org_checks(app: Context, status: Mapping[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    for mode in ("full", "delta"):
        run = status.get(mode)
        if run and not run.get("ok"):
            out.append(cause("sync_failed", mode=mode, detail=run.get("error") or "unknown error"))
    if not app.settings.self_service:
        out.append(cause("self_service_disabled", address=ADDRESS))
    if not app.store.list_partners():
        out.append(cause("no_partners"))
    return out
