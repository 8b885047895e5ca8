"""From a request's target to bytes: read the store once, run the rule, fetch what it chose.

Only cache misses come here; the answers they produce are cached by the server.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import imaging
from ..app import App
from ..errors import InvalidArgument
from ..model import (
    ClientProfile,
    DirectoryThumbnail,
    Photo,
    User,
    Viewer,
    is_address,
)
from ..resolve import Resolution, resolve
from ..store import address_hashes

RESIZED_MAX_BYTES = 64 * 1024 * 1024  # Libravatar sizes made from masters, kept for reuse
_NOBODY = "\x00nobody"  # an id no user can have (check_key refuses control characters)
_ID = re.compile(r"^[A-Za-z0-9._:{}~+=-]{1,128}$")


def check_key(key: str) -> str:
    """An address or a user id, else InvalidArgument (→ 400) before touching the store."""
    key = key.strip()
    if "@" in key:
        if not is_address(key) or len(key) > 320:
            raise InvalidArgument(f"{key[:80]!r} is not a valid address.")
        return key
    if not _ID.match(key):
        raise InvalidArgument(
            f"{key[:80]!r} is neither an address nor a user id (letters, digits, '.-_:{{}}~+=')."
        )
    return key


@dataclass(frozen=True)
class Target:
    user: User
    photo: Photo | None
    directory: DirectoryThumbnail | None

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.photo.sizes if self.photo else ()


def user_tokens(user: User) -> tuple[str, ...]:
    """Every key a lookup may have used to find `user`: id, addresses, aliases, their hashes."""
    tokens = {user.id.lower()}
    for address in user.addresses:
        tokens.add(address.strip().lower())
        tokens.update(address_hashes(address))
    return tuple(tokens)


class Lookup:
    def __init__(self, app: App):
        self.app = app
        self.store = app.store
        self._resized: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._resized_bytes = 0
        self._resized_lock = threading.Lock()
        self._seen = threading.local()  # keys looked up by the build running on this thread

    def reset(self) -> None:
        """Forget resized renditions (a change that can touch every answer)."""
        with self._resized_lock:
            self._resized = OrderedDict()
            self._resized_bytes = 0

    # --- what a build depended on ----------------------------------------------------------
    def start_recording(self) -> None:
        self._seen.keys = []
        self._seen.store = 0.0

    def recorded(self) -> tuple[tuple[str, ...], float]:
        """(keys looked up, seconds spent in store reads) since `start_recording`."""
        keys = getattr(self._seen, "keys", None) or []
        seconds = getattr(self._seen, "store", 0.0)
        self._seen.keys = None
        return tuple(keys), seconds

    def _read(self, read: Callable[..., Any], *args: Any) -> Any:
        """One store read, its time added to the running build's store time."""
        began = time.perf_counter()
        try:
            return read(*args)
        finally:
            if getattr(self._seen, "keys", None) is not None:
                self._seen.store += time.perf_counter() - began

    def _record(self, key: str) -> None:
        keys = getattr(self._seen, "keys", None)
        if keys is not None:
            keys.append(key.strip().lower())

    # --- reads -------------------------------------------------------------------------------
    def target(self, key: str) -> Target | None:
        self._record(key)
        user = self._read(self.store.find_user, key)
        if not user:
            self._nobody()
            return None
        return self.load(user)

    def by_hash(self, digest: str) -> Target | None:
        self._record(digest)
        user = self._read(self.store.find_user_by_hash, digest)
        if not user:
            self._nobody()
            return None
        return self.load(user)

    def _nobody(self) -> None:
        # The same reads as for a user who exists, so an unknown key costs what a hidden
        # user costs and timing does not tell them apart.
        self._read(self.store.get_photo, _NOBODY)
        self._read(self.store.get_directory_thumbnail, _NOBODY)

    def load(self, user: User) -> Target:
        return Target(
            user,
            self._read(self.store.get_photo, user.id),
            self._read(self.store.get_directory_thumbnail, user.id),
        )

    @staticmethod
    def resolve(
        target: Target,
        viewer: Viewer,
        client: ClientProfile = ClientProfile.HD,
        size: int | None = None,
        *,
        prefer_directory: bool = False,
    ) -> Resolution:
        return resolve(
            target.user,
            viewer,
            client,
            size,
            photo_sizes=target.sizes,
            directory=target.directory,
            prefer_directory=prefer_directory,
        )

    def rendition(self, target: Target, size: int) -> bytes | None:
        assert target.photo is not None
        return self._read(self.store.get_rendition, target.photo.id, size)

    def any_size(self, target: Target, size: int) -> tuple[bytes, int] | None:
        """Libravatar sizes: a stored rendition when one matches, else made once from the
        master (the largest rendition) by downscaling. Never upscaled: above the master's
        size the master itself is served (clients scale it in the browser)."""
        photo = target.photo
        if photo is None:
            return None
        if size in photo.sizes:
            data = self.rendition(target, size)
            return (data, size) if data else None
        master = photo.largest
        if size >= master:
            data = self.rendition(target, master)
            return (data, master) if data else None
        key = (photo.id, size)
        made = self._resized.get(key)
        if made is None:
            source = self.rendition(target, master)
            if source is None:
                return None
            made = imaging.resize_jpeg(source, size, self.app.settings.jpeg_quality)
            with self._resized_lock:  # least recently made goes first; never a wipe
                self._resized[key] = made
                self._resized_bytes += len(made)
                while self._resized_bytes > RESIZED_MAX_BYTES and self._resized:
                    _key, old = self._resized.popitem(last=False)
                    self._resized_bytes -= len(old)
        return made, size
