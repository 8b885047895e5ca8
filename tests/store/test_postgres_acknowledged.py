"""Every acknowledged answer is the truth, with real PostgreSQL whose connections die under a
running `userphoto serve`: an admin connection terminates the server's backends in a loop
(pg_terminate_backend, as a failover or an operator does) while uploads go on, and each
answer is checked against the store, one by one.

2xx: the version the answer names is stored, with the uploaded bytes' hash. 503: nothing was
stored, and the answer says when to retry. Nothing else (no 500). Every request, whatever its
fate, has its access-log line."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.images import noise_jpeg
from tests.support.postgres import SERVER, PgProxy
from tests.support.server import addr, seed, serve_log, start_server, stop_server
from userphoto.store.postgres import PostgresStore

UPLOADS = 40
VICTIM = "ack_victim"  # the serving process's application_name: only its backends die


def kill_loop(stop: threading.Event, killed: list[int]) -> None:
    rng = random.Random(7)
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        while not stop.is_set():
            row = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (VICTIM,),
            ).fetchone()
            killed.append(row[0] if row else 0)
            stop.wait(rng.uniform(0.02, 0.4))  # now and then, at any step of an upload


@pytest.mark.slow
def test_uploads_while_connections_die_answer_the_truth(home: Path, pg_url: str, monkeypatch):
    monkeypatch.setenv("USERPHOTO_STORE_URL", pg_url)
    tokens, *_ = seed(home)
    node, base = start_server(home, {"USERPHOTO_STORE_URL": f"{pg_url}?application_name={VICTIM}"})
    path = f"/v1/users/{addr('bob')}/photo"
    headers = {"Authorization": f"Bearer {tokens['admin']}", "Content-Type": "image/jpeg"}
    bodies = [noise_jpeg(320 + n) for n in range(UPLOADS)]
    answers: list[httpx.Response] = []
    stop = threading.Event()
    killed: list[int] = []
    killer = threading.Thread(target=kill_loop, args=(stop, killed), daemon=True)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            killer.start()
            for n, body in enumerate(bodies):
                answers.append(
                    client.put(path, content=body, headers={**headers, "X-Request-Id": f"up-{n}"})
                )
    finally:
        stop.set()
        killer.join(5)
        time.sleep(1.5)  # the access log is flushed at least once a second
        stop_server(node)
    assert sum(killed) > 0, "no connection was killed: the test proved nothing"

    store = PostgresStore(pg_url)
    try:
        history = {p.source_hash: p for p in store.photo_history("id-bob")}
    finally:
        store.close()
    statuses = []
    for n, (body, answer) in enumerate(zip(bodies, answers, strict=True)):
        digest = hashlib.sha256(body).hexdigest()
        statuses.append(answer.status_code)
        assert answer.headers.get("x-request-id") == f"up-{n}"
        if answer.status_code == 200:
            stored = history.get(digest)
            assert stored is not None, f"upload {n} answered 200 but is not stored"
            assert stored.version == answer.json()["version"]
        else:
            assert answer.status_code == 503, (n, answer.status_code, answer.text)
            assert int(answer.headers["retry-after"]) > 0
            assert digest not in history, f"upload {n} answered 503 but was stored"
    assert statuses.count(200) > 0, statuses
    print("answers:", {code: statuses.count(code) for code in set(statuses)}, "kills:", sum(killed))

    lines = [
        json.loads(line)
        for line in serve_log(home).read_text().splitlines()
        if line.startswith("{") and '"route"' in line
    ]
    logged = {line["request_id"]: line["status"] for line in lines if line["method"] == "PUT"}
    for n, status in enumerate(statuses):
        assert logged.get(f"up-{n}") == status, (n, status, logged.get(f"up-{n}"))


def wait_for_last_use(pg_url: str, seconds: float = 10) -> None:
    store = PostgresStore(pg_url)
    try:
        deadline = time.monotonic() + seconds
        while not any(t.last_used for t in store.list_tokens()):
            assert time.monotonic() < deadline, "the token's last use was never recorded"
            time.sleep(0.05)
    finally:
        store.close()


def test_a_commit_whose_acknowledgement_was_lost_is_read_back(home: Path, pg_url: str, monkeypatch):
    """The connection dies after COMMIT reached the database and before its reply came back
    (a TCP proxy drops the reply): the upload is stored, so the answer is 200, found by
    reading back; the next upload, with nothing lost, is a plain 200."""
    monkeypatch.setenv("USERPHOTO_STORE_URL", pg_url)
    tokens, *_ = seed(home)
    proxy = PgProxy()
    node, base = start_server(home, {"USERPHOTO_STORE_URL": proxy.url(pg_url.rsplit("/", 1)[1])})
    path = f"/v1/users/{addr('bob')}/photo"
    headers = {"Authorization": f"Bearer {tokens['admin']}", "Content-Type": "image/jpeg"}
    bodies = [noise_jpeg(300 + n) for n in range(3)]
    answers = []
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            # The token's first use is recorded by a background write: let it land first, so
            # the COMMIT whose reply is lost below is the upload's own.
            auth = {"Authorization": headers["Authorization"]}
            assert client.get(f"{path}/meta", headers=auth).status_code in (200, 404)
            wait_for_last_use(pg_url)
            for n, body in enumerate(bodies):
                proxy.lose_commit_replies = 1 if n < 2 else 0
                sent = {**headers, "X-Request-Id": f"lost-{n}"}
                answers.append(client.put(path, content=body, headers=sent))
                assert proxy.lose_commit_replies == 0  # the upload's COMMIT was the one lost
    finally:
        stop_server(node)
        proxy.down()
    assert proxy.lost == 2
    store = PostgresStore(pg_url)
    try:
        history = {p.source_hash: p for p in store.photo_history("id-bob")}
    finally:
        store.close()
    for n, (body, answer) in enumerate(zip(bodies, answers, strict=True)):
        assert answer.status_code == 200, (n, answer.status_code, answer.text)
        stored = history[hashlib.sha256(body).hexdigest()]
        assert stored.version == answer.json()["version"]
    # The server's own lines are structured, and name the request that caused them.
    text = serve_log(home).read_text()
    ours = [json.loads(line) for line in text.splitlines() if line.startswith('{"time"')]
    read_back = [line for line in ours if "read back: stored" in line.get("message", "")]
    assert {line["request_id"] for line in read_back} == {"lost-0", "lost-1"}
    assert all(line["level"] == "warning" for line in read_back)
    # Libraries' lines too (psycopg_pool discarding the cut connections).
    assert any(line.get("logger", "").startswith("psycopg") for line in ours)
    assert not [line for line in text.splitlines() if "connection" in line and line[0] != "{"]
