"""`Store.serving`: everything a cache miss needs about one key in one read, on both stores.

Each store's one-query answer is compared with the reference made of the single reads
(`tests/support/serving.py`: find the user, their photo, directory slot, rendition)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.serving import serving_by_parts
from userphoto import imaging
from userphoto.demo import portrait
from userphoto.model import DirectoryThumbnail, PhotoState, User, Visibility
from userphoto.photos import put_photo, remove_photo
from userphoto.resolve import choose_size
from userphoto.store import Store, address_hashes, open_store
from userphoto.store.serving_sql import NOBODY
from userphoto.store.sqlite import SQLiteStore


@pytest.fixture(scope="module")
def rendered() -> imaging.Rendered:
    return imaging.render(portrait(5, 700, 700))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def thumb(user_id: str, jpeg: bytes | None = b"\xff\xd8thumb\xff\xd9") -> DirectoryThumbnail:
    return DirectoryThumbnail(
        user_id=user_id,
        jpeg=jpeg,
        raw_hash="raw-" + user_id,
        raw_size=123,
        width=80,
        height=100,
        problem=None if jpeg else "not a JPEG",
        seen=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        written_by_us=True,
    )


@pytest.fixture
def people(store: Store, rendered: imaging.Rendered) -> Store:
    """ann: photo, directory slot, two aliases; bo: directory slot only (unusable);
    cy: nothing; dee: hidden (visibility nobody) with a photo; eli: only a preview."""
    store.add_user(
        User(
            id="ann",
            address="Ann@Example.org",
            display_name="Ann",
            aliases=["zed@example.org", "a.nn@other.example"],
            attributes={"dn": "uid=ann"},
        )
    )
    put_photo(store, "ann", rendered, PhotoState.SAVED, actor="t", via="test")
    store.put_directory_thumbnail(thumb("ann"))
    store.add_user(User(id="bo", address="bo@example.org", display_name="Bo"))
    store.put_directory_thumbnail(thumb("bo", None))
    store.add_user(User(id="cy", address="cy@example.org", display_name="Cy"))
    store.add_user(
        User(id="dee", address="dee@example.org", display_name="D", visibility=Visibility.NOBODY)
    )
    put_photo(store, "dee", rendered, PhotoState.SAVED, actor="t", via="test")
    store.add_user(User(id="eli", address="eli@example.org", display_name="Eli"))
    put_photo(store, "eli", rendered, PhotoState.PREVIEW, actor="t", via="test")
    return store


KEYS = [
    ("ann", False),
    ("ann@example.org", False),
    ("  ANN@example.ORG ", False),
    ("zed@example.org", False),
    ("A.NN@OTHER.EXAMPLE", False),
    (address_hashes("ann@example.org")[0], False),  # a hash is no key for find_user
    (address_hashes("zed@example.org")[0], True),
    (address_hashes("ann@example.org")[1].upper(), True),
    ("bo", False),
    ("cy@example.org", False),
    ("dee", False),
    ("eli", False),
    ("nobody@example.org", False),
    ("0" * 32, True),
    (NOBODY, False),  # the sentinel names nobody
]


@pytest.mark.parametrize("size", [None, 48, 100, 240, 10_000, 1])
def test_one_read_equals_the_single_reads(people: Store, size: int | None) -> None:
    for key, by_hash in KEYS:
        one = people.serving(key, size, by_hash=by_hash)
        parts = serving_by_parts(people, key, size, by_hash=by_hash)
        assert one == parts, (key, by_hash, size)


def test_what_one_read_holds(people: Store, rendered: imaging.Rendered) -> None:
    ann = people.serving("Zed@Example.org", 240)
    assert ann is not None and ann.user.id == "ann"
    assert ann.user.address == "ann@example.org"
    assert ann.user.aliases == ["a.nn@other.example", "zed@example.org"]
    assert ann.user.attributes == {"dn": "uid=ann"}
    assert ann.photo is not None and ann.photo.state is PhotoState.SAVED
    assert ann.photo.sizes == rendered.sizes
    assert ann.directory == thumb("ann")
    assert ann.rendition == (240, rendered.renditions[240])

    bo = people.serving("bo")
    assert bo is not None and bo.photo is None and bo.rendition is None
    assert bo.directory is not None and bo.directory.jpeg is None
    cy = people.serving("cy")
    assert cy is not None and (cy.photo, cy.directory, cy.rendition) == (None, None, None)
    eli = people.serving("eli")  # a pending preview is not served
    assert eli is not None and eli.photo is None and eli.rendition is None
    dee = people.serving("dee", 96)  # hidden: the store answers; the rule hides her
    assert dee is not None and dee.user.visibility is Visibility.NOBODY
    assert people.serving("nobody@example.org") is None
    assert people.serving("f" * 64, by_hash=True) is None
    assert people.serving("ann@example.org", by_hash=True) is None  # an address is no hash


def test_the_rendition_is_the_one_choose_size_picks(
    people: Store, rendered: imaging.Rendered
) -> None:
    sizes = rendered.sizes
    for size in [None, *sizes, *(s + 1 for s in sizes), *(s - 1 for s in sizes), 0, 5000]:
        got = people.serving("ann", size)
        assert got is not None and got.rendition is not None
        chosen = choose_size(sizes, size, None)
        assert got.rendition == (chosen, rendered.renditions[chosen]), size


def test_changes_show_in_the_next_read(people: Store, rendered: imaging.Rendered) -> None:
    before = people.serving("ann", 96)
    assert before is not None and before.photo is not None
    people.update_user(
        User(id="ann", address="ann@example.org", display_name="Ann B", aliases=["new@example.org"])
    )
    assert people.serving("zed@example.org") is None  # the old alias no longer names her
    moved = people.serving("new@example.org", 96)
    assert moved is not None and moved.user.display_name == "Ann B"
    assert people.serving(address_hashes("new@example.org")[1], 96, by_hash=True) == moved
    put_photo(
        people, "ann", imaging.render(portrait(9, 300, 300)), PhotoState.SAVED, actor="t", via="t"
    )
    newer = people.serving("ann", 96)
    assert newer is not None and newer.photo is not None and newer.photo.id != before.photo.id
    assert newer.rendition is not None and newer.rendition[1] != before.rendition[1]  # type: ignore[index]
    remove_photo(people, "ann", actor="t", via="t")
    people.delete_directory_thumbnail("ann")
    gone = people.serving("ann", 96)
    assert gone is not None and gone.photo is None and gone.directory is None
    assert gone.user.removal_record is not None


def test_sqlite_answers_known_and_unknown_keys_in_one_statement(
    tmp_path: Path, rendered: imaging.Rendered
) -> None:
    """One statement whether the key names someone or not (the joins run for the sentinel
    id). PostgreSQL runs the same single statement (serving_sql); bench/misses.py times it."""
    store = SQLiteStore(tmp_path / "one.db")
    store.add_user(User(id="ann", address="ann@example.org", display_name="Ann"))
    put_photo(store, "ann", rendered, PhotoState.SAVED, actor="t", via="test")
    store.add_user(User(id="cy", address="cy@example.org", display_name="Cy"))
    statements: list[str] = []
    db = store._db
    db.set_trace_callback(statements.append)
    try:
        for key in ("cy", "nobody@example.org", "ann"):
            statements.clear()
            store.serving(key, 96)
            assert len(statements) == 1, (key, statements)
        statements.clear()
        serving_by_parts(store, "ann", 96)
        assert len(statements) >= 5  # what a miss cost before: user, aliases, photo, slot, jpeg
    finally:
        db.set_trace_callback(None)
        store.close()
