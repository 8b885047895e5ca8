"""The scale-out store's org-wide photo facts (doctor); the status listing is shared."""

from __future__ import annotations

from .. import facts_sql
from ..shared.status import PhotoStatuses
from .connection import PostgresBase


class Facts(PhotoStatuses, PostgresBase):
    """Users with their photo facts; the org-wide checks in one query, with its settings."""

    def photo_facts(self, first: int = 10) -> list[facts_sql.FactsGroup]:
        with self._connection(read=True) as conn, conn.transaction(), conn.cursor() as cur:
            for setting in facts_sql.POSTGRES_SETTINGS:
                cur.execute(setting)
            found = cur.execute(
                facts_sql.groups_sql(self.dialect.name, self.dialect.mark), (first,)
            ).fetchall()
        return facts_sql.groups(found)
