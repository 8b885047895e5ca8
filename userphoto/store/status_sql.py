"""The admin listing's filters as SQL, shared by the SQLite and PostgreSQL stores.

Both stores select users as `u`, their saved photo as `p` and their directory thumbnail as
`d` (see each store's status query), and both have an SQL function `usable_url` that is
`resolve.usable_url` itself (SQLite: the Python function registered on every connection;
PostgreSQL: the same rule in SQL, migration 3), so the listing and the serving agree.
"""

from __future__ import annotations

from . import facts_sql
from .base import StatusFilter


class _Filters(dict[StatusFilter, tuple[str, ...]]):
    """The Problems filter is derived on first use (a few thousand rule calls), not at import:
    every command imports the store, few list problems."""

    def __missing__(self, key: StatusFilter) -> tuple[str, ...]:
        if key is not StatusFilter.PROBLEMS:
            raise KeyError(key)
        self[key] = (facts_sql.problems_sql(),)
        return self[key]


STATUS_FILTERS: dict[StatusFilter, tuple[str, ...]] = _Filters(
    {
        StatusFilter.ALL: (),
        StatusFilter.NO_PHOTO: ("p.id IS NULL", "d.jpeg IS NULL"),
        StatusFilter.DIRECTORY_ONLY: (
            "p.id IS NULL",
            "d.jpeg IS NOT NULL",
            "u.removal_record IS NULL",
        ),
        # StatusFilter.PROBLEMS: the users with a finding the catalogue marks `problem`
        # (findings.py), by the same rule the doctor and each listing row apply: derived from
        # it (facts_sql.problems_sql), never written by hand here.
    }
)
