"""The reference a cache miss's one-query read (`Store.serving`) is checked against: the same
answer from the single reads (find the user, their photo, directory slot, rendition), as
serving read before the one-query read. Used by tests/store/test_store_serving.py and
bench/misses.py."""

from __future__ import annotations

from userphoto.resolve import choose_size
from userphoto.store import Serving, Store
from userphoto.store.serving_sql import NOBODY


def serving_by_parts(
    store: Store, key: str, size: int | None = None, *, by_hash: bool = False
) -> Serving | None:
    user = store.find_user_by_hash(key) if by_hash else store.find_user(key)
    photo = store.get_photo(user.id if user else NOBODY)
    directory = store.get_directory_thumbnail(user.id if user else NOBODY)
    if user is None:
        return None
    rendition = None
    if photo is not None and photo.sizes:
        chosen = choose_size(photo.sizes, size, None)
        data = store.get_rendition(photo.id, chosen)
        rendition = (chosen, data) if data is not None else None
    return Serving(user, photo, directory, rendition)
