"""The embedded store's read for a serving cache miss: one query (`serving_sql`)."""

from __future__ import annotations

import json
from typing import Any

from .. import rows, serving_sql
from ..base import Serving
from .connection import SQLiteBase
from .schema import CODEC


class ServingReads(SQLiteBase):
    def serving(
        self, key: str, size: int | None = None, *, by_hash: bool = False
    ) -> Serving | None:
        sql = serving_sql.SQLITE_BY_HASH if by_hash else serving_sql.SQLITE_BY_KEY
        row = self._db.execute(sql, serving_sql.params(key, size)).fetchone()
        if row is None or row[0] is None:
            _decode(serving_sql.SQLITE_STAND_IN)  # a found user's decoding work
            return None
        return _decode(row)


def _decode(row: Any) -> Serving:  # a sqlite3.Row or the stand-in tuple
    return rows.serving(row, sorted(json.loads(row[serving_sql.ALIASES_AT])), CODEC)
