"""The embedded store's org-wide photo facts (doctor); the status listing is shared."""

from __future__ import annotations

from .. import facts_sql
from ..shared.status import PhotoStatuses
from .connection import SQLiteBase


class Facts(PhotoStatuses, SQLiteBase):
    """Users with their photo facts; the org-wide checks in one query."""

    def photo_facts(self, first: int = 10) -> list[facts_sql.FactsGroup]:
        found = self._db.execute(
            facts_sql.groups_sql(self.dialect.name, self.dialect.mark), (first,)
        ).fetchall()
        return facts_sql.groups(found)
