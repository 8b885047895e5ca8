"""The store and the Set-/Get-/Remove-UserPhoto lifecycle, on SQLite and PostgreSQL (contract)."""

from __future__ import annotations

import io
import sqlite3
from dataclasses import replace

import psycopg
import pytest
from PIL import Image

from tests.support.images import encode
from userphoto import imaging
from userphoto.app import App
from userphoto.errors import AccountUnavailable, Conflict, NoPhoto, NoPreview, UnknownUser
from userphoto.model import Account, PhotoState, User
from userphoto.photos import put_photo
from userphoto.store import address_hashes, open_store
from userphoto.store import postgres as pg_store
from userphoto.store import sqlite as sqlite_store


def photo(colour: tuple[int, int, int], size: int = 700) -> bytes:
    return encode(Image.new("RGB", (size, size), colour), "JPEG", quality=95)


def colour_of(jpeg: bytes) -> tuple[int, ...]:
    return Image.open(io.BytesIO(jpeg)).convert("RGB").getpixel((10, 10))


@pytest.fixture
def app(store_app: App) -> App:
    """Every test here runs on both stores."""
    return store_app


@pytest.fixture
def ada(app: App) -> User:
    return app.store.add_user(
        User(
            id="u-ada",
            address="Ada@Contoso.example",
            display_name="Ada Lovelace",
            aliases=["al@contoso.example"],
        )
    )


def close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 8) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# --- users -----------------------------------------------------------------------------------
def test_users_are_found_by_id_address_alias_and_hash(app: App, ada: User) -> None:
    store = app.store
    assert ada.address == "ada@contoso.example"
    for key in ("u-ada", "ada@contoso.example", " ADA@contoso.EXAMPLE ", "al@contoso.example"):
        found = store.find_user(key)
        assert found is not None and found.id == "u-ada", key
    md5, sha = address_hashes("  AL@contoso.example")
    assert store.find_user_by_hash(md5).id == "u-ada"  # type: ignore[union-attr]
    assert store.find_user_by_hash(sha.upper()).id == "u-ada"  # type: ignore[union-attr]
    assert store.find_user("nobody@contoso.example") is None
    assert store.domains() == {"contoso.example"}


def test_addresses_are_unique_across_users_and_aliases(app: App, ada: User) -> None:
    with pytest.raises(Conflict):
        app.store.add_user(User(id="x", address="al@contoso.example", display_name="X"))
    with pytest.raises(Conflict):
        app.store.add_user(
            User(
                id="y",
                address="y@contoso.example",
                display_name="Y",
                aliases=["ADA@contoso.example"],
            )
        )
    assert app.store.count_users() == 1


def test_list_search_and_iterate(app: App) -> None:
    for i in range(25):
        app.store.add_user(
            User(id=f"id{i}", address=f"user{i:02d}@x.example", display_name=f"Name {i}")
        )
    assert app.store.count_users() == 25
    assert app.store.count_users("user1") == 10
    from userphoto.store import UserQuery

    page = app.store.list_users(UserQuery(offset=20, limit=10))
    assert [u.address for u in page] == [f"user{i:02d}@x.example" for i in range(20, 25)]
    assert len(list(app.store.iter_users(batch=7))) == 25


# --- Set-UserPhoto ---------------------------------------------------------------------------
def test_set_saves_at_once_with_all_renditions(app: App, ada: User) -> None:
    saved = app.photos.set("ada@contoso.example", photo((200, 0, 0)))
    assert saved.state is PhotoState.SAVED and saved.version == 1
    assert saved.sizes == (48, 64, 96, 120, 240, 360, 432, 504, 648)
    for size in saved.sizes:
        data = app.store.get_rendition(saved.id, size)
        assert data is not None and Image.open(io.BytesIO(data)).size == (size, size)
    assert Image.open(io.BytesIO(app.store.get_thumbnail(saved.id))).size == (96, 96)
    _, size, data = app.photos.get("al@contoso.example", size=240)
    assert size == 240 and close(colour_of(data), (200, 0, 0))
    assert [e.action for e in app.store.audit_log(ada.id)][:2] == ["photo.set", "user.add"]


def test_preview_then_save(app: App, ada: User) -> None:
    app.photos.set(ada.address, photo((200, 0, 0)))
    app.photos.set(ada.address, photo((0, 0, 200)), preview=True)
    # The saved photo is unchanged; the preview is separately retrievable.
    assert close(colour_of(app.photos.get(ada.address)[2]), (200, 0, 0))
    assert close(colour_of(app.photos.get(ada.address, preview=True)[2]), (0, 0, 200))
    saved = app.photos.save(ada.address)
    assert saved.version == 2
    assert close(colour_of(app.photos.get(ada.address)[2]), (0, 0, 200))
    with pytest.raises(NoPreview):
        app.photos.get(ada.address, preview=True)  # after a save there is none
    with pytest.raises(NoPreview):
        app.photos.save(ada.address)
    states = [p.state for p in app.store.photo_history(ada.id)]
    assert states == [PhotoState.SAVED, PhotoState.SUPERSEDED]


def test_cancel_discards_only_the_preview(app: App, ada: User) -> None:
    app.photos.set(ada.address, photo((200, 0, 0)))
    app.photos.set(ada.address, photo((0, 0, 200)), preview=True)
    app.photos.cancel(ada.address)
    assert close(colour_of(app.photos.get(ada.address)[2]), (200, 0, 0))
    with pytest.raises(NoPreview):
        app.photos.cancel(ada.address)
    with pytest.raises(NoPreview):
        app.photos.get(ada.address, preview=True)


def test_get_falls_back_to_the_largest_size_below(app: App, ada: User) -> None:
    app.photos.set(ada.address, photo((0, 120, 0), size=300))
    saved, size, _ = app.photos.get(ada.address, size=648)
    assert saved.sizes == (48, 64, 96, 120, 240) and size == 240


# --- Remove-UserPhoto ------------------------------------------------------------------------
def test_remove_leaves_a_record_until_cleared(app: App, ada: User) -> None:
    app.photos.set(ada.address, photo((200, 0, 0)))
    app.photos.remove(ada.address)
    user = app.store.find_user(ada.id)
    assert user is not None and user.removal_record is not None
    with pytest.raises(NoPhoto, match="removed"):
        app.photos.get(ada.address)
    with pytest.raises(NoPhoto):
        app.photos.remove(ada.address)
    assert app.photos.clear_record(ada.address) is True
    assert app.store.find_user(ada.id).removal_record is None  # type: ignore[union-attr]
    assert app.photos.clear_record(ada.address) is False
    # A new save also lifts any record.
    app.photos.set(ada.address, photo((1, 2, 3)))
    app.photos.remove(ada.address)
    app.photos.set(ada.address, photo((1, 2, 3)))
    assert app.store.find_user(ada.id).removal_record is None  # type: ignore[union-attr]


# --- errors ----------------------------------------------------------------------------------
def test_unknown_user_and_no_photo(app: App, ada: User) -> None:
    with pytest.raises(UnknownUser, match="user list"):
        app.photos.set("ghost@contoso.example", photo((0, 0, 0)))
    with pytest.raises(NoPhoto, match="userphoto set"):
        app.photos.get(ada.address)


@pytest.mark.parametrize("account", [Account.ABSENT, Account.DISABLED])
def test_accounts_that_cannot_hold_photos(app: App, account: Account) -> None:
    app.store.add_user(User(id="u", address="u@x.example", display_name="U", account=account))
    with pytest.raises(AccountUnavailable, match=account.value) as info:
        app.photos.set("u@x.example", photo((0, 0, 0)))
    assert "--account hd" in info.value.message
    assert app.store.get_photo("u") is None


def test_sd_only_accounts_hold_only_sd_sizes(app: App) -> None:
    app.store.add_user(
        User(id="sd", address="sd@x.example", display_name="SD", account=Account.SD_ONLY)
    )
    saved = app.photos.set("sd@x.example", photo((0, 0, 200)))
    assert saved.sizes == (48, 64, 96)
    assert app.photos.get("sd@x.example", size=96)[1] == 96
    with pytest.raises(AccountUnavailable, match="sd_only"):
        app.photos.get("sd@x.example", size=240)


def test_invalid_upload_changes_nothing(app: App, ada: User) -> None:
    app.photos.set(ada.address, photo((200, 0, 0)))
    generation = app.store.latest_seq()
    with pytest.raises(imaging.ImageError):
        app.photos.set(ada.address, b"<html>not a photo</html>")
    assert app.store.latest_seq() == generation  # no cached answer needs to change
    assert close(colour_of(app.photos.get(ada.address)[2]), (200, 0, 0))
    rejected = app.store.audit_log(ada.id)[0]
    assert rejected.action == "photo.rejected" and "HTML" in rejected.detail


# --- atomicity, change tracking, migrations --------------------------------------------------
def test_failure_mid_write_leaves_the_previous_photo_intact(app: App, ada: User) -> None:
    first = app.photos.set(ada.address, photo((200, 0, 0)))
    generation = app.store.latest_seq()
    good = app.photos.render(ada, photo((0, 0, 200)))
    # The last rendition cannot be stored: the write fails after the old photo was retired
    # and most new renditions were inserted, inside the same transaction.
    broken = replace(good, renditions={**good.renditions, 648: object()})  # type: ignore[dict-item]
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        put_photo(app.store, ada.id, broken, PhotoState.SAVED, actor="t", via="test")
    current = app.store.get_photo(ada.id)
    assert current is not None and current.id == first.id and current.version == 1
    assert close(colour_of(app.store.get_rendition(first.id, 648)), (200, 0, 0))  # type: ignore[arg-type]
    assert app.store.latest_seq() == generation
    assert len(app.store.photo_history(ada.id)) == 1


def test_generation_is_seen_across_connections(app: App, ada: User) -> None:
    other = open_store(app.settings.store_url)
    before = other.latest_seq()
    app.photos.set(ada.address, photo((9, 9, 9)))
    assert other.latest_seq() > before
    other.close()


def test_schema_is_versioned_and_reopening_is_harmless(store_url: str) -> None:
    store = open_store(store_url)
    module = sqlite_store if store_url.startswith("sqlite") else pg_store
    assert store.schema_version == len(module.MIGRATIONS)  # type: ignore[attr-defined]
    store.add_user(User(id="a", address="a@x.example", display_name="A"))
    store.close()
    again = open_store(store_url)
    assert again.schema_version == len(module.MIGRATIONS) and again.count_users() == 1  # type: ignore[attr-defined]
    again.close()
    if store_url.startswith("sqlite"):
        path = store_url.removeprefix("sqlite://")
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
