"""The store additions bulk directory sync relies on: add_users and batch(), on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from userphoto.errors import Conflict
from userphoto.model import AuditEntry, User
from userphoto.store import ChangeKind, Store, open_store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def person(i: int, *aliases: str) -> User:
    return User(
        id=f"id{i}",
        address=f"p{i}@example.org",
        display_name=f"P {i}",
        aliases=list(aliases),
        source="directory",
        attributes={"dn": f"uid=p{i}"},
    )


def changed_users(store: Store, since: int) -> set[str | None]:
    """Users named by the changes after `since` (a store may describe them coarser, as ORG)."""
    changes = store.changes_since(since)
    assert changes and all(c.seq > since for c in changes)
    return {c.user_id for c in changes if c.kind is not ChangeKind.ORG}


def test_add_users_all_or_nothing(store: Store) -> None:
    store.add_user(person(1))
    added = store.add_users([person(2, "two@example.org"), person(3)])
    assert [u.id for u in added] == ["id2", "id3"]
    assert store.find_user("two@example.org").id == "id2"  # type: ignore[union-attr]
    before = store.latest_seq()
    with pytest.raises(Conflict):
        store.add_users([person(4), person(5, "p1@example.org")])  # alias taken by p1
    with pytest.raises(Conflict):
        store.add_users([person(6), person(6)])  # twice in one batch
    assert store.find_user("p4@example.org") is None  # nothing of a refused batch stays
    assert store.count_users() == 3
    assert store.latest_seq() == before


def test_batch_commits_once_and_only_what_was_written(store: Store) -> None:
    g0 = store.latest_seq()
    with store.batch():
        pass
    assert store.latest_seq() == g0  # an empty batch changes nothing
    with store.batch():
        store.audit(AuditEntry(datetime.now(UTC), "t", "x", "noop", "test"))
    assert store.latest_seq() == g0  # audit-only: committed, caches untouched
    assert store.audit_log("x")[0].action == "noop"
    with store.batch():
        store.add_user(person(1))
        with pytest.raises(Conflict):
            store.add_user(person(1))  # fails alone (savepoint); the batch goes on
        store.add_user(person(2))
    changes = store.changes_since(g0)  # one per user written; none for the failed write
    assert [(c.kind, c.user_id) for c in changes] == [
        (ChangeKind.USER, person(1).id),
        (ChangeKind.USER, person(2).id),
    ]
    assert store.latest_seq() == changes[-1].seq
    assert store.count_users() == 2


def test_put_directory_thumbnails_in_one_transaction(store: Store) -> None:
    from userphoto.model import DirectoryThumbnail

    store.add_users([person(1), person(2)])
    g0 = store.latest_seq()
    at = datetime.now(UTC)
    store.put_directory_thumbnails(
        [
            DirectoryThumbnail(f"id{i}", b"\xff\xd8jpeg", f"hash{i}", 6, 96, 96, None, at)
            for i in (1, 2)
        ]
    )
    assert [c.user_id for c in store.changes_since(g0)] == ["id1", "id2"]  # one transaction
    assert store.get_directory_thumbnail("id2").raw_hash == "hash2"  # type: ignore[union-attr]
