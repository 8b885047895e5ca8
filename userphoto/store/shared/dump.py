"""Rows for `store copy`: whole tables dumped in key order as plain values, and turned back
into each database's own (`Dialect.codec`). Loading them differs (errors, counting, sequences)
and lives in each backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..base import Table
from ..sql import SQLStore

# Tables whose copy key is numeric (no collation to pin).
_INT_KEYED = frozenset({"photos", "renditions", "audit"})


class DumpRows(SQLStore):
    """Whole tables in key order, the same on every store."""

    def _key_order(self, table: Table, descending: bool = False) -> str:
        # Text keys compare byte-wise whatever the database's collation, so a copy walks
        # every store in the same order.
        pin = "" if table.name in _INT_KEYED else self.dialect.bytewise
        return ", ".join(f"{k}{pin}{' DESC' if descending else ''}" for k in table.key)

    def dump_rows(self, table: Table, after: tuple | None, limit: int) -> list[tuple]:
        where, params = "", ()
        if after is not None:
            where = f"WHERE ({self._key_order(table)}) > ({', '.join('?' * len(after))})"
            params = tuple(after)
        found = self._all(
            f"SELECT {', '.join(table.columns)} FROM {table.name} {where} "
            f"ORDER BY {self._key_order(table)} LIMIT ?",
            (*params, limit),
        )
        return [self._plain(table, r) for r in found]

    def last_key(self, table: Table) -> tuple | None:
        row = self._one(
            f"SELECT {', '.join(table.key)} FROM {table.name} "
            f"ORDER BY {self._key_order(table, descending=True)} LIMIT 1"
        )
        return tuple(row) if row else None

    def _plain(self, table: Table, row: Any) -> tuple:
        """A row as plain values: datetimes, bools, dicts, int tuples."""
        c = self.dialect.codec
        return _converted(table, row, (c.read_time, bool, c.read_json, c.read_sizes))

    def _stored(self, table: Table, row: tuple) -> tuple:
        """A plain row as this database keeps it."""
        c = self.dialect.codec
        return _converted(table, row, (c.write_time, c.write_flag, c.write_json, c.write_sizes))

    def _load_sql(self, table: Table) -> str:
        return (
            f"INSERT INTO {table.name} ({', '.join(table.columns)}) "
            f"VALUES ({', '.join('?' * len(table.columns))}) ON CONFLICT DO NOTHING"
        )


def _converted(table: Table, row: Any, by_kind: tuple[Callable[[Any], Any], ...]) -> tuple:
    """`row` with each time, flag, JSON and int-list column (in that order in `by_kind`)
    converted; NULL stays NULL."""
    kinds = (table.times, table.flags, table.json, table.int_lists)
    convert = [
        next((f for cols, f in zip(kinds, by_kind, strict=True) if c in cols), None)
        for c in table.columns
    ]
    return tuple(v if v is None or f is None else f(v) for f, v in zip(convert, row, strict=True))
