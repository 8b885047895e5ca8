"""Write-back: a saved HD photo's directory thumbnail goes to the user's thumbnailPhoto.

Registered as a `Photos` listener when `[directory] writeback = true`. The write happens right
after the HD change commits; if the directory is down the upload still succeeds, the user is
queued in the store's write-back queue (a table: concurrent writers lose nothing), and
`sync --watch` claims and retries the entries. A serving node without the bind password (the
guide gives it to the sync only) queues every write-back for the active sync.

No loops: after writing, the same bytes go into the directory-thumbnail slot with
`written_by_us` and their hash, so when sync reads them back the hash matches and nothing
is "new".
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

from PIL import Image

from .. import imaging
from ..model import DirectoryThumbnail, PhotoState, User
from ..store import Store
from .client import DirectoryClient, DirectoryRefused, DirectoryUnavailable
from .config import DirectoryConfig

log = logging.getLogger(__name__)

RETRY_AFTER = 15.0  # seconds between retry rounds of the queue after a failure
EVENTS = ("saved", "removed")


class WriteBack:
    def __init__(
        self, store: Store, config: DirectoryConfig, client: DirectoryClient | None = None
    ):
        self.store = store
        self.config = config
        # Quick to give up inline (an upload must not hang on a dead directory): one attempt;
        # the queue and `sync --watch` do the patient retrying.
        quick = replace(config, retries=1, timeout=min(config.timeout, 3.0))
        self.client = client or DirectoryClient(quick)
        # One connection, shared by a server's threads: ldap3's sync connections are not
        # safe to use from two threads at once.
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self.worker = f"{socket.gethostname()}:{os.getpid()}"  # names this drainer's claims

    # --- the Photos listener ---------------------------------------------------------------
    def __call__(self, user: User, event: str) -> None:
        if event not in EVENTS or not self.applies(user):
            return
        if self.config.unbound:  # a node without the bind password: the active sync writes it
            self.store.queue_writeback(user.id)
            return
        try:
            self.write(user)
        except (DirectoryUnavailable, DirectoryRefused) as exc:
            log.warning("write-back of %s queued: %s", user.address, exc)
            self.store.queue_writeback(user.id)
        except Exception:  # the HD change has committed: never fail the upload over this
            log.exception("write-back of %s failed unexpectedly; queued", user.address)
            self.store.queue_writeback(user.id)

    @staticmethod
    def applies(user: User) -> bool:
        return (
            user.source == "directory"
            and bool(user.attributes.get("dn"))
            and (not user.directory_gone)
        )

    # --- the write -------------------------------------------------------------------------
    def thumbnail_for(self, user: User) -> bytes | None:
        """The bytes the directory should hold for `user` now: None means clear it."""
        photo = self.store.get_photo(user.id, PhotoState.SAVED)
        if photo is None:
            return None
        thumb = self.store.get_thumbnail(photo.id)
        size = self.config.writeback_size
        if thumb is not None and _side(thumb) == size:
            data = thumb
        else:
            # Derive from the smallest rendition that is at least `size` (no upscale).
            source = next((s for s in photo.sizes if s >= size), photo.largest)
            rendition = self.store.get_rendition(photo.id, source)
            if rendition is None:
                return thumb
            data = imaging.resize_jpeg(rendition, min(size, source))
        if len(data) > imaging.DIRECTORY_LIMIT:  # impossible at 96 px; asserted anyway
            raise DirectoryRefused(f"the {size}px thumbnail is over 100 KB; not written")
        return data

    def write(self, user: User) -> bytes | None:
        """Write (or clear) the user's directory photo. The slot is recorded *first*: a sync
        in another process that reads the entry right after our modify then finds the same
        hash already there, never a "new" directory photo."""
        data = self.thumbnail_for(user)
        if data is None:
            self.store.delete_directory_thumbnail(user.id)
        else:
            side = _side(data)
            self.store.put_directory_thumbnail(
                DirectoryThumbnail(
                    user_id=user.id,
                    jpeg=data,
                    raw_hash=hashlib.sha256(data).hexdigest(),
                    raw_size=len(data),
                    width=side,
                    height=side,
                    problem=None,
                    seen=datetime.now(UTC),
                    written_by_us=True,
                )
            )
        with self._lock:
            self.client.write_photo(user.attributes["dn"], data)
        return data

    # --- the retry queue -------------------------------------------------------------------
    def pending(self) -> list[str]:
        return self.store.pending_writebacks()

    def drain(self, limit: int = 500) -> int:
        """Claim queued write-backs and retry them; returns how many went through.

        A refused write (the entry moved, no permission) stays queued and the others go on;
        a directory that is down ends this round. Claimed entries rest for RETRY_AFTER
        seconds before anyone retries them, so a failure does not hammer the directory.
        """
        done = 0
        if time.monotonic() < self._retry_at:
            return done
        for user_id, version in self.store.claim_writebacks(self.worker, limit, RETRY_AFTER):
            user = self.store.find_user(user_id)
            if user is None or not self.applies(user):
                self.store.finish_writeback(user_id, version)
                continue
            try:
                self.write(user)
            except DirectoryRefused as exc:
                log.warning("write-back of %s refused, kept queued: %s", user.address, exc)
                self._retry_at = time.monotonic() + RETRY_AFTER
                continue
            except DirectoryUnavailable:
                self._retry_at = time.monotonic() + RETRY_AFTER
                raise
            self.store.finish_writeback(user_id, version)
            done += 1
        return done


def _side(jpeg: bytes) -> int:
    with Image.open(io.BytesIO(jpeg)) as image:
        return image.width


def attach(photos: object, store: Store, config: DirectoryConfig) -> WriteBack:
    """Register write-back on a `Photos` (typed loosely: the core must not import us)."""
    writer = WriteBack(store, config)
    photos.listeners.append(writer)  # type: ignore[attr-defined]
    return writer
