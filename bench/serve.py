"""Serving benchmark: userphoto's photo hot path against nginx-light sending the same bytes.

Each server is pinned to core 0 with `taskset`, `wrk -t1` to core 1; all answer the same
rendition (JPEG bytes written to a file for nginx, `sendfile on`). userphoto is called as an
authenticated member, so the full path (token → viewer → cached answer) is measured.

1. Cached GET 200 and GET with `If-None-Match` → 304, for nginx, `userphoto serve` (granian,
   RSGI, access log on) and the same `PhotoServer` app on the other candidate servers:
   granian RSGI without the access log, granian ASGI, uvicorn + httptools (ASGI); and
   granian with a do-nothing RSGI app answering the same bytes (`bench.common.noop`): the
   ceiling of any app on granian, measured in the same run. Each round also prints our
   CPU per cached hit over the do-nothing app's (goal: at most 1.15×).
2. Cold misses: a fresh server per round, measured once /readyz says ready, asked for
   distinct users of 30,000 for 2 s (each at most once: more than 10,000 misses at the
   rates seen here), against nginx serving 30,000 distinct files the same way, and against
   the floor of a miss: the do-nothing app's CPU per request (measured right after, in the
   same round) plus the bare SQL read of the miss's one query (goal: at most 2× the floor).
3. Cached GETs from one client while 32 clients ask for random uncached
   `/avatar/<hash>?d=identicon&s=2048`: p99 against the unloaded p99.

    .venv/bin/python -m bench.serve [--duration 10] [--rounds 3] [--size 240] [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import (
    ADDRESS,
    BIN,
    NGINX_CONF,
    NOOP_BODY,
    NOOP_TARGET,
    ROOT,
    check_answers,
    free_port,
    group_cpu,
    parse,
    prepare_serving,
    stop,
    wait_http,
    wait_ready,
    wrk,
)
from bench.common import start_pinned as start


def granian(interface: str, *target: str) -> list[str]:
    """A granian command line for an app factory, as the candidates are started."""
    return [
        "granian", "--interface", interface, "--factory", "--loop", "uvloop",
        "--log-level", "warning", "--no-ws", *target,
    ]  # fmt: skip


COLD_USERS = 30_000  # more than 2 s of misses at any rate seen here


def wrk_script(tmp: Path, name: str, body: str) -> Path:
    path = tmp / f"{name}.lua"
    path.write_text(body)
    return path


def wrk_raw(args: list[str]) -> str:
    cmd = ["taskset", "-c", "1", "wrk", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def p99_ms(out: str) -> float:
    """The 99th percentile latency from `wrk --latency` output, in ms."""
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert m, out
    return float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]


COLD_LUA = """
local n = -1
request = function()
  n = n + 1
  return wrk.format("GET", string.format("{prefix}%d{suffix}", n % {count}), {headers})
end
"""

IDENTICON_LUA = """
math.randomseed(os.time())
local hex = "0123456789abcdef"
request = function()
  local t = {}
  for i = 1, 32 do
    local k = math.random(1, 16)
    t[i] = hex:sub(k, k)
  end
  return wrk.format("GET", "/avatar/" .. table.concat(t) .. "?d=identicon&s=2048")
end
"""


def lua_headers(headers: dict[str, str]) -> str:
    return "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()) + "}"


def cold_round(
    tmp: Path,
    env: dict[str, str],
    nginx_port: int,
    auth_header: dict[str, str],
    size: int,
    noop: tuple[str, int],
    users: int = COLD_USERS,
) -> tuple[float, float, int, float, float]:
    """(userphoto misses/s, nginx distinct files/s, userphoto requests made, userphoto CPU µs
    per miss, the do-nothing app's CPU µs per request) for one round. `noop`: the do-nothing
    app's URL and process group, measured right after the misses (the floor's first half)."""
    port = free_port()
    proc = start([str(BIN / "userphoto"), "serve", "--port", str(port)], env)
    try:
        wait_ready(port)
        before = group_cpu(proc.pid)
        ours = wrk_script(
            tmp,
            "cold-userphoto",
            COLD_LUA.format(
                prefix="/v1/users/cold",
                suffix=f"@bench.example/photo?size={size}",
                count=users,
                headers=lua_headers(auth_header),
            ),
        )
        # 2 s: fewer requests than users, so every request is a miss (checked below).
        out = wrk_raw(["-t1", "-c64", "-d2s", "-s", str(ours), f"http://127.0.0.1:{port}"])
        spent = group_cpu(proc.pid) - before
    finally:
        stop(proc)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    count = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    if "Non-2xx" in out:
        raise SystemExit(f"cold misses saw errors:\n{out}")
    theirs = wrk_script(
        tmp,
        "cold-nginx",
        COLD_LUA.format(prefix="/cold/", suffix=".jpg", count=users, headers="{}"),
    )
    out = wrk_raw(["-t1", "-c64", "-d2s", "-s", str(theirs), f"http://127.0.0.1:{nginx_port}"])
    ref = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    before = group_cpu(noop[1])
    _rate, noop_count = wrk(noop[0], {}, 2)
    noop_us = (group_cpu(noop[1]) - before) / noop_count * 1e6
    return rate, ref, count, spent / count * 1e6, noop_us


def bare_read_us(home: Path, size: int, reads: int = 5_000) -> float:
    """CPU µs of the one SQL read a miss makes (`serving_sql`), alone: sqlite3 on the bench's
    database, the cold users' keys, no decoding. With the do-nothing app's cost per request
    it is a floor under any miss this stack can serve."""
    from userphoto.config import Settings
    from userphoto.store import serving_sql

    path = Settings.load(home).store_url.removeprefix("sqlite:///")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    keys = [f"cold{n}@bench.example" for n in range(reads)]
    started = time.process_time()
    for key in keys:
        db.execute(serving_sql.SQLITE_BY_KEY, serving_sql.params(key, size)).fetchone()
    spent = time.process_time() - started
    db.close()
    return spent / reads * 1e6


def loaded_p99(
    tmp: Path, env: dict[str, str], url: str, headers: dict[str, str], rounds: int
) -> list[tuple[float, float, float]]:
    """Per round: (unloaded p99 ms, loaded p99 ms, identicon requests/s) for cached GETs from
    one client, alone and while 32 clients ask for random uncached identicons at s=2048."""
    port = free_port()
    proc = start([str(BIN / "userphoto"), "serve", "--port", str(port)], env)
    url = url.replace("PORT", str(port))
    out = []
    try:
        wait_ready(port)
        wait_http(url, headers)
        args = ["-t1", "-c1", "--latency"]
        for k, v in headers.items():
            args += ["-H", f"{k}: {v}"]
        script = wrk_script(tmp, "identicon", IDENTICON_LUA)
        for _ in range(rounds):
            quiet = p99_ms(wrk_raw([*args, "-d5s", url]))
            flood = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    "1",
                    "wrk",
                    "-t1",
                    "-c32",
                    "-d7s",
                    "-s",
                    str(script),
                    f"http://127.0.0.1:{port}",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(1)
            loaded = p99_ms(wrk_raw([*args, "-d5s", url]))
            flood_out, _ = flood.communicate()
            rate = float(re.search(r"Requests/sec:\s+([\d.]+)", flood_out)[1])  # type: ignore[index]
            out.append((quiet, loaded, rate))
    finally:
        stop(proc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument(
        "--only", choices=["cached", "cold", "load"], action="append", help="parts to run"
    )
    parser.add_argument("--cold-users", type=int, default=COLD_USERS, help=argparse.SUPPRESS)
    quick = {"duration": 1, "rounds": 1, "only": ["cached", "cold"], "cold_users": 3_000}
    args = parse(parser, quick)
    parts = set(args.only or ["cached", "cold", "load"])
    if not (shutil.which("nginx") and shutil.which("wrk")):
        raise SystemExit("needs nginx-light and wrk (apt-get install nginx-light wrk)")

    tmp = Path(tempfile.mkdtemp(prefix="userphoto-bench-"))
    tmp.chmod(0o755)  # nginx workers drop to an unprivileged user when started as root
    home = tmp / "home"
    token, data = prepare_serving(home, args.size, args.cold_users)
    (tmp / "www").mkdir()
    (tmp / "www" / "photo.jpg").write_bytes(data)
    (tmp / "www" / "cold").mkdir()
    for n in range(args.cold_users):
        (tmp / "www" / "cold" / f"{n}.jpg").write_bytes(data)
    env = {**os.environ, "USERPHOTO_HOME": str(home)}
    quiet_env = {**env, "USERPHOTO_SERVER_ACCESS_LOG": "off"}
    auth_header = {"Authorization": f"Bearer {token}"}
    photo = f"/v1/users/{ADDRESS}/photo?size={args.size}"
    factory = "userphoto.api.run:create_app"

    # All servers run at once, pinned to core 0, and are measured in alternation, so load
    # from anything else on the machine hits each of them alike.
    procs: list[subprocess.Popen] = []
    targets: dict[str, tuple[str, dict[str, str]]] = {}
    rounds: list[dict[str, dict[str, tuple[float, float]]]] = []
    cold: list[tuple[float, float, int, float, float]] = []
    load: list[tuple[float, float, float]] = []
    try:
        port = free_port()
        nginx_port = port
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=port))
        procs.append(start(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]))
        targets["nginx static file"] = (f"http://127.0.0.1:{port}/photo.jpg", {})
        candidates: list[tuple[str, list[str], dict[str, str]]] = [
            ("userphoto serve (granian RSGI, access log on)", ["userphoto", "serve"], env),
            ("granian RSGI, access log off", ["userphoto", "serve"], quiet_env),
            (
                "granian ASGI (same app)",
                granian("asgi", factory),
                quiet_env,
            ),
            (
                # The ceiling: granian with an app that does nothing but answer the same bytes.
                "granian RSGI, do-nothing app (ceiling)",
                granian("rsgi", "--working-dir", str(ROOT), NOOP_TARGET),
                {**quiet_env, NOOP_BODY: str(tmp / "www" / "photo.jpg")},
            ),
            (
                "uvicorn + httptools (same app)",
                [
                    "uvicorn",
                    "--factory",
                    "--http",
                    "httptools",
                    "--loop",
                    "uvloop",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                    "--lifespan",
                    "off",
                    factory,
                ],
                quiet_env,
            ),
        ]
        noop_name = "granian RSGI, do-nothing app (ceiling)"
        if "cached" not in parts:  # the do-nothing app still measures the floor of a miss
            candidates = [c for c in candidates if c[0] == noop_name]
        for name, cmd, cenv in candidates:
            port = free_port()
            if cmd[0] == "userphoto":
                cmd = [*cmd, "--port", str(port)]
            else:
                cmd = [*cmd, "--port", str(port), "--host", "127.0.0.1"]
            procs.append(start([str(BIN / cmd[0]), *cmd[1:]], cenv))
            targets[name] = (f"http://127.0.0.1:{port}{photo}", auth_header)
        pgids = dict(zip(targets, (p.pid for p in procs), strict=True))
        noop_target = (targets[noop_name][0], pgids[noop_name])
        if "cached" in parts:
            etags = {name: check_answers(name, url, h) for name, (url, h) in targets.items()}
            # Throughput, and the server's own CPU time per request (its process group's
            # utime + stime): the second is what each server would manage with a core to
            # itself, and far steadier than req/s when other work shares the machine.
            for _ in range(args.rounds):
                result: dict[str, dict[str, tuple[float, float]]] = {n: {} for n in targets}
                for case in ("200", "304"):
                    for name, (url, h) in targets.items():
                        extra = {"If-None-Match": etags[name]} if case == "304" else {}
                        before = group_cpu(pgids[name])
                        rate, count = wrk(url, {**h, **extra}, args.duration)
                        cpu_us = (group_cpu(pgids[name]) - before) / count * 1e6
                        result[name][case] = (rate, cpu_us)
                rounds.append(result)
        else:
            for url, h in targets.values():
                wait_http(url, h, timeout=60)
        if "cold" in parts:
            for _ in range(args.rounds):
                cold.append(
                    cold_round(
                        tmp, env, nginx_port, auth_header, args.size, noop_target, args.cold_users
                    )
                )
            read_us = bare_read_us(home, args.size)
        if "load" in parts:
            load = loaded_p99(tmp, env, f"http://127.0.0.1:PORT{photo}", auth_header, args.rounds)
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"rendition {args.size}px, {len(data):,} bytes; wrk -t1 -c64 -d{args.duration}s x "
        f"{args.rounds} alternating rounds; servers on core 0, wrk on core 1; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    ref = "nginx static file"
    if rounds:
        print(
            "| server | case | req/s (best) | req/s ratio (median) | server CPU µs/req (median) "
            "| CPU-efficiency ratio |"
        )
        print("|---|---|---|---|---|---|")
        for name in targets:
            for case in ("200", "304"):
                best = max(r[name][case][0] for r in rounds)
                ratio = statistics.median(r[name][case][0] / r[ref][case][0] for r in rounds)
                cpu = statistics.median(r[name][case][1] for r in rounds)
                ref_cpu = statistics.median(r[ref][case][1] for r in rounds)
                print(
                    f"| {name} | {case} | {best:,.0f} | {ratio:.2f} | {cpu:.1f} "
                    f"| {ref_cpu / cpu:.2f} |"
                )
    if rounds:
        # Cached hits against the do-nothing app, per round (goal: at most 1.15x its CPU).
        print()
        print("| cached hit CPU / do-nothing app's CPU | case | median | spread (rounds) |")
        print("|---|---|---|---|")
        for name in (
            "userphoto serve (granian RSGI, access log on)",
            "granian RSGI, access log off",
        ):
            for case in ("200", "304"):
                per = [r[name][case][1] / r[noop_name][case][1] for r in rounds]
                print(
                    f"| {name} | {case} | **{statistics.median(per):.2f}×** "
                    f"| {min(per):.2f}–{max(per):.2f}× |"
                )
    if cold:
        print()
        # The floor: no miss can cost less than granian calling a do-nothing app plus the
        # bare store read, both measured in the same round (goal: a miss at most 2x it).
        print(
            "| cold misses (2 s per round, each of 30,000 users at most once) | userphoto req/s | "
            "nginx distinct files req/s | ratio | userphoto CPU µs per miss | do-nothing app "
            "µs + bare read µs = floor | miss CPU / floor | requests |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for n, (rate, ref_rate, count, cpu_us, noop_us) in enumerate(cold, 1):
            flag = "" if count <= args.cold_users else " (some were hits!)"
            floor = noop_us + read_us
            print(
                f"| round {n} | {rate:,.0f} | {ref_rate:,.0f} | {rate / ref_rate:.2f} "
                f"| {cpu_us:.0f} | {noop_us:.1f} + {read_us:.1f} = {floor:.1f} "
                f"| {cpu_us / floor:.2f}× | {count:,}{flag} |"
            )
        ratio = statistics.median(c[0] / c[1] for c in cold)
        per = [c[3] / (c[4] + read_us) for c in cold]
        print(
            f"| median | | | {ratio:.2f} | {statistics.median(c[3] for c in cold):.0f} "
            f"| {statistics.median(c[4] for c in cold) + read_us:.1f} "
            f"| **{statistics.median(per):.2f}×** ({min(per):.2f}–{max(per):.2f}×) | |"
        )
    if load:
        print()
        print(
            "| cached GET, 1 client (5 s each) | p99 alone | p99 with 32 identicon clients "
            "| identicon req/s | ratio (goal < 5×) |"
        )
        print("|---|---|---|---|---|")
        for n, (quiet, loaded, rate) in enumerate(load, 1):
            print(
                f"| round {n} | {quiet:.2f} ms | {loaded:.2f} ms | {rate:,.0f} "
                f"| {loaded / quiet:.1f}× |"
            )
        ratio = statistics.median(loaded / quiet for quiet, loaded, _r in load)
        print(f"| median | | | | {ratio:.1f}× |")


if __name__ == "__main__":
    main()
