"""The embedded store's photo status: a row a user with their photo facts (listing, org walks)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from .. import facts_sql, queries, rows
from ..base import PhotoStatus, StatusQuery
from ..queries import STATUS_JOINS as _STATUS_JOINS
from ..queries import STATUS_SELECT as _STATUS_SELECT
from .connection import SQLiteBase
from .schema import CODEC


class PhotoStatuses(SQLiteBase):
    """Users with their photo facts, a page at a time or the whole organization."""

    def iter_photo_status(self, batch: int = 5000) -> Iterator[PhotoStatus]:
        last = ""
        while True:
            found = self._db.execute(
                f"{_STATUS_SELECT} WHERE u.address > ? ORDER BY u.address LIMIT ?",
                (last, batch),
            ).fetchall()
            if not found:
                return
            yield from (self._status(r) for r in found)
            last = found[-1]["address"]

    @staticmethod
    def _status(r: sqlite3.Row) -> PhotoStatus:
        return rows.status(r, CODEC)

    @staticmethod
    def _status_where(query: StatusQuery | None) -> tuple[str, tuple]:
        return queries.status_where(query, "LIKE ?")

    def list_photo_status(self, query: StatusQuery | None = None) -> list[PhotoStatus]:
        query = query or StatusQuery()
        where, params = self._status_where(query)
        found = self._db.execute(
            f"{_STATUS_SELECT} {where} ORDER BY u.address LIMIT ? OFFSET ?",
            (*params, max(0, query.limit), max(0, query.offset)),
        ).fetchall()
        return [self._status(r) for r in found]

    def count_photo_status(self, query: StatusQuery | None = None) -> int:
        where, params = self._status_where(query)
        if not where:
            return self._db.execute("SELECT count(*) FROM users").fetchone()[0]
        return self._db.execute(
            f"SELECT count(*) FROM users u {_STATUS_JOINS} {where}", params
        ).fetchone()[0]

    # --- org-wide checks (doctor) ---------------------------------------------------------
    def photo_facts(self, first: int = 10) -> list[facts_sql.FactsGroup]:
        found = self._db.execute(facts_sql.groups_sql("sqlite", "?"), (first,)).fetchall()
        return facts_sql.groups(found)
