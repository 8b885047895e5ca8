"""Each user's `findings.UserFacts` as SQL, for both stores: one small integer per user.

The facts are computed over users `u` ⟕ their saved photo `p` ⟕ their directory thumbnail `d`
(the joins of each store's status query) and packed into one integer, the facts key (mixed
radix: each field's value index times its place value). The doctor groups users by it
(`Store.photo_facts`) and applies the Python rule once per group; the admin listing's
"Problems" filter is the set of keys whose facts the same rule calls a problem, computed here
from `findings.is_problem` over every possible facts value, so it cannot mean anything else.

Most facts read the same on SQLite and PostgreSQL (a stored flag is a condition in both, and
both have `usable_url`, see status_sql.py); only the saved photo's sizes are stored
differently (a comma-separated text in SQLite, an integer array in PostgreSQL), so the
doctor's query reads them per store, and the Problems filter, one text for both, needs only
facts with the same SQL in both (`problems_sql` checks it).
"""

from __future__ import annotations

import functools
import math
from dataclasses import fields
from enum import StrEnum
from typing import Any

from ..findings import UserFacts, fact_values, is_problem
from ..model import GUESSES, MEETING_SIZE
from .base import FactsGroup

__all__ = [
    "POSTGRES_SETTINGS",
    "FactsGroup",
    "facts_of_key",
    "groups",
    "groups_sql",
    "key_of",
    "key_sql",
    "problems_sql",
]

# The same joins as both stores' status queries (users u, saved photo p, directory slot d).
JOINS = (
    "LEFT JOIN photos p ON p.user_id = u.id AND p.state = 'saved' "
    "LEFT JOIN directory_thumbnails d ON d.user_id = u.id"
)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# A flag: an SQL condition (NULL counts as false). A choice: the column holding its value.
NEUTRAL: dict[str, str] = {
    "directory_gone": "u.directory_gone",
    "directory_problem": "d.problem <> ''",
    "picture": "u.picture",
    "url_usable": "(u.picture <> 'url' OR usable_url(u.picture_url))",
    "account": "u.account",
    "has_preview": "u.id IN (SELECT user_id FROM photos WHERE state = 'preview')",
    # SQLite keeps sizes as "48,64,...", PostgreSQL as an array ("{48,64,...}" as text).
    "has_sizes": "CAST(p.sizes AS TEXT) NOT IN ('', '{}')",
    "crop_guess": "p.crop_reason IN (" + ", ".join(_quoted(g.value) for g in GUESSES) + ")",
    "directory_usable": "d.jpeg IS NOT NULL",
    "directory_ours": "d.written_by_us",
    "removal_record": "u.removal_record IS NOT NULL",
}
# The same facts, faster where the store's own types allow (the doctor reads every user).
DIALECT: dict[str, dict[str, str]] = {
    "sqlite": {
        "has_sizes": "p.sizes <> ''",
        "below_meeting_size": "(SELECT max(CAST(value AS INTEGER)) FROM json_each('[' || "
        f"p.sizes || ']')) < {MEETING_SIZE}",
    },
    "postgresql": {
        "has_sizes": "cardinality(p.sizes) > 0",
        "below_meeting_size": f"(cardinality(p.sizes) > 0 AND {MEETING_SIZE} > ALL (p.sizes))",
    },
}
NAMES: tuple[str, ...] = tuple(f.name for f in fields(UserFacts))
COMBINATIONS = math.prod(len(fact_values(n)) for n in NAMES)  # facts keys: 0 .. this - 1


@functools.cache
def _places(names: tuple[str, ...]) -> dict[str, int]:
    places, place = {}, 1
    for name in names:
        places[name] = place
        place *= len(fact_values(name))
    return places


def key_of(facts: UserFacts, names: tuple[str, ...] = NAMES) -> int:
    """The facts key of `facts` (over the fields `names` only)."""
    places = _places(names)
    return sum(fact_values(n).index(getattr(facts, n)) * places[n] for n in names)


def facts_of_key(key: int) -> UserFacts:
    """The facts a (full) facts key stands for."""
    values: dict[str, Any] = {}
    for name in NAMES:
        choices = fact_values(name)
        key, index = divmod(key, len(choices))
        values[name] = choices[index]
    return UserFacts(**values)


def key_sql(dialect: str, names: tuple[str, ...] = NAMES) -> str:
    """The SQL expression of the facts key over `names`, for `dialect` (sqlite, postgresql)."""
    sql = NEUTRAL | DIALECT.get(dialect, {})
    places = _places(names)
    terms = []
    for name in names:
        choices, place = fact_values(name), places[name]
        if isinstance(choices[0], StrEnum):
            whens = " ".join(
                f"WHEN {_quoted(v.value)} THEN {i * place}" for i, v in enumerate(choices)
            )
            terms.append(f"CASE {sql[name]} {whens} END")
        else:
            terms.append(f"CASE WHEN {sql[name]} THEN {place} ELSE 0 END")
    return "(" + " + ".join(terms) + ")"


def _deciding(answers: list[bool]) -> tuple[str, ...]:
    """The fields a rule depends on, from its answer for every full facts key: a field decides
    when changing its value alone ever changes the answer."""
    places = _places(NAMES)
    out = []
    for name in NAMES:
        place, radix = places[name], len(fact_values(name))
        if any(
            answers[key] != answers[key - (key // place % radix) * place]
            for key in range(len(answers))
        ):
            out.append(name)
    return tuple(out)


def problems_sql() -> str:
    """The Problems filter as SQL, derived from the catalogue and the rule as they are now:
    the keys, over the facts that decide it (the others cannot change the answer), whose
    facts `findings.is_problem` says yes to."""
    every = [facts_of_key(key) for key in range(COMBINATIONS)]
    answers = [is_problem(f) for f in every]
    names = _deciding(answers)
    unknown = [n for n in names if n not in NEUTRAL]
    if unknown:  # the one filter text serves both stores
        raise RuntimeError(f"the Problems filter needs facts with no neutral SQL: {unknown}")
    keys = sorted({key_of(f, names) for f, yes in zip(every, answers, strict=True) if yes})
    return f"{key_sql('', names)} IN ({', '.join(map(str, keys))})"


def groups_sql(dialect: str, placeholder: str) -> str:
    """Every user's facts key, counted per key, with the first addresses of each key (as many
    as the one parameter says): rows (key, users, address) in key and address order. One
    pass over the joined tables and one sort of (key, address); no per-user round trips."""
    return (
        "SELECT k, n, address FROM (SELECT k, address, count(*) OVER (PARTITION BY k) AS n, "
        "row_number() OVER (PARTITION BY k ORDER BY address) AS r FROM "
        f"(SELECT u.address, {key_sql(dialect)} AS k FROM users u {JOINS}) f) g "
        f"WHERE r <= {placeholder} ORDER BY k, address"
    )


# Around the doctor's query on PostgreSQL (SET LOCAL: this transaction only): the sort of
# (key, address) in memory, not spilled to disk (about 100 bytes a user), and no JIT
# compilation, which cost more than it saved (1,000,000 users: 16.7 s with it, 13.0 s without,
# on the loaded 2-core machine).
POSTGRES_SETTINGS = ("SET LOCAL work_mem = '256MB'", "SET LOCAL jit = off")


def groups(rows: list[tuple[int, int, str]]) -> list[FactsGroup]:
    """`groups_sql`'s rows as one FactsGroup per facts key."""
    out: list[FactsGroup] = []
    key, users, first = None, 0, []
    for k, n, address in [*rows, (None, 0, "")]:
        if k != key and key is not None:
            out.append(FactsGroup(facts_of_key(key), users, tuple(first)))
            first = []
        key, users = k, n
        first.append(address)
    return out
