"""Miss builds in-process: one store read per key (`Store.serving`) against the single reads
it replaced (`tests/support/serving.py`: find the user, photo, directory slot, rendition).

Same run, same users, same process, on SQLite and on PostgreSQL: each build is the whole
answer a cache miss makes (`api.server.guarded` on the native surface: the store read, the
resolution rule, the answer with its headers), for a member asking
`/v1/users/cold{N}@bench.example/photo?size=240`, every user once per pass. Passes of the
two paths alternate (the machine is shared and noisy); the figure per path is the median
pass. CPU µs are this process's (`time.process_time`); for PostgreSQL the database's own
work is in its backend, so wall µs are printed too. Also: an unknown address against an
existing hidden user, asked anonymously (issue 11: the same answer and the same work).

With `--http`, also a real `userphoto serve` on the SQLite store: its CPU µs per cold miss
over HTTP (every user once, 8 client threads) against its CPU µs per cached answer of the
same URLs, so the build's share of a miss's whole cost shows.

    .venv/bin/python -m bench.misses [--users 2000] [--passes 5] [--http]
        [--pg postgresql://postgres@127.0.0.1:5432] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx

from bench.common import PG_SERVER, group_cpu, parse, pg_database, serve, stop
from tests.support.serving import serving_by_parts
from userphoto import auth
from userphoto.api.common import Req
from userphoto.api.native import PREFIX as NATIVE
from userphoto.api.server import PhotoServer, guarded
from userphoto.app import App
from userphoto.config import Settings
from userphoto.demo import portrait
from userphoto.imaging import Rendered
from userphoto.model import PhotoState, User, Viewer, ViewerKind, Visibility
from userphoto.photos import put_photo

ADDRESS = "reader@bench.example"
ANONYMOUS = ViewerKind.ANONYMOUS


def seed(app: App, users: int) -> str:
    """`users` people with a saved photo (every size), a hidden one, a reader; its token."""
    app.settings.write_default()
    reader = User(id="reader", address=ADDRESS, display_name="Reader")
    app.store.add_user(reader)
    rendered = app.photos.render(reader, portrait(8, 900, 900), None)
    rendered = Rendered(rendered.source, rendered.crop, rendered.renditions, rendered.thumbnail)
    cold = [
        User(id=f"cold-{n}", address=f"cold{n}@bench.example", display_name=f"Cold {n}")
        for n in range(users)
    ]
    hidden = User(
        id="hidden",
        address="hidden@bench.example",
        display_name="Hidden",
        visibility=Visibility.NOBODY,
    )
    with app.store.batch():
        app.store.add_users([*cold, hidden])
        for u in [*cold, hidden]:
            put_photo(app.store, u.id, rendered, PhotoState.SAVED, actor="bench", via="bench")
    return auth.create_token(app.store, ADDRESS)[1]


def timed(build: Callable[[int], object], count: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per build over `count` builds."""
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(count):
        build(n)
    return (
        (time.process_time() - cpu) / count * 1e6,
        (time.perf_counter() - wall) / count * 1e6,
    )


def measure(home: Path, users: int, passes: int) -> dict[str, tuple[float, float]]:
    app = App(Settings.load(home))
    token = seed(app, users)
    server = PhotoServer(app, poll=False)
    try:
        viewer = server.auth.from_header(f"Bearer {token}")
        assert viewer is not None
        surface = dict(server.surfaces)[NATIVE]
        store = app.store

        def build(path: str, who: Viewer = viewer) -> int:
            return guarded(surface, Req("GET", path, b"size=240", {}, who)).status

        def anonymous(path: str) -> bytes:
            answer = guarded(surface, Req("GET", path, b"size=240", {}, Viewer(ANONYMOUS)))
            return f"{answer.status} {answer.headers}".encode() + answer.body

        def cold(n: int) -> int:
            return build(f"{NATIVE}cold{n % users}@bench.example/photo")

        assert build(f"{NATIVE}cold0@bench.example/photo") == 200
        hidden, unknown = (
            f"{NATIVE}hidden@bench.example/photo",
            f"{NATIVE}nobody@bench.example/photo",
        )
        assert anonymous(hidden) == anonymous(unknown)  # one answer for both (issue 11)
        one_read = store.serving
        results: dict[str, list[tuple[float, float]]] = {}
        for _ in range(passes):
            for name, read in (
                ("before", partial(serving_by_parts, store)),
                ("after", one_read),
            ):
                store.serving = read  # type: ignore[method-assign]
                results.setdefault(name, []).append(timed(cold, users))
            store.serving = one_read  # type: ignore[method-assign]
            results.setdefault("hidden", []).append(timed(lambda _n: anonymous(hidden), users // 2))
            results.setdefault("unknown", []).append(
                timed(lambda _n: anonymous(unknown), users // 2)
            )
        return {
            name: (
                statistics.median(c for c, _w in runs),
                statistics.median(w for _c, w in runs),
            )
            for name, runs in results.items()
        }
    finally:
        server.close()
        app.close()


def over_http(home: Path, users: int) -> tuple[float, float]:
    """(server CPU µs per cold miss, per cached answer) of `userphoto serve` on `home`."""
    app = App(Settings.load(home))
    token = auth.create_token(app.store, ADDRESS)[1]
    app.close()
    proc, base = serve(home)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        clients = [httpx.Client(base_url=base, headers=headers, timeout=30) for _ in range(8)]

        def run() -> float:
            began = group_cpu(proc.pid)

            def part(k: int) -> None:
                for n in range(k, users, 8):
                    r = clients[k].get(f"/v1/users/cold{n}@bench.example/photo?size=240")
                    assert r.status_code == 200, r.status_code

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(part, range(8)))
            return (group_cpu(proc.pid) - began) / users * 1e6

        miss, hit = run(), run()  # the second pass finds every answer cached
        for c in clients:
            c.close()
        return miss, hit
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--pg", default=PG_SERVER)
    parser.add_argument("--http", action="store_true", help="also measure over HTTP")
    args = parse(parser, {"users": 200, "passes": 1, "http": True})
    figures: dict[str, dict[str, tuple[float, float]]] = {}
    http: tuple[float, float] | None = None
    with tempfile.TemporaryDirectory(prefix="userphoto-misses-") as tmp:
        os.environ.pop("USERPHOTO_STORE_URL", None)
        home = Path(tmp) / "sqlite"
        home.mkdir()
        os.environ["USERPHOTO_HOME"] = str(home)
        figures["SQLite"] = measure(home, args.users, args.passes)
        if args.http:
            http = over_http(home, args.users)
        with pg_database(args.pg) as url:
            home = Path(tmp) / "postgres"
            home.mkdir()
            os.environ["USERPHOTO_HOME"] = str(home)
            os.environ["USERPHOTO_STORE_URL"] = url
            try:
                figures["PostgreSQL"] = measure(home, args.users, args.passes)
            finally:
                os.environ.pop("USERPHOTO_STORE_URL", None)
    print(
        f"miss builds, {args.users} distinct users x {args.passes} passes, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "| store | single reads: CPU µs (wall) | one read: CPU µs (wall) | CPU ratio | "
        "hidden user µs | unknown address µs |"
    )
    print("|---|---|---|---|---|---|")
    for store, f in figures.items():
        (bc, bw), (ac, aw) = f["before"], f["after"]
        print(
            f"| {store} | {bc:.0f} ({bw:.0f}) | {ac:.0f} ({aw:.0f}) | {bc / ac:.2f}x | "
            f"{f['hidden'][0]:.0f} ({f['hidden'][1]:.0f}) | "
            f"{f['unknown'][0]:.0f} ({f['unknown'][1]:.0f}) |"
        )
    if http is not None:
        miss, hit = http
        print(
            f"\nuserphoto serve (SQLite), server CPU per request over HTTP: cold miss "
            f"{miss:.0f} µs, cached answer {hit:.0f} µs (the difference: the miss pool, the "
            "build and caching it)"
        )


if __name__ == "__main__":
    main()
