"""`sync --watch`: follow the directory until stopped.

A server that offers RFC 4533 content sync (OpenLDAP with syncprov) pushes each change: see
`live.SyncreplWatch`. Anywhere else `--watch` polls every `watch_interval`, and on AD a
change-notification search wakes the poll at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import UserPhotoError
from .. import status
from ..client import DirectoryRefused, DirectoryUnavailable
from ..entry import Flavour
from ..notify import ChangeNotifier
from ..status import SyncReport
from .photos import photo_workers

if TYPE_CHECKING:
    from .engine import SyncEngine

log = logging.getLogger(__name__)


def watch(
    engine: SyncEngine,
    stop: threading.Event,
    *,
    after_cycle: Callable[[SyncReport], None] | None = None,
    drain: Callable[[], object] | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Follow the directory until `stop` is set: pushed by the server (syncrepl) or polled.
    `announce` hears which of the two runs (and why); `drain` retries write-backs."""
    config = engine.config
    # The photo workers start (and take a first photo) now, not with the first change:
    # starting them takes seconds on a busy machine, which that change would wait for.
    photo_workers().warm()
    recorder = status.WatchRecorder(engine.store)
    why = mode(engine, stop, recorder)
    if why is None and not stop.is_set():
        from ..live import SyncreplWatch  # python-ldap loads only when it is used

        if announce is not None:
            info = engine.client.info
            announce(
                f"watching {info.uri if info else '?'}: changes "
                "pushed by the server (RFC 4533 syncrepl); Ctrl-C stops"
            )
        why = SyncreplWatch(engine, recorder).run(stop, after_cycle=after_cycle, drain=drain)
    if why is not None and not stop.is_set():
        if announce is not None:
            announce(
                f"watching {', '.join(config.uris)} every "
                f"{config.watch_interval:g}s ({why}; full reconciliation every "
                f"{config.full_interval:g}s); Ctrl-C stops"
            )
        recorder.update(mode="polling", why=why, interval=config.watch_interval)
        poll(engine, stop, recorder, after_cycle=after_cycle, drain=drain)
    with contextlib.suppress(UserPhotoError):
        recorder.update(state="stopped", error=None)


def mode(engine: SyncEngine, stop: threading.Event, recorder: status.WatchRecorder) -> str | None:
    """None for syncrepl, else why `--watch` polls. Waits for the directory to answer."""
    config = engine.config
    while not stop.is_set():
        try:
            info = engine.client.refresh_info()
            break
        except (DirectoryUnavailable, DirectoryRefused) as exc:
            engine.client.close()
            recorder.update(state="degraded", error=str(exc))
            sleep(stop, threading.Event(), max(config.watch_interval, config.backoff * 4))
    else:
        return "stopped"
    if info.is_ad:
        return "Active Directory: change notifications wake the poll at once"
    if not config.syncrepl:
        return "syncrepl = false in [directory]"
    if not info.syncrepl:
        return (
            "the server does not offer RFC 4533 content sync; on OpenLDAP, load the "
            "syncprov overlay to get changes pushed"
        )
    if Flavour.of(config, False).id_attribute.lower() != "entryuuid":
        return "syncrepl identifies entries by entryUUID, and id_attribute is set otherwise"
    return None


def poll(
    engine: SyncEngine,
    stop: threading.Event,
    recorder: status.WatchRecorder,
    *,
    after_cycle: Callable[[SyncReport], None] | None = None,
    drain: Callable[[], object] | None = None,  # its result is not used
) -> None:
    """Poll for changes every `watch_interval` until `stop` is set.

    On AD, a change notification search also wakes the loop the moment something
    changes. An idle cycle writes nothing to the store. A full reconciliation (which is
    what notices deletions) runs every `full_interval`.
    """
    config = engine.config
    wake = threading.Event()
    notifier: ChangeNotifier | None = None
    notify_retry_at = 0.0
    last_full = time.monotonic()
    while not stop.is_set():
        if time.monotonic() - last_full >= config.full_interval:
            report = engine.full()
            last_full = time.monotonic()
        else:
            report = engine.delta()
            if report.mode == "full":
                last_full = time.monotonic()
        if drain is not None:
            try:
                drain()
            except UserPhotoError as exc:  # recorded per user by the writer
                log.warning("write-back retry failed: %s", exc)
        if after_cycle is not None:
            after_cycle(report)
        recorder.update(state="running" if report.ok else "degraded", error=report.error)
        info = engine.client.info
        if (
            report.ok
            and info is not None
            and info.is_ad
            and config.notify
            and (notifier is None or not notifier.alive)
            and time.monotonic() >= notify_retry_at
        ):
            notifier = ChangeNotifier(config, info.uri, wake)
            if not notifier.start():
                notifier, notify_retry_at = None, time.monotonic() + 60
        # Back off while the directory is down; the client already retried with backoff.
        sleep(
            stop,
            wake,
            config.watch_interval if report.ok else max(config.watch_interval, config.backoff * 4),
        )
    if notifier is not None:
        notifier.stop()


def sleep(stop: threading.Event, wake: threading.Event, seconds: float) -> None:
    """Wait up to `seconds`, ending early on a change notification or a stop request."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or wake.wait(min(0.1, left)):
            break
    wake.clear()
