"""The admin listing's store query: filters, search and paging in SQL (no browser), on both
stores (contract)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from userphoto.app import App
from userphoto.demo import portrait
from userphoto.model import Account, DirectoryThumbnail, Picture, User
from userphoto.store import StatusFilter, StatusQuery


@pytest.fixture
def app(store_app: App) -> App:
    """Every test here runs on both stores."""
    return store_app


def thumb(user_id: str, usable: bool = True) -> DirectoryThumbnail:
    return DirectoryThumbnail(
        user_id,
        b"\xff\xd8jpeg" if usable else None,
        "h-" + user_id,
        10,
        96,
        96,
        None if usable else "not an image",
        datetime.now(UTC),
    )


def ids(app: App, query: StatusQuery) -> list[str]:
    return [s.user.id for s in app.store.list_photo_status(query)]


def test_filters_search_and_paging(app: App) -> None:
    store = app.store
    people = {
        "hd": {},
        "dironly": {},
        "none": {},
        "broken": {},
        "disabled": {"account": Account.DISABLED},
        "removed": {},
        "badurl": {"picture": Picture.URL},
        "both": {},
    }
    for name, fields in people.items():
        store.add_user(
            User(id=name, address=f"{name}@x.example", display_name=name.title(), **fields)
        )
    store.update_user(
        User(id="hd", address="hd@x.example", display_name="Hd", aliases=["hidden-alias@x.example"])
    )
    for name in ("hd", "removed", "both"):
        app.photos.set(name, portrait(1, 300, 300))
    for name in ("dironly", "removed", "both"):
        store.put_directory_thumbnail(thumb(name))
    store.put_directory_thumbnail(thumb("broken", usable=False))
    app.photos.remove("removed")

    def of(f: StatusFilter, search: str = "") -> set[str]:
        q = StatusQuery(search, f, 0, 100)
        got = set(ids(app, q))
        assert store.count_photo_status(q) == len(got)
        return got

    assert of(StatusFilter.ALL) == set(people)
    assert of(StatusFilter.NO_PHOTO) == {"none", "broken", "disabled", "badurl"}
    assert of(StatusFilter.DIRECTORY_ONLY) == {"dironly"}
    assert of(StatusFilter.PROBLEMS) == {"broken", "disabled", "removed", "badurl"}
    assert of(StatusFilter.ALL, "hidden-alias") == {"hd"}
    assert of(StatusFilter.NO_PHOTO, "BROK") == {"broken"}
    assert of(StatusFilter.ALL, "100%_") == set()  # LIKE wildcards are literal text

    # Pages are ordered by address and do not overlap.
    page1 = ids(app, StatusQuery(limit=3))
    page2 = ids(app, StatusQuery(offset=3, limit=3))
    assert page1 == sorted(page1) and not set(page1) & set(page2)
    assert ids(app, StatusQuery(offset=100)) == []
    hd = store.list_photo_status(StatusQuery("hd@", limit=1))[0]
    assert hd.sizes and max(hd.sizes) == 240 and hd.directory_usable is None
