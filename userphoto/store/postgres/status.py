"""The scale-out store's photo status: a row a user with their photo facts (listing, org walks)."""

from __future__ import annotations

from collections.abc import Iterator

from .. import facts_sql, queries, rows
from ..base import PhotoStatus, StatusQuery
from ..queries import STATUS_JOINS as _STATUS_JOINS
from ..queries import STATUS_SELECT as _STATUS_SELECT
from .connection import PostgresBase
from .schema import CODEC


class PhotoStatuses(PostgresBase):
    """Users with their photo facts, a page at a time or the whole organization."""

    def iter_photo_status(self, batch: int = 5000) -> Iterator[PhotoStatus]:
        last = ""
        while True:
            found = self._all_named(
                f"{_STATUS_SELECT} WHERE u.address > %s ORDER BY u.address LIMIT %s",
                (last, batch),
            )
            if not found:
                return
            yield from (self._status(r) for r in found)
            last = found[-1]["address"]

    @staticmethod
    def _status(r: rows.Row) -> PhotoStatus:
        return rows.status(r, CODEC)

    @staticmethod
    def _status_where(query: StatusQuery | None) -> tuple[str, tuple]:
        return queries.status_where(query, "LIKE %s ESCAPE ''")

    def list_photo_status(self, query: StatusQuery | None = None) -> list[PhotoStatus]:
        query = query or StatusQuery()
        where, params = self._status_where(query)
        found = self._all_named(
            f"{_STATUS_SELECT} {where} ORDER BY u.address LIMIT %s OFFSET %s",
            (*params, max(0, query.limit), max(0, query.offset)),
        )
        return [self._status(r) for r in found]

    def count_photo_status(self, query: StatusQuery | None = None) -> int:
        where, params = self._status_where(query)
        if not where:
            return self._one("SELECT count(*) FROM users")[0]  # type: ignore[index]
        return self._one(f"SELECT count(*) FROM users u {_STATUS_JOINS} {where}", params)[0]  # type: ignore[index]

    # --- org-wide checks (doctor) ---------------------------------------------------------
    def photo_facts(self, first: int = 10) -> list[facts_sql.FactsGroup]:
        with self._connection(read=True) as conn, conn.transaction(), conn.cursor() as cur:
            for setting in facts_sql.POSTGRES_SETTINGS:
                cur.execute(setting)
            found = cur.execute(facts_sql.groups_sql("postgresql", "%s"), (first,)).fetchall()
        return facts_sql.groups(found)
