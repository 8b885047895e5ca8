"""Two real `userphoto serve` nodes, each with its own data folder, on one PostgreSQL
database: a session cookie made by one opens pages on the other (no file copied between
them), and after sign-out on one a copy of the cookie opens nothing on either."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.browser import csrf_of
from tests.support.server import seed, start_server, stop_server
from userphoto.web.session import COOKIE


def test_sessions_are_shared_and_ended_across_nodes_on_postgres(
    home: Path, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERPHOTO_STORE_URL", pg_url)
    tokens, *_ = seed(home)
    other_home = tmp_path / "node-b"  # nothing copied from node A's folder
    other_home.mkdir()
    recheck = {"USERPHOTO_WEB_SESSION_RECHECK": "0"}
    node_a, base_a = start_server(home, recheck)
    node_b, base_b = start_server(other_home, recheck)
    try:
        a = httpx.Client(base_url=base_a, timeout=10, follow_redirects=False)
        b = httpx.Client(base_url=base_b, timeout=10, follow_redirects=False)
        csrf = csrf_of(a.get("/signin").text)
        r = a.post("/signin", data={"csrf": csrf, "token": tokens["ada"]})
        assert r.status_code == 303, r.text
        copied = a.cookies[COOKIE]
        b.cookies.set(COOKIE, copied)  # the cookie copied to node B, nothing else
        page = b.get("/me")
        assert page.status_code == 200 and "ada@contoso.test" in page.text
        out = b.post("/signout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303
        for base in (base_a, base_b):
            with httpx.Client(base_url=base, cookies={COOKIE: copied}) as client:
                r = client.get("/me")
            assert r.status_code == 303 and r.headers["location"].startswith("/signin")
        assert not list(other_home.glob("*.key")) and not list(home.glob("*.key"))
    finally:
        stop_server(node_a)
        stop_server(node_b)
