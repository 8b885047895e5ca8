"""Scale-out benchmark: the PostgreSQL store and several serving nodes, on this machine.

Four figures, each with its reference from the same run:

1. `userphoto doctor` over a generated organization on PostgreSQL (default 1,000,000 users;
   goal < 30 s), against one bare SQL read of the same joined rows and against the old
   per-row walk (every status row through the rule in Python), in the same run.
2. Cold-miss photo GETs per second (every request a user not asked before, so every answer
   is built from the store): PostgreSQL against SQLite, same users, same client.
3. Cached-GET throughput of two `serve` nodes on one database against one node
   (goal >= 1.6x aggregate), wrk -t1 -c64 per node, alternating rounds, median ratio.
4. Cross-node propagation: a photo uploaded through node A, polled on node B until B serves
   the new bytes; p50 / p95 over the rounds (goal p95 <= 0.5 s).

The organization for (1) is seeded in bulk with COPY (adding a million users one API call at a
time is not what is measured): 70% with an HD photo row, 15% with a directory photo.

    .venv/bin/python -m bench.scale [--doctor-users 1000000] [--miss-users 2000]
        [--duration 5] [--rounds 30] [--node-rounds 3] [--pg postgresql://postgres@127.0.0.1:5432]
        [--doctor-url URL-of-a-database-seeded-before] [--skip doctor http] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from bench.common import BIN, PG_SERVER, group_cpu, parse, pg_database, serve, stop
from bench.common import wrk as common_wrk
from userphoto import auth
from userphoto.app import App
from userphoto.config import Settings
from userphoto.demo import portrait
from userphoto.model import PhotoState, User, Visibility
from userphoto.photos import put_photo
from userphoto.store.base import address_hashes


# --- 1. doctor over a million users --------------------------------------------------------------
def seed_org(url: str, users: int) -> None:
    from userphoto.store.postgres import PostgresStore

    PostgresStore(url).close()  # the schema
    rng = random.Random(7)
    now = datetime.now(UTC)
    sizes = [48, 64, 96, 120, 240, 360, 432, 504, 648]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY users (id, address, display_name, account, picture, picture_url, visibility, "
            "removal_record, directory_gone, source, attributes, created, updated) FROM STDIN"
        ) as copy:
            for i in range(users):
                r = rng.random()
                account = "sd_only" if r < 0.02 else "disabled" if r < 0.03 else "hd"
                picture = (
                    "hidden" if 0.03 <= r < 0.04 else "default" if 0.04 <= r < 0.045 else "photo"
                )
                copy.write_row(
                    (
                        f"u{i:07d}",
                        f"user{i:07d}@big.example",
                        f"User {i}",
                        account,
                        picture,
                        None,
                        "organization",
                        None,
                        False,
                        "directory",
                        "{}",
                        now,
                        now,
                    )
                )
        with cur.copy("COPY address_hashes (digest, user_id) FROM STDIN") as copy:
            for i in range(users):
                for digest in address_hashes(f"user{i:07d}@big.example"):
                    copy.write_row((digest, f"u{i:07d}"))
        with cur.copy(
            "COPY photos (user_id, version, state, crop, source_hash, source_format, "
            "source_width, source_height, sizes, created, actor, via) FROM STDIN"
        ) as copy:
            for i in range(users):
                if rng.random() < 0.7:
                    s = sizes if rng.random() > 0.03 else sizes[:4]
                    copy.write_row(
                        (
                            f"u{i:07d}",
                            1,
                            "saved",
                            "0,0,800",
                            "h",
                            "JPEG",
                            800,
                            800,
                            s,
                            now,
                            "b",
                            "b",
                        )
                    )
        with cur.copy("COPY directory_thumbnails FROM STDIN") as copy:
            for i in range(users):
                if rng.random() < 0.15:
                    bad = rng.random() < 0.2
                    copy.write_row(
                        (
                            f"u{i:07d}",
                            None if bad else b"jpeg",
                            "raw",
                            5000,
                            96,
                            96,
                            "not an image" if bad else None,
                            now,
                            False,
                        )
                    )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def row_walk(url: str) -> tuple[float, float]:
    """The doctor before issue 12's rework (the reference): every user's status row streamed
    into Python and the rule applied per row. Seconds (wall, client CPU) for the walk alone."""
    from userphoto.doctor import user_findings
    from userphoto.store.postgres import PostgresStore

    store = PostgresStore(url)
    try:
        cpu = time.process_time()
        start = time.perf_counter()
        for status in store.iter_photo_status():
            user_findings(status)
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        store.close()


def grouped_query_ms(url: str) -> float:
    """The database's own time for the doctor's grouped query (EXPLAIN ANALYZE)."""
    from userphoto.store import facts_sql

    with psycopg.connect(url) as conn:
        sql = facts_sql.groups_sql("postgresql", "10")
        plan = conn.execute(f"EXPLAIN (ANALYZE, TIMING OFF) {sql}").fetchall()
    (ms,) = [float(r[0].split()[2]) for r in plan if r[0].startswith("Execution Time")]
    return ms


def doctor(url: str, users: int, seeded: bool = False) -> None:
    if not seeded:
        start = time.perf_counter()
        seed_org(url, users)
        print(f"seeded {users:,} users on PostgreSQL in {time.perf_counter() - start:.1f}s")
    print(f"load average before the figures: {os.getloadavg()}")
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        with conn.cursor(name="bare") as cur:  # server-side cursor: stream the joined rows
            cur.itersize = 5000
            cur.execute(
                "SELECT * FROM users u LEFT JOIN photos p ON p.user_id = u.id "
                "AND p.state = 'saved' LEFT JOIN directory_thumbnails d ON d.user_id = u.id "
                'ORDER BY u.address COLLATE "C"'
            )
            for _ in cur:
                pass
        bare = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        Settings.load(Path(tmp)).write_default()  # a data folder, its store given below
        env = {**os.environ, "USERPHOTO_HOME": tmp, "USERPHOTO_STORE_URL": url}
        before = os.times()
        start = time.perf_counter()
        proc = subprocess.run(
            [str(BIN / "userphoto"), "doctor"], capture_output=True, text=True, env=env
        )
        wall = time.perf_counter() - start
        after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode not in (0, 1) or not lines:
        raise SystemExit(f"doctor failed (exit {proc.returncode}): {proc.stderr.strip()}")
    print("\n".join(lines[:6]))
    query = grouped_query_ms(url) / 1000
    walk, walk_cpu = row_walk(url)
    print(
        f"doctor over {users:,} users on PostgreSQL: {wall:.2f}s wall, {cpu:.2f}s CPU in the "
        f"command (exit {proc.returncode}; goal < 30 s); its grouped query alone "
        f"{query:.2f}s in the database (EXPLAIN ANALYZE)\n"
        f"  reference, same run: bare SQL read of the joined rows {bare:.2f}s -> doctor is "
        f"{wall / bare:.2f}x that; the old per-row walk (status rows + rule in Python) "
        f"{walk:.2f}s wall, {walk_cpu:.2f}s client CPU -> {walk / wall:.1f}x the new doctor\n"
        f"  load average after: {os.getloadavg()}"
    )


# --- shared: an organization with photos for the HTTP figures --------------------------------
def seed_photos(home: Path, store_url: str, users: int) -> str:
    """`users` users with saved photos (a few distinct renders); returns an admin token."""
    os.environ["USERPHOTO_STORE_URL"] = store_url
    app = App(Settings.load(home))
    try:
        app.settings.write_default()
        store = app.store
        store.add_users(
            [
                User(
                    id=f"m{i:06d}",
                    address=f"m{i}@big.example",
                    display_name=f"M {i}",
                    visibility=Visibility.EVERYONE,
                )
                for i in range(users)
            ]
        )
        who = User(id="x", address="x@x.example", display_name="x")
        renders = [app.photos.render(who, portrait(i, 700, 700)) for i in range(8)]
        with store.batch():
            for i in range(users):
                put_photo(store, f"m{i:06d}", renders[i % 8], PhotoState.SAVED, actor="b", via="b")
        return auth.create_token(store, "it@big.example", admin=True)[1]
    finally:
        app.close()
        del os.environ["USERPHOTO_STORE_URL"]


def cold_misses(base: str, users: int, threads: int = 8) -> float:
    """Requests per second, each for a user not asked before (every answer built fresh)."""
    todo = iter(range(users))
    lock = threading.Lock()
    errors: list[int] = []

    def work() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                r = client.get(f"/v1/users/m{i}@big.example/photo?size=240")
                if r.status_code != 200:
                    errors.append(r.status_code)

    start = time.perf_counter()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise SystemExit(f"cold misses answered {sorted(set(errors))}")
    return users / seconds


def wrk(url: str, duration: int) -> float:
    """Requests per second of `wrk -t1 -c64` (not pinned: the nodes share both cores)."""
    return common_wrk(url, {}, duration, core=None)[0]


def wrk_together(urls: list[str], duration: int) -> float:
    rates: list[float] = []
    threads = [threading.Thread(target=lambda u=u: rates.append(wrk(u, duration))) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(rates)


def propagation(a: str, b: str, token: str, rounds: int) -> list[float]:
    path = "/v1/users/m0@big.example/photo?size=96"
    put = "/v1.0/users/m0@big.example/photo/$value"
    headers = {"Authorization": f"Bearer {token}"}
    took: list[float] = []
    with httpx.Client(base_url=a, timeout=30) as ca, httpx.Client(base_url=b, timeout=30) as cb:
        for i in range(rounds):
            before = cb.get(path).headers["etag"]
            body = portrait(100 + i, 300, 300)
            r = ca.put(put, content=body, headers={**headers, "Content-Type": "image/jpeg"})
            assert r.status_code == 200, r.text
            done = time.perf_counter()
            new = ca.get(path).headers["etag"]
            assert new != before
            while cb.get(path).headers["etag"] != new:
                if time.perf_counter() - done > 10:
                    raise SystemExit("node B never served the new photo")
                time.sleep(0.002)
            took.append(time.perf_counter() - done)
    return took


def p(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if len(values) > 1
        else values[0]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doctor-users", type=int, default=1_000_000)
    parser.add_argument("--miss-users", type=int, default=2_000)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=30, help="uploads timed for propagation")
    parser.add_argument("--node-rounds", type=int, default=3, help="one-vs-two-node rounds")
    parser.add_argument("--pg", default=PG_SERVER)
    parser.add_argument("--skip", nargs="*", default=[], choices=["doctor", "http"])
    parser.add_argument(
        "--doctor-url",
        help="a database this script seeded before (kept): measure doctor there, no seeding",
    )
    quick = {
        "doctor_users": 20_000,
        "miss_users": 200,
        "duration": 1,
        "rounds": 5,
        "node_rounds": 1,
    }
    args = parse(parser, quick)
    if args.doctor_url and "doctor" not in args.skip:
        doctor(args.doctor_url, args.doctor_users, seeded=True)
    elif "doctor" not in args.skip:
        with pg_database(args.pg) as url:
            doctor(url, args.doctor_users)
    if "http" in args.skip:
        return
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk (scripts/setup.sh installs it)")
    with pg_database(args.pg) as url, tempfile.TemporaryDirectory() as tmp:
        sq_home, pg_home = Path(tmp, "sqlite"), Path(tmp, "pg")
        sq_home.mkdir()
        pg_home.mkdir()
        sq_url = f"sqlite:///{sq_home / 'userphoto.db'}"
        seed_photos(sq_home, sq_url, args.miss_users)
        token = seed_photos(pg_home, url, args.miss_users)
        rates = {}
        for name, home, store_url in (("sqlite", sq_home, sq_url), ("postgresql", pg_home, url)):
            proc, base = serve(home, store_url)
            try:
                rates[name] = cold_misses(base, args.miss_users)
            finally:
                stop(proc)
        print(
            f"cold-miss GETs ({args.miss_users:,} distinct users, 240 px, 8 client threads): "
            f"PostgreSQL {rates['postgresql']:,.0f}/s, SQLite {rates['sqlite']:,.0f}/s -> "
            f"PostgreSQL is {rates['postgresql'] / rates['sqlite']:.2f}x SQLite"
        )
        node_a, a = serve(pg_home, url)
        node_b, b = serve(pg_home, url)
        try:
            cached = "/v1/users/m1@big.example/photo?size=96"
            for base in (a, b):
                wrk(base + cached, 1)  # warm: the answer is cached on each node
            # Alternating rounds, median ratio: the 2 cores are shared with everything else.
            # Also the nodes' own CPU per request, one node against two: equal means the
            # nodes share no work on this path, so throughput grows with the cores given.
            ratios, costs = [], []
            for n in range(1, args.node_rounds + 1):
                spent = group_cpu(node_a.pid)
                one = wrk(a + cached, args.duration)
                one_us = (group_cpu(node_a.pid) - spent) / (one * args.duration) * 1e6
                spent = group_cpu(node_a.pid) + group_cpu(node_b.pid)
                two = wrk_together([a + cached, b + cached], args.duration)
                spent = group_cpu(node_a.pid) + group_cpu(node_b.pid) - spent
                two_us = spent / (two * args.duration) * 1e6
                ratios.append(two / one)
                costs.append(two_us / one_us)
                print(
                    f"cached GETs, round {n}, wrk -t1 -c64 -d{args.duration}s per node: one "
                    f"node {one:,.0f}/s ({one_us:.1f} µs node CPU per request), two nodes "
                    f"{two:,.0f}/s aggregate ({two_us:.1f} µs) -> {two / one:.2f}x"
                )
            print(
                f"two nodes vs one, median of {len(ratios)} rounds: "
                f"{statistics.median(ratios):.2f}x (goal >= 1.6x; {os.cpu_count()} cores "
                "shared by the nodes, both wrk clients and PostgreSQL); node CPU per request, "
                f"two nodes against one: {statistics.median(costs):.2f}x"
            )
            took = propagation(a, b, token, args.rounds)
            print(
                f"cross-node propagation over {args.rounds} uploads: p50 "
                f"{p(took, 50) * 1000:.0f} ms, p95 {p(took, 95) * 1000:.0f} ms, max "
                f"{max(took) * 1000:.0f} ms (goal p95 <= 500 ms)"
            )
        finally:
            stop(node_a)
            stop(node_b)


if __name__ == "__main__":
    main()
