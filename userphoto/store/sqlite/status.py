"""The embedded store's photo status: a row a user with their photo facts (listing, org walks)."""

from __future__ import annotations

from collections.abc import Iterator

from ..base import PhotoStatus, StatusFilter, StatusQuery
from ..status_sql import STATUS_FILTERS
from .schema import USER_COLUMNS as _USER_COLUMNS
from .schema import from_text as _dt
from .users import Users

# the joins, so a page costs one indexed walk of `users` by address.
_STATUS_JOINS = (
    "LEFT JOIN photos p ON p.user_id = u.id AND p.state = 'saved' "
    "LEFT JOIN directory_thumbnails d ON d.user_id = u.id"
)
_STATUS_SELECT = (
    "SELECT "
    + ", ".join(f"u.{c.strip()}" for c in _USER_COLUMNS.split(","))
    + ", p.sizes, p.created, "
    "EXISTS (SELECT 1 FROM photos v WHERE v.user_id = u.id AND v.state = 'preview'), "
    "d.user_id IS NOT NULL, d.jpeg IS NOT NULL, d.problem, d.seen, d.written_by_us, "
    "p.crop_reason "
    f"FROM users u {_STATUS_JOINS}"
)


class PhotoStatuses(Users):
    """Users with their photo facts, a page at a time or the whole organization."""

    def iter_photo_status(self, batch: int = 5000) -> Iterator[PhotoStatus]:
        last = ""
        while True:
            rows = self._db.execute(
                f"{_STATUS_SELECT} WHERE u.address > ? ORDER BY u.address LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            yield from (self._status(r) for r in rows)
            last = rows[-1][1]

    def _status(self, r: tuple) -> PhotoStatus:
        return PhotoStatus(
            user=self._user(r[:13], []),
            sizes=tuple(int(s) for s in r[13].split(",")) if r[13] else (),
            photo_created=_dt(r[14]),
            has_preview=bool(r[15]),
            directory_usable=bool(r[17]) if r[16] else None,
            directory_problem=r[18],
            directory_seen=_dt(r[19]),
            directory_written_by_us=bool(r[20]),
            crop_reason=r[21],
        )

    @staticmethod
    def _status_where(query: StatusQuery | None) -> tuple[str, tuple]:
        query = query or StatusQuery()
        clauses: list[str] = []
        params: tuple = ()
        text = query.search.strip().lower().replace("%", "").replace("_", "")
        if text:
            like = f"%{text}%"
            clauses.append(
                "(u.address LIKE ? OR lower(u.display_name) LIKE ? OR u.id IN "
                "(SELECT user_id FROM aliases WHERE address LIKE ?))"
            )
            params = (like, like, like)
        clauses.extend(STATUS_FILTERS[StatusFilter(query.filter)])
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def list_photo_status(self, query: StatusQuery | None = None) -> list[PhotoStatus]:
        query = query or StatusQuery()
        where, params = self._status_where(query)
        rows = self._db.execute(
            f"{_STATUS_SELECT} {where} ORDER BY u.address LIMIT ? OFFSET ?",
            (*params, max(0, query.limit), max(0, query.offset)),
        ).fetchall()
        return [self._status(r) for r in rows]

    def count_photo_status(self, query: StatusQuery | None = None) -> int:
        where, params = self._status_where(query)
        if not where:
            return self._db.execute("SELECT count(*) FROM users").fetchone()[0]
        return self._db.execute(
            f"SELECT count(*) FROM users u {_STATUS_JOINS} {where}", params
        ).fetchone()[0]
