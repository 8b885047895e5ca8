"""Photo status: a row a user with their photo facts (the listing, org-wide walks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import queries, rows
from ..base import PhotoStatus, StatusQuery
from ..queries import STATUS_JOINS, STATUS_SELECT
from ..sql import SQLStore


class PhotoStatuses(SQLStore):
    """Users with their photo facts, a page at a time or the whole organization."""

    def iter_photo_status(self, batch: int = 5000) -> Iterator[PhotoStatus]:
        last = ""
        while True:
            found = self._all_named(
                f"{STATUS_SELECT} WHERE u.address > ? ORDER BY u.address LIMIT ?", (last, batch)
            )
            if not found:
                return
            yield from (self._status(r) for r in found)
            last = found[-1]["address"]

    def _status(self, r: Any) -> PhotoStatus:
        return rows.status(r, self.dialect.codec)

    def _status_where(self, query: StatusQuery | None) -> tuple[str, tuple]:
        return queries.status_where(query, self.dialect.like)

    def list_photo_status(self, query: StatusQuery | None = None) -> list[PhotoStatus]:
        query = query or StatusQuery()
        where, params = self._status_where(query)
        found = self._all_named(
            f"{STATUS_SELECT} {where} ORDER BY u.address LIMIT ? OFFSET ?",
            (*params, max(0, query.limit), max(0, query.offset)),
        )
        return [self._status(r) for r in found]

    def count_photo_status(self, query: StatusQuery | None = None) -> int:
        where, params = self._status_where(query)
        if not where:
            return self._one("SELECT count(*) FROM users")[0]
        sql = f"SELECT count(*) FROM users u {STATUS_JOINS} {where}"
        return self._one(sql, params)[0]
