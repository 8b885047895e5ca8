"""The read for a serving cache miss: one query (`serving_sql`), in each backend's spelling
(`Dialect.serving`)."""

from __future__ import annotations

from typing import Any

from .. import rows, serving_sql
from ..base import Serving
from ..sql import SQLStore


class ServingReads(SQLStore):
    def serving(
        self, key: str, size: int | None = None, *, by_hash: bool = False
    ) -> Serving | None:
        spelling = self.dialect.serving
        row = self._one(
            spelling.by_hash if by_hash else spelling.by_key, serving_sql.params(key, size)
        )
        if row is None or row[0] is None:
            self._decode(spelling.stand_in)  # a found user's decoding work
            return None
        return self._decode(row)

    def _decode(self, row: Any) -> Serving:
        aliases = self.dialect.serving.aliases(row[serving_sql.ALIASES_AT])
        return rows.serving(row, aliases, self.dialect.codec)
