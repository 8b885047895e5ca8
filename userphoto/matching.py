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
