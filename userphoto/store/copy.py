"""Moving a whole deployment from one store to another (`userphoto store copy`).

Table by table in key order, one transaction per batch, so an interrupted copy resumes after
the last batch the target holds and a repeated copy moves nothing. Afterwards both stores
are read again in full and every table's row count and SHA-256 over its rows (photo and
rendition bytes included) must match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import Conflict, UserPhotoError
from .base import TABLES, Store, Table

ADVICE = (
    "The source changed during the copy or the target held other data; stop writers "
    "(serve, sync) and copy into an empty database."
)


class CopyMismatch(UserPhotoError):
    code = "copy_mismatch"
    status = 409


@dataclass
class TableCopy:
    name: str
    moved: int = 0  # rows inserted by this run
    rows: int = 0  # rows in the source (and, once verified, in the target)
    digest: str = ""


@dataclass
class CopyReport:
    tables: list[TableCopy] = field(default_factory=list)

    @property
    def moved(self) -> int:
        return sum(t.moved for t in self.tables)


def _canonical(value: Any) -> Any:
    """One spelling per value, whichever store it came from."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    return value


def _key(table: Table, row: tuple) -> tuple:
    return tuple(row[table.columns.index(k)] for k in table.key)


def table_digest(store: Store, table: Table, batch: int = 1000) -> tuple[int, str]:
    """(rows, sha256 over every row in key order) of one table."""
    digest = hashlib.sha256()
    count, after = 0, None
    while rows := store.dump_rows(table, after, batch):
        for row in rows:
            digest.update(json.dumps(_canonical(row), sort_keys=True, default=str).encode())
            digest.update(b"\n")
        count += len(rows)
        after = _key(table, rows[-1])
    return count, digest.hexdigest()


def copy_store(
    source: Store,
    target: Store,
    *,
    batch: int = 500,
    progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy every table from `source` to `target`, then verify; raises CopyMismatch."""
    report = CopyReport()
    for table in TABLES:
        entry = TableCopy(table.name)
        report.tables.append(entry)
        # Resume: rows at or below the target's highest key were copied by an earlier run
        # (each batch commits whole). Loading skips existing keys, so overlap is harmless.
        after = target.last_key(table)
        while rows := source.dump_rows(table, after, batch):
            try:
                entry.moved += target.load_rows(table, rows)
            except Conflict as exc:
                raise CopyMismatch(f"The target refused rows ({exc}). {ADVICE}") from None
            after = _key(table, rows[-1])
            if progress:
                progress(table.name, entry.moved)
    target.finish_load()
    problems = []
    for table, entry in zip(TABLES, report.tables, strict=True):
        entry.rows, entry.digest = table_digest(source, table)
        got, digest = table_digest(target, table)
        if (got, digest) != (entry.rows, entry.digest):
            problems.append(f"{table.name} ({entry.rows} rows in the source, {got} in the target)")
    if problems:
        raise CopyMismatch(
            "The copy differs from the source in: " + ", ".join(problems) + ". " + ADVICE
        )
    return report
