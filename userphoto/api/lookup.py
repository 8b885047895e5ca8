"""From a request's target to bytes: one store read (the user, their photo, directory slot and
the rendition the size picks), then the rule; a second read only when it chose another size.

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
from ..answers import Kind, Plan
from ..app import App
from ..errors import InvalidArgument, PhotoChanged
from ..model import (
    ClientProfile,
    DirectoryThumbnail,
    Photo,
    User,
    Viewer,
    is_address,
)
from ..resolve import Resolution, Source, resolve
from ..store import Serving, address_hashes
from .cache import Answer, image_answer, redirect_answer
from .default_picture import initials as draw_initials
from .default_picture import initials_of

RESIZED_MAX_BYTES = 64 * 1024 * 1024  # Libravatar sizes made from masters, kept for reuse
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
    prefetched: tuple[int, bytes] | None = None  # (size, JPEG) read along with the rest

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

    def _read(self, read: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One store read, its time added to the running build's store time."""
        began = time.perf_counter()
        try:
            return read(*args, **kwargs)
        finally:
            if getattr(self._seen, "keys", None) is not None:
                self._seen.store += time.perf_counter() - began

    def _record(self, key: str) -> None:
        keys = getattr(self._seen, "keys", None)
        if keys is not None:
            keys.append(key.strip().lower())

    # --- reads -------------------------------------------------------------------------------
    def target(self, key: str, size: int | None = None) -> Target | None:
        """The user `key` names, with everything serving needs, in one store read (the
        rendition `size` picks included). An unknown key costs the same read."""
        self._record(key)
        return self._target(self._read(self.store.serving, key, size))

    def by_hash(self, digest: str, size: int | None = None) -> Target | None:
        self._record(digest)
        return self._target(self._read(self.store.serving, digest, size, by_hash=True))

    @staticmethod
    def _target(found: Serving | None) -> Target | None:
        if found is None:
            return None
        return Target(found.user, found.photo, found.directory, found.rendition)

    def load(self, user: User) -> Target:
        """A user already in hand (the web pages): their photo and directory slot."""
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
        """The rendition read along with the target when it is the one chosen (the usual
        case), else a second read."""
        assert target.photo is not None
        if target.prefetched is not None and target.prefetched[0] == size:
            return target.prefetched[1]
        return self._read(self.store.get_rendition, target.photo.id, size)

    def answer(self, viewer: Viewer, target: Target, plan: Plan) -> Answer:
        """The image or redirect a native-API plan names (the web pictures serve it too)."""
        uid = target.user.id
        if plan.kind is Kind.REDIRECT:
            assert plan.url is not None
            return redirect_answer(plan.url, viewer, target=uid)
        assert plan.kind is Kind.IMAGE and plan.source is not None
        return image_answer(self.image(target, plan), viewer, plan.source.value, target=uid)

    def image(self, target: Target, plan: Plan) -> bytes:
        """The bytes of an IMAGE plan: the HD rendition, the directory JPEG or the user's
        initials (PhotoChanged when the rendition went away since the target was read)."""
        if plan.source is Source.DEFAULT:
            assert plan.size is not None
            return initials(target.user, plan.size)
        if plan.source is Source.DIRECTORY:
            assert target.directory is not None and target.directory.jpeg is not None
            return target.directory.jpeg
        assert plan.size is not None
        data = self.rendition(target, plan.size)
        if data is None:
            raise PhotoChanged()
        return data

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


def initials(user: User, size: int) -> bytes:
    """The generated default picture of a user: their initials on their own colour."""
    return draw_initials(initials_of(user.display_name or user.address), user.id, size)
