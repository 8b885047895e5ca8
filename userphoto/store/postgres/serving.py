"""The scale-out store's read for a serving cache miss: one query (`serving_sql`)."""

from __future__ import annotations

from .. import rows, serving_sql
from ..base import Serving
from .connection import PostgresBase
from .schema import CODEC


class ServingReads(PostgresBase):
    def serving(
        self, key: str, size: int | None = None, *, by_hash: bool = False
    ) -> Serving | None:
        sql = serving_sql.POSTGRES_BY_HASH if by_hash else serving_sql.POSTGRES_BY_KEY
        row = self._one(sql, serving_sql.params(key, size))
        if row is None or row[0] is None:
            _decode(serving_sql.POSTGRES_STAND_IN)  # a found user's decoding work
            return None
        return _decode(row)


def _decode(row: tuple) -> Serving:
    return rows.serving(row, row[serving_sql.ALIASES_AT], CODEC)
