"""PostgreSQL going away and coming back, with real PostgreSQL behind a real TCP proxy that
cuts every connection (the machine's shared server keeps running).

While the database is down a read answers StoreUnavailable (HTTP: 503 + Retry-After) at once,
never after the pool's wait; the first read after it returns succeeds, without waiting for
the connection pool's reconnect backoff (1, 2, 4... s)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.postgres import SERVER, PgProxy
from tests.support.server import addr, seed, start_server, stop_server
from userphoto.errors import StoreUnavailable
from userphoto.model import User
from userphoto.store.postgres import PostgresStore
from userphoto.store.postgres.connection import FRESH_CONNECTION

# What "at once" means here: well under the pool's 2 s wait, with room for a loaded machine.
PROMPT = 1.0


@pytest.fixture
def proxy() -> Iterator[PgProxy]:
    made = PgProxy()
    yield made
    made.down()


def test_down_is_answered_at_once_and_the_first_read_after_succeeds(
    pg_url: str, proxy: PgProxy
) -> None:
    direct = PostgresStore(pg_url)
    store = PostgresStore(proxy.url(pg_url.rsplit("/", 1)[1]) + "?application_name=recovery")
    try:
        direct.add_user(User(id="u1", address="u1@x.example", display_name="One"))
        assert store.serving("u1") is not None
        time.sleep(FRESH_CONNECTION + 0.1)  # idle: the next checkout pings the connection
        proxy.down()
        waits = []
        for _ in range(15):  # 3 s down: the pool's own reconnect backs off meanwhile
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as info:
                store.serving("u1")
            waits.append(time.monotonic() - started)
            assert info.value.status == 503 and info.value.retry_after
            time.sleep(0.2)
        assert max(waits) < PROMPT, waits
        direct.add_user(User(id="u2", address="u2@x.example", display_name="Two"))
        proxy.up()
        found = store.serving("u2@x.example")  # the very first read after: no retry
        assert found is not None and found.user.id == "u2"
        assert all(store.serving(f"u{n % 2 + 1}") is not None for n in range(20))
    finally:
        store.close()
        direct.close()


def test_killed_backends_are_replaced_on_the_next_read(pg_url: str) -> None:
    """The database stays up but every connection of this store dies (pg_terminate_backend,
    as a failover or an operator does): the next read reconnects and succeeds."""
    store = PostgresStore(pg_url + "?application_name=killed")
    try:
        store.add_user(User(id="u1", address="u1@x.example", display_name="One"))
        time.sleep(FRESH_CONNECTION + 0.1)
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'killed'"
            ).fetchone()
        assert killed and killed[0] >= 1
        found = store.serving("u1@x.example")
        assert found is not None and found.user.id == "u1"
    finally:
        store.close()


@pytest.mark.slow
def test_serve_answers_503_while_down_and_serves_the_first_miss_after(
    home: Path, pg_url: str, proxy: PgProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERPHOTO_STORE_URL", pg_url)
    seed(home)
    node, base = start_server(home, {"USERPHOTO_STORE_URL": proxy.url(pg_url.rsplit("/", 1)[1])})
    client = httpx.Client(base_url=base, timeout=10)
    photo = f"/v1/users/{addr('ada')}/photo"
    try:
        assert client.get(photo, params={"size": 96}).status_code == 200  # cached now
        time.sleep(FRESH_CONNECTION + 0.1)
        proxy.down()
        for size in (48, 64, 120):  # misses: never asked before
            started = time.monotonic()
            miss = client.get(photo, params={"size": size})
            took = time.monotonic() - started
            assert miss.status_code == 503 and int(miss.headers["retry-after"]) > 0
            assert took < PROMPT, took
            assert client.get(photo, params={"size": 96}).status_code == 200  # from cache
            time.sleep(1)
        proxy.up()
        first = client.get(photo, params={"size": 240})  # the first miss after: no retry
        assert first.status_code == 200 and first.headers["x-photo-source"] == "hd"
        assert client.get(photo, params={"size": 48}).status_code == 200  # 503s not cached
    finally:
        client.close()
        stop_server(node)
