"""How a full read's pages reach the engine: decoded in a reader process, and taken in by a
prefetch thread ahead of the writes."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from queue import Empty, Queue
from typing import TypeVar

from ..client import DirectoryClient, DirectoryRefused, DirectoryUnavailable, Entry
from ..config import DirectoryConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

# Pages a full read may run ahead of the writes (~3.5 MB a page with photos). Read from here
# at each run (`engine`), so a test can keep the read close behind the writes.
READ_AHEAD = 16


def read_pages(
    config: DirectoryConfig, search_filter: str, attributes: list[str], out: Connection
) -> None:
    """Process entry point: a paged search whose pages go down `out`, then None (or the
    error). Decoding LDAP costs as much CPU as everything sync does with an entry, so a full
    read runs here, on a core of its own, decoded by libldap when python-ldap loads.

    Any error on that fast path starts the read over with `DirectoryClient` (failover,
    retry with backoff, the usual error messages), skipping the entries already sent.
    """
    sent: set[str] = set()
    try:
        try:
            from ..fastread import paged_search

            for page in paged_search(config, search_filter, attributes):
                out.send(page)
                sent.update(dn for dn, _attrs in page)
            out.send(None)
            return
        except (BrokenPipeError, EOFError, KeyboardInterrupt):
            raise
        except Exception as exc:  # any failure: the ldap3 path decides what it means
            log.info("directory: fast read stopped (%s); reading with ldap3", exc)
        with DirectoryClient(config) as client:
            for page in client.search(search_filter, attributes):
                if sent:
                    page = [entry for entry in page if entry[0] not in sent]
                out.send(page)
            out.send(None)
    except (DirectoryUnavailable, DirectoryRefused) as exc:
        out.send(exc)
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        pass  # the sync stopped listening: nothing left to do
    finally:
        out.close()


def read_elsewhere(
    config: DirectoryConfig, search_filter: str, attributes: list[str]
) -> Iterator[list[Entry]]:
    """The pages of a full read, decoded by a reader process while this one applies them.

    The pipe holds about one page, so the reader stays a page or two ahead and no further.
    A reader still running when the sync stops (an error, a stop request) is ended.
    """
    # Forked from this thread (not from the photo workers' forkserver): the reader sees the
    # network exactly as its caller does (a per-thread network namespace included). It runs
    # only the LDAP read and a pipe, so none of this process's locks or connections matter
    # to it, and it holds them only for the length of the read.
    context = multiprocessing.get_context("fork")
    pages, out = context.Pipe(duplex=False)
    reader = context.Process(
        target=read_pages,
        args=(config, search_filter, attributes, out),
        name="directory-reader",
        daemon=True,
    )
    reader.start()
    out.close()  # ours; the reader holds its own end
    try:
        while True:
            try:
                item = pages.recv()
            except EOFError:
                raise DirectoryUnavailable("The directory reader process ended early.") from None
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        pages.close()
        reader.join(1)
        if reader.is_alive():
            reader.terminate()
            reader.join()


def prefetch(pages: Iterator[T], ahead: int = 2) -> Iterator[T]:
    """Take in the next pages while this one is processed (the server works on the other core)."""
    queue: Queue[tuple[T | None, BaseException | None]] = Queue(maxsize=ahead)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                if stop.is_set():
                    return
                queue.put((page, None))
            queue.put((None, None))
        except BaseException as exc:  # handed to the consumer, raised there
            queue.put((None, exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()  # a generator's own clean-up (e.g. ending the reader process) runs now

    thread = threading.Thread(target=produce, name="directory-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            page, error = queue.get()
            if error is not None:
                raise error
            if page is None:
                return
            yield page
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get_nowait()
            thread.join(0.05)
