"""Match photo file names to users by a pattern over user attributes.

A pattern such as `{first}.{last}` or `{employeeID}` is rendered for every user into the
file names (without extension) that would name them; a file then matches the users whose
renderings equal its name. Comparison folds case and accents (`José.García` = `jose.garcia`),
and multi-valued fields (every address, alias included) produce one rendering per value.

Fields: `mail` (primary address and aliases), `local` (their part before `@`), `first`,
`last`, `name` (display name), `id`, and any directory attribute by its name
(`employeeID`, `sAMAccountName`, ... case-insensitive).
"""

from __future__ import annotations

import csv
import itertools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from .model import User

DEFAULT_PATTERN = "{mail}"
BUILTIN_FIELDS = ("mail", "local", "first", "last", "name", "id")

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def fold(text: str) -> str:
    """Case- and accent-insensitive form for comparing names."""
    decomposed = unicodedata.normalize("NFKD", text.strip())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def split_name(display_name: str) -> tuple[list[str], list[str]]:
    """First and last name candidates from a display name: "Ada Lovelace", "Lovelace, Ada".

    A multi-word surname gives several candidates ("van Rossum" -> "rossum", "van rossum",
    "vanrossum"), so `{first}.{last}` matches however the files were named.
    """
    name = " ".join(display_name.split())
    if "," in name:  # the AD habit of "Last, First"
        last, _, first = (p.strip() for p in name.partition(","))
        words = [*first.split(), *last.split()]
        split_at = len(first.split())
    else:
        words = name.split()
        split_at = 1
    if not words:
        return [], []
    if len(words) == 1:
        return [words[0]], []
    firsts = [" ".join(words[:split_at])] if split_at else [words[0]]
    rest = words[split_at:] if split_at < len(words) else words[-1:]
    lasts = list(dict.fromkeys([rest[-1], " ".join(rest), "".join(rest)]))
    return firsts, lasts


def _attribute(user: User, name: str) -> str | None:
    for key, value in user.attributes.items():
        if key.lower() == name and value:
            return str(value)
    return None


def field_values(user: User, name: str) -> list[str]:
    """Every value of the (lower-cased) field `name` for `user`; empty when it has none."""
    if name == "mail":
        return user.addresses
    if name == "local":
        return [a.partition("@")[0] for a in user.addresses]
    if name == "name":
        return [user.display_name]
    if name == "id":
        return [user.id]
    if name in ("first", "last"):
        given = _attribute(user, "givenname" if name == "first" else "sn")
        if given:
            return [given]
        firsts, lasts = split_name(user.display_name)
        return firsts if name == "first" else lasts
    value = _attribute(user, name)
    return [value] if value else []


@dataclass(frozen=True)
class Pattern:
    """A parsed file-name pattern: literal text and field names, alternating."""

    text: str
    literals: tuple[str, ...]  # len(fields) + 1 pieces around the fields
    fields: tuple[str, ...]  # lower-cased

    @classmethod
    def parse(cls, text: str) -> Pattern:
        fields = tuple(f.strip().lower() for f in _PLACEHOLDER.findall(text))
        literals = tuple(_PLACEHOLDER.split(text)[::2])
        if not fields:
            raise ValueError(
                f"The pattern {text!r} has no {{field}}; e.g. {{mail}}, {{first}}.{{last}}, "
                "{employeeID}."
            )
        if any(not f for f in fields) or any("{" in lit or "}" in lit for lit in literals):
            raise ValueError(f"The pattern {text!r} has an unbalanced or empty {{}}.")
        return cls(text, literals, fields)

    def render(self, user: User) -> set[str]:
        """Every folded file name this pattern gives for `user`."""
        values = [field_values(user, f) for f in self.fields]
        names: set[str] = set()
        for combo in itertools.product(*values):
            parts = [self.literals[0]]
            for value, literal in zip(combo, self.literals[1:], strict=True):
                parts += [value, literal]
            names.add(fold("".join(parts)))
        return names


class Matcher:
    """An index from folded file name to the users it names."""

    def __init__(self, pattern: Pattern, users: Iterable[User]):
        self.pattern = pattern
        self.describe = pattern.text
        self.users: dict[str, User] = {}
        self._index: dict[str, set[str]] = defaultdict(set)
        attributes: set[str] = set()
        for user in users:
            self.users[user.id] = user
            attributes.update(k.lower() for k in user.attributes)
            for name in pattern.render(user):
                self._index[name].add(user.id)
        unknown = [f for f in pattern.fields if f not in BUILTIN_FIELDS and f not in attributes]
        if unknown and self.users:
            known = ", ".join([*BUILTIN_FIELDS, *sorted(attributes)])
            raise ValueError(
                f"No user has the field {{{unknown[0]}}} used in {pattern.text!r}. "
                f"Known fields: {known}."
            )

    def match(self, stem: str) -> list[User]:
        """The users a file name (without extension) names; several means ambiguous."""
        ids = self._index.get(fold(stem), set())
        return sorted((self.users[i] for i in ids), key=lambda u: u.address)

    def unmatched(self, stem: str) -> str:
        """Why a file is unmatched, for its report line."""
        return f"no user matches {stem!r} with {self.pattern.text}"


# --- which pattern would have matched: the hint on unmatched files ---------------------------

# Tried in this order; the first ones are the common ways photo folders are named.
CANDIDATES = (
    "{mail}",
    "{local}",
    "{name}",
    "{first}.{last}",
    "{first} {last}",
    "{first}_{last}",
    "{last}, {first}",
    "{last}_{first}",
    "{id}",
)
ATTRIBUTE_CANDIDATES = ("employeeid", "employeenumber", "samaccountname", "uid", "cn")


@dataclass(frozen=True)
class Suggestion:
    pattern: str
    matches: int  # how many of the unmatched names it matches to exactly one user


def suggest_patterns(stems: Iterable[str], matcher: Matcher, limit: int = 2) -> list[Suggestion]:
    """Other patterns that would match the names `matcher` left unmatched, best first.

    Each candidate counts only the names it matches to exactly one user (an ambiguous match
    imports nothing either). Rather than rendering every candidate for every user, each
    field's values are indexed once and each name is split by the candidate's literals, so
    the cost is about one Matcher's, however many candidates there are.
    """
    wanted = [fold(s) for s in stems]
    if not wanted or not matcher.users:
        return []
    users = matcher.users.values()
    attributes = {k.lower() for u in users for k in u.attributes}
    texts = [*CANDIDATES, *(f"{{{a}}}" for a in ATTRIBUTE_CANDIDATES if a in attributes)]
    patterns = [Pattern.parse(t) for t in texts]
    fields = {f for p in patterns for f in p.fields}
    index: dict[str, dict[str, set[str]]] = {f: defaultdict(set) for f in fields}
    for user in users:
        for f in fields:
            for value in field_values(user, f):
                index[f][fold(value)].add(user.id)
    found: list[Suggestion] = []
    for pattern in patterns:
        if (pattern.fields, pattern.literals) == (matcher.pattern.fields, matcher.pattern.literals):
            continue  # the pattern in use
        # Folded as names are, but keeping spaces (fold strips them at the ends).
        literals = ["".join(fold(c) if c.strip() else c for c in lit) for lit in pattern.literals]
        count = 0
        for name in wanted:
            ids: set[str] = set()
            for values in _splits(name, literals):
                found_ids = set.intersection(
                    *(index[f].get(v, set()) for f, v in zip(pattern.fields, values, strict=True))
                )
                ids |= found_ids
            count += len(ids) == 1
        if count:
            found.append(Suggestion(pattern.text, count))
    found.sort(key=lambda s: -s.matches)  # stable: ties keep the order above
    return found[:limit]


def _splits(name: str, literals: list[str]) -> Iterable[tuple[str, ...]]:
    """Every way `name` reads as literals[0] v1 literals[1] v2 ... with non-empty values."""
    first, last = literals[0], literals[-1]
    if not name.startswith(first) or not name.endswith(last) or len(name) < len(first + last):
        return
    body = name[len(first) : len(name) - len(last)]
    middle = literals[1:-1]

    def walk(rest: str, seps: list[str]) -> Iterable[tuple[str, ...]]:
        if not seps:
            if rest:
                yield (rest,)
            return
        sep, start = seps[0], 1
        while (at := rest.find(sep, start)) != -1:
            for tail in walk(rest[at + len(sep) :], seps[1:]):
                yield (rest[:at], *tail)
            start = at + 1

    yield from walk(body, middle)


# --- a mapping file: file name -> user, as AD Photo Editor and CodeTwo take ------------------


class MapError(ValueError):
    """A mapping file that cannot be used as it is: the message names the line(s)."""


@dataclass(frozen=True)
class MapRow:
    line: int  # 1-based, the header being line 1
    file: str  # as written in the map
    key: str  # an address, alias, user id or employee id


def _delimiter(header: str) -> str:
    """Comma, semicolon (Excel in many locales) or tab: whichever the header uses most."""
    return max(",;\t", key=header.count) if any(d in header for d in ",;\t") else ","


def parse_map(text: str) -> list[MapRow]:
    """The rows of a mapping file: a header row, then `file name, user` per line.

    The user is a mail address, alias, user id or employee id. A file name may carry a
    folder and an extension; rows are matched on the name without either. Raises MapError
    naming every bad line (at most 10): a missing column, an empty cell, the same file
    mapped to two different users.
    """
    text = text.removeprefix("\ufeff")  # Excel's byte-order mark
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise MapError("The mapping file is empty; expected a header row, then file,user rows.")
    reader = csv.reader(lines, delimiter=_delimiter(lines[0]))
    next(reader)  # the header row: its names are free (File,Mail / Photo;EmployeeID ...)
    rows: list[MapRow] = []
    problems: list[str] = []
    seen: dict[str, MapRow] = {}
    for number, cells in enumerate(reader, start=2):
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue  # blank lines are fine
        if len(cells) < 2 or not cells[0] or not cells[1]:
            problems.append(f"line {number}: expected a file name and a user, got {cells!r}")
            continue
        row = MapRow(number, cells[0], cells[1])
        stem = map_stem(row.file)
        earlier = seen.get(stem)
        if earlier is not None and fold(earlier.key) != fold(row.key):
            problems.append(
                f"line {number}: {row.file!r} is mapped to {row.key!r} here and to "
                f"{earlier.key!r} on line {earlier.line}"
            )
            continue
        seen[stem] = row
        rows.append(row)
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise MapError("The mapping file has bad rows: " + "; ".join(problems[:10]) + more)
    if not rows:
        raise MapError("The mapping file has a header row but no file,user rows.")
    return rows


def map_stem(file: str) -> str:
    """A map's file name as import compares it: no folder, no extension, folded."""
    name = file.replace("\\", "/").rpartition("/")[2]
    stem, dot, _ext = name.rpartition(".")
    return fold(stem if dot and stem else name)


class MapMatcher:
    """Matches files by a mapping file instead of a pattern: the same interface as Matcher."""

    def __init__(self, rows: list[MapRow], users: Iterable[User], source: str = "the map"):
        self.describe = source
        self.users: dict[str, User] = {}
        keys: dict[str, set[str]] = defaultdict(set)
        for user in users:
            self.users[user.id] = user
            values = [*user.addresses, user.id]
            employee = _attribute(user, "employeeid")
            if employee:
                values.append(employee)
            for value in values:
                keys[fold(value)].add(user.id)
        self.rows = {map_stem(r.file): r for r in rows}
        self._keys = keys

    def row(self, stem: str) -> MapRow | None:
        return self.rows.get(fold(stem))

    def match(self, stem: str) -> list[User]:
        row = self.row(stem)
        if row is None:
            return []
        ids = self._keys.get(fold(row.key), set())
        return sorted((self.users[i] for i in ids), key=lambda u: u.address)

    def unmatched(self, stem: str) -> str:
        """Why a file is unmatched, for its report line."""
        row = self.row(stem)
        if row is None:
            return f"{stem!r} is not in {self.describe}"
        return f"{self.describe} line {row.line} names {row.key!r}, who is no user here"


FileMatcher = Matcher | MapMatcher  # what import matches file names with
