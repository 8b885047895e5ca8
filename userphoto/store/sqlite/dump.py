"""The embedded store's loading for `store copy` (dumping is shared: `shared/dump.py`)."""

from __future__ import annotations

import sqlite3

from ...errors import Conflict
from ..base import ChangeKind, Table
from ..shared.dump import DumpRows
from .connection import SQLiteBase


class Dump(DumpRows, SQLiteBase):
    """Loading whole tables back (a deployment's move)."""

    def load_rows(self, table: Table, rows: list[tuple]) -> int:
        try:
            with self._tx() as tx:
                before = tx.db.total_changes
                tx.many(self._load_sql(table), [self._stored(table, r) for r in rows])
                return tx.db.total_changes - before
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"{table.name}: {exc}") from None

    def finish_load(self) -> None:
        with self._tx() as tx:  # followers drop everything they had
            tx.changed(ChangeKind.ORG)
