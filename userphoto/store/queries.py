"""SQL text both stores share: the user search and the photo status listing.

Both select users as `u`. Each store passes its own LIKE (`LIKE ?` in SQLite; PostgreSQL
adds `ESCAPE ''`, so a backslash is an ordinary character there too), the rest is one text.
"""

from __future__ import annotations

from .base import StatusFilter, StatusQuery
from .rows import USER_COLUMNS
from .status_sql import STATUS_FILTERS

# One row per user with their photo facts (`rows.status`): the saved photo, a pending
# preview, the directory thumbnail. `photos_current` and the thumbnails' primary key serve
# the joins, so a page costs one indexed walk of `users` by address.
STATUS_JOINS = (
    "LEFT JOIN photos p ON p.user_id = u.id AND p.state = 'saved' "
    "LEFT JOIN directory_thumbnails d ON d.user_id = u.id"
)
STATUS_SELECT = (
    "SELECT "
    + ", ".join(f"u.{c.strip()}" for c in USER_COLUMNS.split(","))
    + ", p.sizes AS photo_sizes, p.created AS photo_created, "
    "EXISTS (SELECT 1 FROM photos v WHERE v.user_id = u.id AND v.state = 'preview') "
    "AS has_preview, "
    "d.user_id IS NOT NULL AS has_directory, d.jpeg IS NOT NULL AS directory_usable, "
    "d.problem AS directory_problem, d.seen AS directory_seen, "
    "d.written_by_us AS directory_written_by_us, p.crop_reason AS crop_reason "
    f"FROM users u {STATUS_JOINS}"
)


def search(text: str, like: str) -> tuple[str, tuple[str, ...]]:
    """The condition on `u` for a free-text search over address, aliases and name, and its
    parameters; ("", ()) when there is nothing to search for. `like`: the store's LIKE with
    its parameter mark. LIKE's wildcards in the text are dropped, so they match themselves
    nowhere and everything nowhere."""
    text = text.strip().lower().replace("%", "").replace("_", "")
    if not text:
        return "", ()
    pattern = f"%{text}%"
    return (
        f"(u.address {like} OR lower(u.display_name) {like} OR u.id IN "
        f"(SELECT user_id FROM aliases WHERE address {like}))",
        (pattern, pattern, pattern),
    )


def where(text: str, like: str) -> tuple[str, tuple[str, ...]]:
    """`search` as a WHERE clause (or nothing)."""
    condition, params = search(text, like)
    return (f"WHERE {condition}" if condition else ""), params


def status_where(query: StatusQuery | None, like: str) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause of a status page: its search and its filter."""
    query = query or StatusQuery()
    condition, params = search(query.search, like)
    clauses = [condition] if condition else []
    clauses.extend(STATUS_FILTERS[StatusFilter(query.filter)])
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
