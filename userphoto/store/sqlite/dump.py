"""The embedded store's rows for `store copy`: dumped and loaded table by table."""

from __future__ import annotations

import json
import sqlite3

from ...errors import Conflict
from ..base import ChangeKind, Table
from .connection import SQLiteBase
from .schema import from_text as _dt
from .schema import to_text as _ts


class Dump(SQLiteBase):
    """Whole tables in key order, and loading them back (a deployment's move)."""

    @staticmethod
    def _from_row(table: Table, row: tuple) -> tuple:
        out = []
        for column, value in zip(table.columns, row, strict=True):
            if value is None:
                pass
            elif column in table.times:
                value = _dt(value)
            elif column in table.flags:
                value = bool(value)
            elif column in table.json:
                value = json.loads(value)
            elif column in table.int_lists:
                value = tuple(int(v) for v in value.split(",") if v)
            out.append(value)
        return tuple(out)

    @staticmethod
    def _to_row(table: Table, row: tuple) -> tuple:
        out = []
        for column, value in zip(table.columns, row, strict=True):
            if value is None:
                pass
            elif column in table.times:
                value = _ts(value)
            elif column in table.flags:
                value = int(value)
            elif column in table.json:
                value = json.dumps(value, sort_keys=True)
            elif column in table.int_lists:
                value = ",".join(str(v) for v in value)
            out.append(value)
        return tuple(out)

    def dump_rows(self, table: Table, after: tuple | None, limit: int) -> list[tuple]:
        key = ", ".join(table.key)
        where, params = "", ()
        if after is not None:
            where = f"WHERE ({key}) > ({', '.join('?' * len(after))})"
            params = tuple(after)
        rows = self._db.execute(
            f"SELECT {', '.join(table.columns)} FROM {table.name} {where} ORDER BY {key} LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [self._from_row(table, r) for r in rows]

    def last_key(self, table: Table) -> tuple | None:
        order = ", ".join(f"{k} DESC" for k in table.key)
        row = self._db.execute(
            f"SELECT {', '.join(table.key)} FROM {table.name} ORDER BY {order} LIMIT 1"
        ).fetchone()
        return tuple(row) if row else None

    def load_rows(self, table: Table, rows: list[tuple]) -> int:
        try:
            with self._tx() as db:
                before = db.total_changes
                db.executemany(
                    f"INSERT OR IGNORE INTO {table.name} ({', '.join(table.columns)}) "
                    f"VALUES ({', '.join('?' * len(table.columns))})",
                    [self._to_row(table, r) for r in rows],
                )
                return db.total_changes - before
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"{table.name}: {exc}") from None

    def finish_load(self) -> None:
        with self._tx() as db:  # followers drop everything they had
            self._changed(db, ChangeKind.ORG, [None])
