"""The admin listing's filters as SQL, shared by the SQLite and PostgreSQL stores.

Both stores select users as `u`, their saved photo as `p` and their directory thumbnail as
`d` (see each store's status query), and both have an SQL function `usable_url` that is
`resolve.usable_url` itself (SQLite: the Python function registered on every connection;
PostgreSQL: the same rule in SQL, migration 3), so the listing and the serving agree.
"""

from __future__ import annotations

from ..findings import PROBLEM_CODES
from .base import StatusFilter

# The admin listing's "Problems" filter is the catalogue's problem findings (findings.py);
# each needs its SQL here.
FINDING_SQL: dict[str, str] = {
    "directory_thumbnail_problem": (
        "(d.problem IS NOT NULL OR (d.jpeg IS NULL AND d.user_id IS NOT NULL))"
    ),
    "account_unavailable": "u.account IN ('absent', 'disabled')",
    "removal_record": "(u.removal_record IS NOT NULL AND p.id IS NULL AND d.jpeg IS NOT NULL)",
    "url_missing": "(u.picture = 'url' AND NOT usable_url(u.picture_url))",
}
STATUS_FILTERS: dict[StatusFilter, tuple[str, ...]] = {
    StatusFilter.ALL: (),
    StatusFilter.NO_PHOTO: ("p.id IS NULL", "d.jpeg IS NULL"),
    StatusFilter.DIRECTORY_ONLY: ("p.id IS NULL", "d.jpeg IS NOT NULL", "u.removal_record IS NULL"),
    StatusFilter.PROBLEMS: ("(" + " OR ".join(FINDING_SQL[c] for c in PROBLEM_CODES) + ")",),
}
