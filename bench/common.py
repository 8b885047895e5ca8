"""What the benchmarks share: ports, starting and stopping servers, CPU time and memory of a
process tree, throw-away PostgreSQL databases, wrk, percentiles and the `--quick` switch.

Benchmarks run as modules from the repository's root (`python -m bench.serve`), so `bench`,
`userphoto` and `tests.support` (the real test servers: slapd, Samba, the OpenID provider)
import without any change to `sys.path`.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtual environment's scripts: userphoto, granian
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"

QUICK_HELP = (
    "a short run (seconds, not minutes) that checks the benchmark works end to end; "
    "its figures are not the ones BENCHMARKS.md reports"
)


def parse(parser: argparse.ArgumentParser, quick: dict[str, Any]) -> argparse.Namespace:
    """Parse the command line, adding `--quick`: the given defaults for a short run.
    Options given on the command line still win over the quick defaults."""
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP)
    args = parser.parse_args()
    if args.quick:
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):  # not given: the quick value
                setattr(args, name, value)
    return args


# --- ports and servers --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, headers: dict[str, str], timeout: float = 15) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET, retried until the server listens."""
    deadline = time.time() + timeout
    while True:
        try:
            req = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(req, timeout=2) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def wait_ready(port: int, timeout: float = 30) -> None:
    """Until /readyz says ready: the image workers have started and the feed is followed,
    so their start-up is not measured as serving work."""
    deadline = time.time() + timeout
    while wait_http(f"http://127.0.0.1:{port}/readyz", {}, timeout)[0] != 200:
        if time.time() > deadline:
            raise SystemExit("the server did not become ready")
        time.sleep(0.1)


def start_pinned(
    cmd: list[str], env: dict[str, str] | None = None, *, stderr: Any = subprocess.DEVNULL
) -> subprocess.Popen:
    """A server pinned to core 0 (wrk runs on core 1), in a process group of its own."""
    return subprocess.Popen(
        ["taskset", "-c", "0", *cmd],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,  # by default the access log is written (its cost counted), not kept
        start_new_session=True,
    )


def serve(home: Path, store_url: str | None = None) -> tuple[subprocess.Popen, str]:
    """`userphoto serve` on `home` (and `store_url`, if given) on a free loopback port, once
    /readyz says ready; (process, base URL)."""
    port = free_port()
    env = {**os.environ, "USERPHOTO_HOME": str(home)}
    if store_url:
        env["USERPHOTO_STORE_URL"] = store_url
    proc = subprocess.Popen(
        [str(BIN / "userphoto"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(port)
    except (OSError, SystemExit):
        stop(proc)
        raise SystemExit("userphoto serve did not start") from None
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    """End a server started in its own process group, with everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def pg_database(server: str = PG_SERVER) -> Iterator[str]:
    """A fresh PostgreSQL database for one run, dropped afterwards; yields its URL."""
    import psycopg

    name = f"userphoto_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- CPU time and memory of processes ------------------------------------------------------------
def _stat_fields(pid: int | str) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces): state is field 0."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by every process of one process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(entry)
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def tree(root: int) -> list[int]:
    """A process and all its descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with suppress(OSError):
                parents[int(entry)] = int(_stat_fields(entry)[1])
    found, frontier = {root}, {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return sorted(found)


def status_kb(pid: int, field: str) -> int:
    """A kB figure from /proc/PID/status (`VmRSS:`, `VmHWM:`); 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants, now."""
    return sum(status_kb(p, "VmRSS:") for p in tree(root)) * 1024


# --- load generation and figures ------------------------------------------------------------------
def wrk(
    url: str, headers: dict[str, str], duration: int, *, core: str | None = "1"
) -> tuple[float, int]:
    """`wrk -t1 -c64` against one URL (pinned to `core`): (requests per second, requests)."""
    cmd = ["taskset", "-c", core] if core is not None else []
    cmd += ["wrk", "-t1", "-c64", f"-d{duration}s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx or 3xx responses" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    assert rate and count, out
    return float(rate[1]), int(count[1])


def percentile(values: list[float], p: float) -> float:
    """The p-th quantile (0 <= p <= 1), interpolated between the nearest values."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ image/jpeg jpg; }}
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
        etag on;
        open_file_cache off;
    }}
}}
"""


# --- the serving benchmarks' store and reference answer (bench.serve, bench.serve_knobs) --------
ADDRESS = "bench.user@bench.example"


def prepare_serving(home: Path, size: int, cold_users: int) -> tuple[str, bytes]:
    """A data folder with one member holding a photo and `cold_users` more users with a
    stored rendition each; (the member's token, the bytes of its `size` rendition)."""
    from userphoto import auth
    from userphoto.app import App
    from userphoto.demo import portrait
    from userphoto.model import PhotoState, Rendered, User, Visibility
    from userphoto.photos import put_photo

    app = App.load(home)
    app.settings.write_default()
    user = User(
        id="bench-1", address=ADDRESS, display_name="Bench User", visibility=Visibility.EVERYONE
    )
    app.store.add_user(user)
    app.photos.set(ADDRESS, portrait(7, 900, 900))
    _photo, _size, data = app.photos.get(ADDRESS, size=size)
    # The cold-miss users: one real rendering, stored for each (only the measured size, so
    # the database stays small); the server does not know they are alike.
    rendered = app.photos.render(user, portrait(8, 900, 900), None)
    rendered = Rendered(
        rendered.source, rendered.crop, {size: rendered.renditions[size]}, rendered.thumbnail
    )
    cold = [
        User(id=f"cold-{n}", address=f"cold{n}@bench.example", display_name=f"Cold {n}")
        for n in range(cold_users)
    ]
    with app.store.batch():
        app.store.add_users(cold)
        for u in cold:
            put_photo(app.store, u.id, rendered, PhotoState.SAVED, actor="bench", via="bench")
    _record, token = auth.create_token(app.store, ADDRESS)
    app.close()
    return token, data


def check_answers(name: str, url: str, headers: dict[str, str]) -> str:
    """A server answers 200 with an ETag and 304 to it before anything is timed; warms it up
    with 2 s of wrk and returns the ETag."""
    status, got, _body = wait_http(url, headers, timeout=60)  # servers start at once
    assert status == 200, (name, status)
    etag = got.get("ETag") or got.get("etag")
    assert etag, f"{name} sent no ETag"
    status304, _h, _b = wait_http(url, {**headers, "If-None-Match": etag})
    assert status304 == 304, (name, status304)
    wrk(url, headers, 2)  # warm-up: fills caches and connection pools
    return etag


NOOP_BODY = "BENCH_NOOP_BODY"  # not USERPHOTO_*: the config refuses unknown ones
NOOP_TARGET = "bench.common:noop"  # granian --factory, with --working-dir ROOT


class _Noop:
    """A do-nothing RSGI app: the cached photo's bytes and headers, no logic at all. Its rate
    is granian's ceiling for this answer on one core, whatever our Python does."""

    def __init__(self) -> None:
        self.body = Path(os.environ[NOOP_BODY]).read_bytes()
        self.headers = [
            ("content-type", "image/jpeg"),
            ("etag", '"0123456789abcdef0123456789abcdef"'),
            ("cache-control", "private, max-age=60"),
            ("x-content-type-options", "nosniff"),
            ("vary", "Authorization"),
            ("x-photo-source", "uploaded"),
        ]

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.headers.get("if-none-match"):
            proto.response_empty(304, self.headers[1:])
        else:
            proto.response_bytes(200, self.headers, self.body)


def noop() -> _Noop:
    return _Noop()
