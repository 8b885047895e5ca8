"""Two real `userphoto serve` nodes on one PostgreSQL database, over real HTTP.

An upload through node A is served by node B within half a second; B converges after its
database connections are killed; while the database is unreachable for 5 s (a real TCP proxy
cutting every connection) B keeps answering from its cache, answers misses with 503 +
Retry-After and never 500, and recovers by itself.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.postgres import SERVER, PgProxy
from tests.support.server import addr, seed, start_server, stop_server
from userphoto.demo import portrait


def sha(r: httpx.Response) -> str:
    return hashlib.sha256(r.content).hexdigest()


@pytest.mark.slow
def test_two_nodes_on_postgres(home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERPHOTO_STORE_URL", pg_url)
    tokens, *_ = seed(home)
    dbname = pg_url.rsplit("/", 1)[1]
    proxy = PgProxy()
    node_a, base_a = start_server(home)
    node_b, base_b = start_server(
        home, {"USERPHOTO_STORE_URL": proxy.url(dbname) + "?application_name=node-b"}
    )
    a = httpx.Client(base_url=base_a, timeout=10)
    b = httpx.Client(base_url=base_b, timeout=10)
    kim = {"Authorization": f"Bearer {tokens['kim']}"}
    try:
        # --- an upload through A is served by B within 0.5 s -----------------------------------
        photo = f"/v1/users/{addr('kim')}/photo?size=240"
        before = b.get(photo, headers=kim)  # kim has no photo yet: B caches her initials
        assert before.headers.get("x-photo-source") != "hd"
        put = a.put(
            f"/v1.0/users/{addr('kim')}/photo/$value",
            content=portrait(3, 500, 500),
            headers={**kim, "Content-Type": "image/jpeg"},
        )
        assert put.status_code == 200, put.text
        uploaded = time.monotonic()
        on_a = a.get(photo, headers=kim)
        assert on_a.status_code == 200 and on_a.headers["x-photo-source"] == "hd"
        while sha(on_b := b.get(photo, headers=kim)) != sha(on_a):
            assert time.monotonic() - uploaded < 0.5, "node B still serves the old answer"
            time.sleep(0.01)
        assert on_b.headers["x-photo-source"] == "hd"

        # --- B's database connections are killed; a change made meanwhile still reaches B ----
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'node-b'"
            ).fetchone()
            assert killed and killed[0] >= 1
        changed = a.put(
            f"/v1.0/users/{addr('kim')}/photo/$value",
            content=portrait(4, 400, 400),
            headers={**kim, "Content-Type": "image/jpeg"},
        )
        assert changed.status_code == 200
        new = sha(a.get(photo, headers=kim))
        deadline = time.monotonic() + 5
        while sha(b.get(photo, headers=kim)) != new:
            assert time.monotonic() < deadline, "node B did not converge after reconnecting"
            time.sleep(0.05)

        # --- the database goes away for 5 s --------------------------------------------------
        cached = f"/v1/users/{addr('ada')}/photo?size=96"
        assert b.get(cached).status_code == 200  # in B's cache now
        proxy.down()
        statuses: set[int] = set()
        retry_after: set[str] = set()
        cached_ok = 0
        down_until = time.monotonic() + 5
        while time.monotonic() < down_until:
            hit = b.get(cached)
            statuses.add(hit.status_code)
            cached_ok += hit.status_code == 200
            miss = b.get(f"/v1/users/{addr('ned')}/photo?size=48")  # never asked before
            statuses.add(miss.status_code)
            if miss.status_code == 503:
                retry_after.add(miss.headers.get("retry-after", ""))
            time.sleep(0.2)
        assert 500 not in statuses and statuses <= {200, 503}
        assert cached_ok >= 5  # cached answers kept flowing
        assert 503 in statuses and retry_after and "" not in retry_after
        proxy.up()
        deadline = time.monotonic() + 15
        while b.get(f"/v1/users/{addr('ned')}/photo?size=48").status_code != 200:
            assert time.monotonic() < deadline, "node B did not recover after the database returned"
            time.sleep(0.2)
        assert a.get(f"/v1/users/{addr('ned')}/photo?size=48").status_code == 200
    finally:
        a.close()
        b.close()
        stop_server(node_a)
        stop_server(node_b)
        proxy.down()
