"""The pure reconcile step: entry + stored state -> decision, and the deletion guard (no LDAP)."""

from __future__ import annotations

from dataclasses import replace

from userphoto.directory.entry import DirectoryUser
from userphoto.directory.sync import reconcile
from userphoto.model import Account, User


def entry(n: int = 1, **changes: object) -> DirectoryUser:
    du = DirectoryUser(
        directory_id=f"uuid-{n}",
        dn=f"uid=u{n},ou=people,dc=example,dc=org",
        address=f"u{n}@example.org",
        aliases=(f"alias{n}@example.org",),
        display_name=f"User {n}",
        disabled=False,
        attributes={"dn": f"uid=u{n},ou=people,dc=example,dc=org", "directory_id": f"uuid-{n}"},
        photo=b"raw photo",
        changed="20261130120000Z",
        usn=None,
    )
    return replace(du, **changes)  # type: ignore[arg-type]


def synced(n: int = 1) -> User:
    """The user an earlier sync made of entry(n)."""
    decision = reconcile.decide(entry(n), None)
    assert decision.user is not None
    return decision.user


def test_a_new_entry_is_added_as_a_directory_user() -> None:
    decision = reconcile.decide(entry(disabled=True), None)
    assert decision.action == "add" and decision.user is not None
    user = decision.user
    assert (user.id, user.address, user.aliases) == (
        "uuid-1",
        "u1@example.org",
        ["alias1@example.org"],
    )
    assert user.source == "directory" and user.account is Account.DISABLED


def test_unchanged_entry_means_no_write_and_alias_order_does_not_matter() -> None:
    current = replace(synced(), aliases=["alias1@example.org"])
    assert reconcile.decide(entry(), current).action == "unchanged"
    two = entry(aliases=("b@example.org", "a@example.org"))
    stored = replace(synced(), aliases=["a@example.org", "b@example.org"])
    assert reconcile.decide(two, stored).action == "unchanged"


def test_a_changed_field_is_an_update_keeping_the_admins_own_settings() -> None:
    current = replace(
        synced(), account=Account.SD_ONLY, attributes={**synced().attributes, "note": "admin's"}
    )
    decision = reconcile.decide(entry(display_name="Renamed"), current)
    assert decision.action == "update" and decision.user is not None
    assert decision.user.display_name == "Renamed"
    assert decision.user.account is Account.SD_ONLY  # an admin's choice stays
    assert decision.user.attributes["note"] == "admin's"  # not a key the directory owns
    assert not decision.returned


def test_a_gone_user_that_reappears_is_returned() -> None:
    decision = reconcile.decide(entry(), reconcile.as_gone(synced()))
    assert decision.action == "update" and decision.returned
    assert decision.user is not None and not decision.user.directory_gone


def test_a_local_user_with_the_address_is_adopted_keeping_its_id() -> None:
    local = User(id="local-7", address="u1@example.org", display_name="Before the directory")
    decision = reconcile.decide(entry(), None, local)
    assert decision.action == "adopt" and decision.user is not None
    assert decision.user.id == "local-7" and decision.user.source == "directory"


def test_an_entry_found_by_its_own_directory_id_is_the_same_user() -> None:
    # Added by another sync process: found in the store, not in this engine's index.
    assert reconcile.decide(entry(), None, synced()).action == "unchanged"


def test_an_address_held_by_another_directory_entry_is_a_conflict() -> None:
    other = replace(synced(2), address="u1@example.org")
    decision = reconcile.decide(entry(), None, other)
    assert decision.action == "conflict" and decision.user is None
    assert "u1@example.org already belongs to directory entry uid=u2" in (decision.problem or "")
    # ...but one whose entry is gone from the directory may be taken over.
    assert reconcile.decide(entry(), None, reconcile.as_gone(other)).action == "adopt"


def test_directory_disabled_then_re_enabled() -> None:
    disabled = reconcile.decide(entry(disabled=True), synced())
    assert disabled.user is not None and disabled.user.account is Account.DISABLED
    marked = replace(
        disabled.user, attributes={**disabled.user.attributes, "directory_disabled": "1"}
    )
    back = reconcile.decide(entry(), marked)
    assert back.user is not None and back.user.account is Account.HD


def test_is_fresh_only_without_any_match() -> None:
    du = entry()
    assert reconcile.is_fresh(du, {}, {}, set())
    assert not reconcile.is_fresh(du, {"uuid-1": "x"}, {}, set())
    assert not reconcile.is_fresh(du, {}, {"uuid-1": synced()}, set())
    assert not reconcile.is_fresh(du, {}, {}, {"u1@example.org"})
    assert not reconcile.is_fresh(du, {}, {}, {"alias1@example.org"})


def test_photo_actions_by_raw_hash() -> None:
    stored = reconcile.raw_hash(b"raw photo")
    assert reconcile.photo_action(b"raw photo", stored) == "unchanged"
    assert reconcile.photo_action(b"other photo", stored) == "replace"
    assert reconcile.photo_action(b"raw photo", None) == "replace"
    assert reconcile.photo_action(None, stored) == "remove"
    assert reconcile.photo_action(None, None) == "none"


def test_deletion_guard_arithmetic() -> None:
    users = [synced(n) for n in range(10)]
    everyone = {u.id for u in users}
    # 2 of 10 missing is 20%: at the limit, allowed.
    gone = reconcile.missing_from_read(users, everyone - {"uuid-0", "uuid-1"}, 0.2, False)
    assert gone.refused is None and [u.id for u in gone.users] == ["uuid-0", "uuid-1"]
    assert gone.managed == 10
    # 3 of 10 is over: refused with the numbers and the way out, nobody marked.
    refused = reconcile.missing_from_read(
        users, everyone - {"uuid-0", "uuid-1", "uuid-2"}, 0.2, False
    )
    assert refused.users == [] and refused.refused is not None
    assert "refused to mark 3 of 10 directory users gone (30%" in refused.refused
    assert "sync --full --force" in refused.refused
    forced = reconcile.missing_from_read(users, set(), 0.2, True)
    assert len(forced.users) == 10 and forced.refused is None
    # Nothing missing: never refused, even with an empty directory.
    assert reconcile.missing_from_read([], set(), 0.0, False) == reconcile.Gone([], 0)


def test_only_directory_users_still_present_count_for_the_guard() -> None:
    local = User(id="local", address="l@example.org", display_name="Local")
    already = reconcile.as_gone(synced(9))
    users = [local, already, synced(1), synced(2)]
    assert [u.id for u in reconcile.managed(users)] == ["uuid-1", "uuid-2"]
    gone = reconcile.missing_from_read(users, {"uuid-1"}, 0.5, False)
    assert [u.id for u in gone.users] == ["uuid-2"] and gone.managed == 2


def test_reported_deletions_match_by_directory_id_once_each() -> None:
    adopted = replace(synced(3), id="local-3")  # adopted: its id is not the directory id
    users = [synced(1), synced(2), adopted, synced(4)]
    gone = reconcile.deleted(users, ["uuid-3", "uuid-3", "unknown"], 0.5)
    assert [u.id for u in gone.users] == ["local-3"] and gone.managed == 4
    assert reconcile.deleted(users, ["uuid-1", "uuid-2", "uuid-3"], 0.5).refused is not None
