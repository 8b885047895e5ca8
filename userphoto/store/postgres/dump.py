"""The scale-out store's loading for `store copy` (dumping is shared: `shared/dump.py`)."""

from __future__ import annotations

from psycopg import errors as pg_errors

from ...errors import Conflict
from ..base import ChangeKind, Table
from ..shared.dump import DumpRows
from .connection import PostgresBase, marked


class Dump(DumpRows, PostgresBase):
    """Loading whole tables back (a deployment's move)."""

    def load_rows(self, table: Table, rows: list[tuple]) -> int:
        try:
            with self._tx() as tx, tx.conn.cursor() as cur:
                cur.executemany(
                    marked(self._load_sql(table)), [self._stored(table, r) for r in rows]
                )
                return max(cur.rowcount, 0)
        except pg_errors.IntegrityError as exc:
            raise Conflict(f"{table.name}: {exc.diag.message_primary}") from None

    def finish_load(self) -> None:
        with self._tx() as tx:
            for name in ("photos", "audit"):  # new rows get ids after the loaded ones
                tx.conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"coalesce(max(id), 1), max(id) IS NOT NULL) FROM {name}"
                )
            tx.changed(ChangeKind.ORG)
