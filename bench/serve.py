"""Serving benchmark: userphoto's photo hot path against nginx-light sending the same bytes.

Each server is pinned to core 0 with `taskset`, `wrk -t1 -c64` to core 1; both answer the same
rendition (JPEG bytes written to a file for nginx, `sendfile on`). userphoto is called as an
authenticated member, so the full path (token → viewer → cached answer) is measured. Two
cases: GET 200 and GET with `If-None-Match` → 304. Prints req/s and the ratios.

    .venv/bin/python bench/serve.py [--duration 10] [--rounds 3] [--size 240]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from userphoto import auth  # noqa: E402
from userphoto.app import App  # noqa: E402
from userphoto.demo import portrait  # noqa: E402
from userphoto.model import User, Visibility  # noqa: E402

BIN = Path(sys.executable).parent
ADDRESS = "bench.user@bench.example"

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
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, headers: dict[str, str], timeout: float = 15) -> tuple[int, dict, bytes]:
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


def wrk(url: str, headers: dict[str, str], duration: int) -> tuple[float, int]:
    """(requests per second, requests completed)."""
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{duration}s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx or 3xx responses" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    assert rate and count, out
    return float(rate[1]), int(count[1])


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by every process of one process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def prepare(home: Path, size: int) -> tuple[str, bytes]:
    app = App.load(home)
    app.settings.write_default()
    user = User(
        id="bench-1", address=ADDRESS, display_name="Bench User", visibility=Visibility.EVERYONE
    )
    app.store.add_user(user)
    app.photos.set(ADDRESS, portrait(7, 900, 900))
    _photo, _size, data = app.photos.get(ADDRESS, size=size)
    _record, token = auth.create_token(app.store, ADDRESS)
    app.close()
    return token, data


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        ["taskset", "-c", "0", *cmd],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def check(name: str, url: str, headers: dict[str, str]) -> str:
    """Both answers are right before anything is timed; returns the ETag."""
    status, got, _body = wait_http(url, headers)
    assert status == 200, (name, status)
    etag = got.get("ETag") or got.get("etag")
    assert etag, f"{name} sent no ETag"
    status304, _h, _b = wait_http(url, {**headers, "If-None-Match": etag})
    assert status304 == 304, (name, status304)
    wrk(url, headers, 2)  # warm-up: fills caches and connection pools
    return etag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=240)
    args = parser.parse_args()
    if not (shutil.which("nginx") and shutil.which("wrk")):
        raise SystemExit("needs nginx-light and wrk (apt-get install nginx-light wrk)")

    tmp = Path(tempfile.mkdtemp(prefix="userphoto-bench-"))
    tmp.chmod(0o755)  # nginx workers drop to an unprivileged user when started as root
    home = tmp / "home"
    token, data = prepare(home, args.size)
    (tmp / "www").mkdir()
    (tmp / "www" / "photo.jpg").write_bytes(data)
    env = {**os.environ, "USERPHOTO_HOME": str(home)}
    auth_header = {"Authorization": f"Bearer {token}"}

    # All servers run at once, pinned to core 0, and are measured in alternation, so load
    # from anything else on the machine hits each of them alike.
    procs: list[subprocess.Popen] = []
    targets: dict[str, tuple[str, dict[str, str]]] = {}
    try:
        port = free_port()
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=port))
        procs.append(start(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]))
        targets["nginx static file"] = (f"http://127.0.0.1:{port}/photo.jpg", {})
        port = free_port()
        procs.append(start([str(BIN / "userphoto"), "serve", "--port", str(port)], env))
        targets["userphoto serve (uvloop + httptools, inline hot path)"] = (
            f"http://127.0.0.1:{port}/v1/users/{ADDRESS}/photo?size={args.size}",
            auth_header,
        )
        pgids = dict(zip(targets, (p.pid for p in procs), strict=True))
        etags = {name: check(name, url, h) for name, (url, h) in targets.items()}
        # Throughput, and the server's own CPU time per request (its process group's
        # utime + stime): the second is what each server would manage with a core to itself,
        # and far steadier than req/s when other work shares the machine.
        rounds: list[dict[str, dict[str, tuple[float, float]]]] = []
        for _ in range(args.rounds):
            result: dict[str, dict[str, tuple[float, float]]] = {name: {} for name in targets}
            for case in ("200", "304"):
                for name, (url, h) in targets.items():
                    extra = {"If-None-Match": etags[name]} if case == "304" else {}
                    before = group_cpu(pgids[name])
                    rate, count = wrk(url, {**h, **extra}, args.duration)
                    cpu_us = (group_cpu(pgids[name]) - before) / count * 1e6
                    result[name][case] = (rate, cpu_us)
            rounds.append(result)
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    ref = "nginx static file"
    print(
        f"rendition {args.size}px, {len(data):,} bytes; wrk -t1 -c64 -d{args.duration}s x "
        f"{args.rounds} alternating rounds; servers on core 0, wrk on core 1"
    )
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
                f"| {name} | {case} | {best:,.0f} | {ratio:.2f} | {cpu:.1f} | {ref_cpu / cpu:.2f} |"
            )


if __name__ == "__main__":
    main()
