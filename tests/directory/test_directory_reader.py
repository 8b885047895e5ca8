"""The full read's reader process against a real slapd: libldap (python-ldap) decodes it, and
the ldap3 client takes over, without repeating an entry, when that path fails part-way."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.slapd import Slapd, ldif
from userphoto.directory.client import DirectoryClient, DirectoryUnavailable, Entry
from userphoto.directory.config import DirectoryConfig
from userphoto.directory.entry import Flavour
from userphoto.directory.fastread import paged_search
from userphoto.directory.sync.pages import read_pages

pytestmark = pytest.mark.usefixtures("slapd_installed")

USERS = 600


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Slapd]:
    server = Slapd(tmp_path / "slapd")
    server.seed(ldif(range(USERS)))
    server.start()
    yield server
    server.stop()


def config_for(server: Slapd, **extra: object) -> DirectoryConfig:
    return DirectoryConfig.from_dict({**server.directory_settings(page_size=100), **extra})


def search_of(config: DirectoryConfig) -> tuple[str, list[str]]:
    flavour = Flavour.of(config, False)
    return flavour.user_filter, flavour.attributes(config)


def present(entries: list[Entry]) -> list[tuple[str, dict[str, list[bytes]]]]:
    """Entries with absent attributes dropped (ldap3 lists them empty; libldap leaves them out)."""
    return sorted((dn, {k: v for k, v in attrs.items() if v}) for dn, attrs in entries)


def test_python_ldap_reads_exactly_what_ldap3_reads(seeded: Slapd) -> None:
    config = config_for(seeded)
    fast = [e for page in paged_search(config, *search_of(config)) for e in page]
    with DirectoryClient(config) as client:
        slow = [e for page in client.search(*search_of(config)) for e in page]
    assert len(fast) == USERS and len({dn for dn, _ in fast}) == USERS
    assert present(fast) == present(slow)
    assert all(attrs["thumbnailphoto"][0][:2] == b"\xff\xd8" for _dn, attrs in fast)


def test_a_read_broken_part_way_is_finished_by_ldap3_without_repeats(seeded: Slapd) -> None:
    # Retries with backoff long enough for the restart below.
    config = config_for(seeded, retries=6, backoff=0.5)
    context = multiprocessing.get_context("fork")
    pages, out = context.Pipe(duplex=False)
    reader = context.Process(target=read_pages, args=(config, *search_of(config), out))
    reader.start()
    out.close()
    try:
        got: list[Entry] = list(pages.recv())  # the first page, by libldap
        seeded.stop()  # the reader is at most a page or two ahead of us (the pipe is small)
        seeded.start()
        while (item := pages.recv()) is not None:
            assert not isinstance(item, BaseException), item
            got.extend(item)
    finally:
        pages.close()
        reader.join(10)
    dns = [dn for dn, _attrs in got]
    assert len(dns) == len(set(dns)) == USERS


def test_a_directory_that_stays_down_is_reported_as_such(seeded: Slapd) -> None:
    config = config_for(seeded)
    seeded.stop()
    context = multiprocessing.get_context("fork")
    pages, out = context.Pipe(duplex=False)
    reader = context.Process(target=read_pages, args=(config, *search_of(config), out))
    reader.start()
    out.close()
    try:
        item = pages.recv()
    finally:
        pages.close()
        reader.join(10)
    assert isinstance(item, DirectoryUnavailable)
    assert "No directory server answered" in str(item) or "did not answer" in str(item)
