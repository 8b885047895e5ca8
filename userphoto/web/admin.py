"""The admin directory view: users as a table, searched, filtered and paged by the store.

One page costs one indexed SQL query for the rows and one count (see
`Store.list_photo_status`); nothing here walks the whole organization. Each row's source is
what an internal colleague's HD client gets, decided by the same `resolve` rule the APIs
serve from. The `doctor` summary is computed on request and kept per store generation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..doctor import CHECKS, doctor, user_findings
from ..errors import UserPhotoError
from ..model import MEETING_SIZE, ClientProfile, DirectoryFacts, PhotoState, User
from ..resolve import Source, resolve
from ..store import PhotoStatus, StatusFilter, StatusQuery
from .context import Web
from .photo import COLLEAGUE

PAGE_SIZE = 50
FILTERS: tuple[tuple[StatusFilter, str], ...] = (
    (StatusFilter.ALL, "Everyone"),
    (StatusFilter.NO_PHOTO, "No photo"),
    (StatusFilter.DIRECTORY_ONLY, "Directory only"),
    (StatusFilter.PROBLEMS, "Problems"),
)
SOURCE_LABEL = {
    Source.HD: "HD",
    Source.DIRECTORY: "Directory",
    Source.URL: "Web address",
    Source.DEFAULT: "Default",
    Source.NONE: "Hidden",
}
DOCTOR_MAX_AGE = 300.0  # seconds a doctor report is reused while nothing changed


@dataclass(frozen=True)
class Row:
    status: PhotoStatus
    source: Source
    status_text: str
    findings: list[tuple[str, str]]  # (level, title)

    @property
    def user(self) -> User:
        return self.status.user


def row_of(status: PhotoStatus) -> Row:
    user = status.user
    # resolve() needs only whether a directory thumbnail is usable, not its bytes.
    thumb = None
    if status.directory_usable is not None:
        thumb = DirectoryFacts(status.directory_usable, status.directory_problem)
    res = resolve(
        user, COLLEAGUE, ClientProfile.HD, MEETING_SIZE, photo_sizes=status.sizes, directory=thumb
    )
    if status.sizes:
        text = f"Saved, up to {max(status.sizes)} px"
    elif user.removal_record:
        text = "Removed"
    else:
        text = "No photo"
    if status.has_preview:
        text += " · preview pending"
    return Row(status, res.source, text, _findings(status))


def _findings(status: PhotoStatus) -> list[tuple[str, str]]:
    out = []
    for code in user_findings(status):
        check = CHECKS[code]
        if check.level.value == "info":
            continue
        title = check.title
        if code == "directory_thumbnail_problem" and status.directory_problem:
            title = f"directory photo unusable: {status.directory_problem}"
        out.append((check.level.value, title))
    return out


class Doctor:
    """The last doctor report, reused while the store's generation stays the same."""

    def __init__(self, web: Web):
        self.web = web
        self._lock = threading.Lock()
        self._report: tuple[int, float, dict[str, Any]] | None = None

    def report(self) -> dict[str, Any]:
        app = self.web.services.app
        generation = app.store.latest_seq()
        with self._lock:
            cached = self._report
            if cached and cached[0] == generation and time.time() - cached[1] < DOCTOR_MAX_AGE:
                return cached[2]
            result = doctor(app).to_dict()
            self._report = (generation, time.time(), result)
            return result


class AdminPages:
    def __init__(self, web: Web):
        self.web = web
        self.doctor = Doctor(web)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/admin", self.directory),
            Route("/admin/doctor", self.doctor_panel),
        ]

    async def directory(self, request: Request) -> Response:
        try:
            self.web.admin(request)
        except UserPhotoError as exc:
            return self.web.refused(request, exc)
        q = request.query_params
        search = q.get("q", "").strip()[:200]
        try:
            chosen = StatusFilter(q.get("filter", "all"))
        except ValueError:
            chosen = StatusFilter.ALL
        try:
            page = max(1, int(q.get("page", "1")))
        except ValueError:
            page = 1
        store = self.web.services.app.store
        query = StatusQuery(search, chosen, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        started = time.perf_counter()
        statuses, total = await run_in_threadpool(
            lambda: (store.list_photo_status(query), store.count_photo_status(query))
        )
        elapsed = time.perf_counter() - started
        pages = max(1, -(-total // PAGE_SIZE))

        def link(**changes: Any) -> str:
            params = {"q": search, "filter": chosen.value, "page": page, **changes}
            params = {k: v for k, v in params.items() if v not in ("", "all", 1)}
            return "/admin" + (f"?{urlencode(params)}" if params else "")

        context = {
            "title": "Directory",
            "rows": [row_of(s) for s in statuses],
            "search": search,
            "filter": chosen.value,
            "filters": [(f.value, label, link(filter=f.value, page=1)) for f, label in FILTERS],
            "page": page,
            "pages": pages,
            "total": total,
            "first": (page - 1) * PAGE_SIZE + 1 if total else 0,
            "last": min(page * PAGE_SIZE, total),
            "prev_url": link(page=page - 1) if page > 1 else None,
            "next_url": link(page=page + 1) if page < pages else None,
            "source_label": SOURCE_LABEL,
            "elapsed_ms": round(elapsed * 1000),
            "preview_state": PhotoState.PREVIEW,
        }
        return self.web.renderer.page(request, "admin.html", context)

    async def doctor_panel(self, request: Request) -> Response:
        """The doctor summary as an HTML fragment (the directory page loads it after itself)."""
        try:
            self.web.admin(request)
        except UserPhotoError as exc:
            return self.web.refused(request, exc)
        report = await run_in_threadpool(self.doctor.report)
        fragment = request.query_params.get("fragment") == "1"
        return self.web.renderer.page(
            request,
            "doctor.html",
            {"title": "Doctor", "report": report, "fragment": fragment},
        )
