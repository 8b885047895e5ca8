"""The pure reconcile step: a directory entry and what the store holds -> what to do.

No I/O: the engine looks things up and writes; these rules decide. Kept apart so each rule
(adoption, change detection, the deletion guard's arithmetic, photo change detection) is one
function with fast unit tests (tests/directory/test_directory_reconcile.py, no LDAP server).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from ...model import Account, User
from ..entry import OWNED_KEYS, DirectoryUser, account_for

Action = Literal["add", "adopt", "update", "unchanged", "conflict"]
PhotoAction = Literal["none", "remove", "unchanged", "replace"]


@dataclass(frozen=True)
class Decision:
    """What to do with one directory entry.

    add: `user` is new; adopt: `user` is a local (or gone) user taken over by this entry;
    update: `user` is the stored user's new state; unchanged: `user` is the stored user as is;
    conflict: the address belongs to another directory entry (`problem` says which): skip.
    `returned`: the user was marked gone and is back.
    """

    action: Action
    user: User | None
    returned: bool = False
    problem: str | None = None


def directory_key(user: User) -> str:
    """The directory id a stored user was synced from (its id, unless adopted)."""
    return user.attributes.get("directory_id", user.id)


def decide(du: DirectoryUser, current: User | None, existing: User | None = None) -> Decision:
    """`current`: the user this entry was synced to before (by directory id), if any.

    `existing`: without `current`, a stored user found by the entry's id or address (it may
    have been added by another sync process, or locally before the directory was connected).
    """
    adopted = False
    if current is None and existing is not None:
        if directory_key(existing) == du.directory_id:
            current = existing  # the same directory entry
        elif existing.source != "directory" or existing.directory_gone:
            current, adopted = existing, True  # its id stays
        else:
            owner = existing.attributes.get("dn", existing.id)
            return Decision(
                "conflict", None, problem=f"{du.address} already belongs to directory entry {owner}"
            )
    if current is None:
        return Decision("add", new_user(du))
    desired = desired_user(du, current)
    if same(current, desired):
        return Decision("unchanged", current)
    return Decision("adopt" if adopted else "update", desired, returned=current.directory_gone)


def new_user(du: DirectoryUser) -> User:
    return User(
        id=du.directory_id,
        address=du.address,
        display_name=du.display_name,
        aliases=list(du.aliases),
        account=Account.DISABLED if du.disabled else Account.HD,
        source="directory",
        attributes=dict(du.attributes),
    )


def desired_user(du: DirectoryUser, current: User) -> User:
    """`current` as the directory describes it now; an admin's own settings stay."""
    attributes = {k: v for k, v in current.attributes.items() if k not in OWNED_KEYS}
    attributes.update(du.attributes)
    return replace(
        current,
        address=du.address,
        aliases=list(du.aliases),
        display_name=du.display_name,
        account=account_for(
            du.disabled, current.account, current.attributes.get("directory_disabled") == "1"
        ),
        source="directory",
        directory_gone=False,
        attributes=attributes,
    )


def same(a: User, b: User) -> bool:
    """Equal in everything the directory owns (an unchanged user is not written)."""
    return (
        a.address == b.address
        and sorted(a.aliases) == sorted(b.aliases)
        and a.display_name == b.display_name
        and a.account == b.account
        and a.source == b.source
        and a.directory_gone == b.directory_gone
        and a.attributes == b.attributes
    )


def is_fresh(
    du: DirectoryUser, index: dict[str, str], users: dict[str, User], addresses: set[str]
) -> bool:
    """Brand new in a full load: no stored user by id, directory id or any address (so it
    can be added in bulk without the adoption lookups)."""
    return (
        du.directory_id not in index
        and du.directory_id not in users
        and du.address not in addresses
        and not any(a in addresses for a in du.aliases)
    )


# --- photos -----------------------------------------------------------------------------------
def raw_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def photo_action(raw: bytes | None, stored_raw_hash: str | None) -> PhotoAction:
    """`stored_raw_hash`: the raw hash of the directory-thumbnail slot, None when empty.

    Same raw bytes as stored -> nothing to do (including what our own write-back put there,
    so there is no loop); a changed photo is re-encoded; a removed one empties the slot.
    """
    if raw is None:
        return "none" if stored_raw_hash is None else "remove"
    if stored_raw_hash is not None and stored_raw_hash == raw_hash(raw):
        return "unchanged"
    return "replace"


# --- deletions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gone:
    """Users to mark gone, or why none may be (`refused`: the deletion guard's message)."""

    users: list[User]
    managed: int
    refused: str | None = None


def managed(users: Iterable[User]) -> list[User]:
    """Users the directory currently provides (local and already-gone users do not count)."""
    return [u for u in users if u.source == "directory" and not u.directory_gone]


def missing_from_read(
    users: Iterable[User], seen: set[str], delete_guard: float, force: bool
) -> Gone:
    """After a complete read: every managed user whose id the read did not see."""
    current = managed(users)
    return guard([u for u in current if u.id not in seen], len(current), delete_guard, force)


def deleted(users: Iterable[User], directory_ids: Iterable[str], delete_guard: float) -> Gone:
    """Deletions the directory reported (DirSync): exact, yet through the same guard."""
    current = managed(users)
    by_id = {directory_key(u): u for u in current}
    missing = [by_id[d] for d in dict.fromkeys(directory_ids) if d in by_id]
    return guard(missing, len(current), delete_guard, False)


def as_gone(user: User) -> User:
    return replace(user, directory_gone=True)


def guard(missing: list[User], managed_count: int, delete_guard: float, force: bool) -> Gone:
    """Never more than `delete_guard` (a share) of the directory's users at once, unless
    forced: a wrong base_dn or filter looks exactly like a mass deletion."""
    share = len(missing) / max(1, managed_count)
    if missing and share > delete_guard and not force:
        return Gone(
            [],
            managed_count,
            refused=(
                f"refused to mark {len(missing)} of {managed_count} directory users gone "
                f"({share:.0%}, more than delete_guard {delete_guard:.0%}). "
                "If the directory really lost them, run `userphoto sync --full --force`; if "
                "not, check base_dn and user_filter (a wrong filter looks like mass deletion)."
            ),
        )
    return Gone(missing, managed_count)
