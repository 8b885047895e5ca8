"""The scale-out store's rows for `store copy`: dumped and loaded table by table."""

from __future__ import annotations

from typing import Any

from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from ...errors import Conflict
from ..base import ChangeKind, Table
from .connection import PostgresBase

# Tables whose copy key is numeric (no collation to pin).
_INT_KEYED = frozenset({"photos", "renditions", "audit"})


class Dump(PostgresBase):
    """Whole tables in key order, and loading them back (a deployment's move)."""

    def dump_rows(self, table: Table, after: tuple | None, limit: int) -> list[tuple]:
        # Text keys compare byte-wise (COLLATE "C") whatever the database's collation, so a
        # copy walks every store in the same order.
        text = table.name not in _INT_KEYED
        key = ", ".join(f'{k} COLLATE "C"' if text else k for k in table.key)
        where, params = "", ()
        if after is not None:
            where = f"WHERE ({key}) > ({', '.join(['%s'] * len(after))})"
            params = tuple(after)
        rows = self._all(
            f"SELECT {', '.join(table.columns)} FROM {table.name} {where} ORDER BY {key} LIMIT %s",
            (*params, limit),
        )
        lists = [table.columns.index(c) for c in table.int_lists]
        if lists:
            rows = [
                tuple(tuple(v) if i in lists and v is not None else v for i, v in enumerate(r))
                for r in rows
            ]
        return rows

    def last_key(self, table: Table) -> tuple | None:
        text = table.name not in _INT_KEYED
        order = ", ".join(f'{k} COLLATE "C" DESC' if text else f"{k} DESC" for k in table.key)
        row = self._one(f"SELECT {', '.join(table.key)} FROM {table.name} ORDER BY {order} LIMIT 1")
        return tuple(row) if row else None

    def load_rows(self, table: Table, rows: list[tuple]) -> int:
        def value(column: str, v: Any) -> Any:
            if v is None:
                return v
            if column in table.json:
                return Jsonb(v)
            if column in table.int_lists:
                return list(v)
            return v

        try:
            with self._tx() as tx, tx.conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {table.name} ({', '.join(table.columns)}) "
                    f"VALUES ({', '.join(['%s'] * len(table.columns))}) ON CONFLICT DO NOTHING",
                    [
                        tuple(value(c, v) for c, v in zip(table.columns, r, strict=True))
                        for r in rows
                    ],
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
            tx.changes.append((ChangeKind.ORG, None))
