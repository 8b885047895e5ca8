"""Hostile-input benchmark: the server's peak memory and a normal client's cached-GET latency
while hostile uploads run, against the same figures unloaded, in the same run.

One `userphoto serve` (default settings: image worker pool sized to the cores) on a loopback
port. A normal client fetches a cached photo in a loop for the whole phase and records every
latency; meanwhile `--senders` client processes upload one hostile input over and over. Per
phase:

- server peak RSS: the serving process's VmHWM, reset at the start of each phase
  (`/proc/PID/clear_refs`, needs root; else the high-water mark since start is shown);
- tree peak RSS: serving process + image workers + forkserver, sampled every 50 ms;
- cached-GET p50/p99 from the normal client, and the ratio of p99 to the unloaded p99;
- what the hostile uploads got back (status codes).

Also: 8 concurrent normal uploads against one alone (ideal ratio: 8 / cores).

    .venv/bin/python -m bench.hostile [--seconds 8] [--senders 3] [--connections] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, parse, status_kb, tree_rss
from tests.support.images import noise_jpeg, png_rgba, scan_bomb
from tests.support.server import addr, seed, start_server, stop_server
from userphoto.demo import portrait

MB = 1024 * 1024
JPEG = {"Content-Type": "image/jpeg"}


def reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Phase:
    def __init__(self, name: str, body: bytes | None, senders: int):
        self.name, self.body, self.senders = name, body, senders
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.tree_peak = 0
        self.server_peak = 0


def run_phase(phase: Phase, base: str, tokens: dict[str, str], pid: int, seconds: float) -> None:
    stop = threading.Event()
    reset_peak(pid)

    def normal() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            headers = {"Authorization": f"Bearer {tokens['bob']}"}
            url = f"/v1/users/{addr('ada')}/photo?size=240"
            while not stop.is_set():
                t = time.perf_counter()
                r = client.get(url, headers=headers)
                phase.latencies.append(time.perf_counter() - t)
                assert r.status_code == 200, r.status_code
                time.sleep(0.005)  # a client, not a load generator: ~150 req/s

    def sample() -> None:
        while not stop.is_set():
            phase.tree_peak = max(phase.tree_peak, tree_rss(pid))
            time.sleep(0.05)

    # Hostile clients run in processes of their own, so the normal client's latency is the
    # server's, not this process's GIL shared with three uploaders.
    senders: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        if phase.body is not None:
            body = Path(tmp) / "body"
            body.write_bytes(phase.body)
            who = ["bob", "dee", "eve", "kim", "hal"]
            for i in range(phase.senders):
                out = str(Path(tmp) / f"out{i}")
                # Niced: real hostile clients are on other machines, not this one's cores.
                command = ["nice", "-n", "10", sys.executable, "-m", "bench.hostile", "--send"]
                command += [base, tokens["admin"], addr(who[i % 5]), str(body), out]
                senders.append(subprocess.Popen(command, cwd=ROOT))
        deadline = time.monotonic() + 120  # senders import a lot; wait until all are ready
        while time.monotonic() < deadline and not all(
            (Path(tmp) / f"out{i}.ready").exists() for i in range(len(senders))
        ):
            time.sleep(0.05)
        reset_peak(pid)
        threads = [threading.Thread(target=normal), threading.Thread(target=sample)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        phase.server_peak = status_kb(pid, "VmHWM:") * 1024
        for i, sender in enumerate(senders):
            sender.send_signal(signal.SIGTERM)
            sender.wait(120)
            for line in (Path(tmp) / f"out{i}").read_text().split():
                phase.statuses[int(line)] += 1


def send(base: str, token: str, address: str, body_path: str, out: str) -> None:
    """A hostile client: upload the same body again and again until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    body = Path(body_path).read_bytes()
    statuses: list[str] = []
    headers = {**JPEG, "Authorization": f"Bearer {token}"}
    Path(out + ".ready").touch()
    with httpx.Client(base_url=base, timeout=120) as client:
        while not stop.is_set():
            r = client.put(f"/v1/users/{address}/photo", content=body, headers=headers)
            statuses.append(str(r.status_code))
    Path(out).write_text("\n".join(statuses))


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def uploads(base: str, tokens: dict[str, str]) -> tuple[float, float]:
    photos = [portrait(20 + i, 1600, 1600) for i in range(8)]
    people = ["bob", "dee", "eve", "kim", "gus", "bob", "dee", "eve"]
    headers = {**JPEG, "Authorization": f"Bearer {tokens['admin']}"}
    with httpx.Client(base_url=base, timeout=120) as client:

        def one(i: int) -> float:
            t = time.perf_counter()
            r = client.put(f"/v1/users/{addr(people[i])}/photo", content=photos[i], headers=headers)
            assert r.status_code == 200, r.text
            return time.perf_counter() - t

        one(0)  # warm
        single = statistics.median(one(i) for i in range(3))
        t = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(8)))
        return single, time.perf_counter() - t


def padded_scan_bomb() -> bytes:
    """The 3.5 MB scan bomb with a stray 00 before every scan: libjpeg skips it and decodes
    every scan, so the refusal must not depend on markers being back to back."""
    bomb = scan_bomb(55_000)
    return bomb[:2] + bomb[2:].replace(b"\xff\xda", b"\x00\xff\xda")


PREVIEW_BURST_LIMIT = 500 * MB  # the process tree's peak during six previews at once


def preview_burst(base: str, admin_token: str, key: str, pid: int) -> tuple[int, int, int, list]:
    """Six concurrent web previews of a 15 MB body (over max_bytes) and six of a real-looking
    ~2 MB photo: the tree's RSS before, at peak and after (bytes), and the answers."""
    import re

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(6)
    photo = Image.fromarray(rng.integers(0, 255, (1400, 1100, 3), dtype=np.uint8))
    with tempfile.SpooledTemporaryFile() as f:
        photo.save(f, "JPEG", quality=92)
        f.seek(0)
        normal = f.read()
    big = b"\xff\xd8\xff" + os.urandom(15 * MB)
    with httpx.Client(base_url=base, timeout=120) as web:
        form = re.search(r'name="csrf" value="([^"]+)"', web.get("/signin").text)
        assert form
        web.post("/signin", data={"csrf": form[1], "token": admin_token, "next": "/"})
        page = re.search(r'name="csrf-token" content="([^"]+)"', web.get("/admin").text)
        assert page, "not signed in"
        headers = {"X-CSRF-Token": page[1]}
        url = f"/web/users/{key}/preview"
        web.post(url, content=normal, headers=headers)  # warm
        time.sleep(1)
        before = peak = tree_rss(pid)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, tree_rss(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        with ThreadPoolExecutor(6) as pool:
            codes = list(
                pool.map(
                    lambda b: web.post(url, content=b, headers=headers).status_code,
                    [big] * 6 + [normal] * 6,
                )
            )
        time.sleep(1)
        stop.set()
        sampler.join()
    return before, peak, tree_rss(pid), codes


# --- connections: non-reading clients and a connection flood (issue 24) ----------------------
class Flood:
    """What one connection phase measured."""

    def __init__(self, name: str):
        self.name = name
        self.tree_peak = 0
        self.latencies: list[float] = []  # a keep-alive client's cached GETs
        self.fresh: list[float] = []  # a new client's GET, a new connection each
        self.fresh_failed = 0


def _raw_get(host: str, port: int, target: str, token: str, source: str = "") -> float | None:
    """Seconds for one GET on a new connection (None: no 200 within 15 s)."""
    started = time.perf_counter()
    try:
        with socket.create_connection(
            (host, port), timeout=15, source_address=(source, 0) if source else None
        ) as sock:
            sock.sendall(
                f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            ok = sock.recv(100).startswith(b"HTTP/1.1 200")
    except OSError:
        return None
    return time.perf_counter() - started if ok else None


def _stuff(sock: socket.socket, payload: bytes, seconds: float = 3) -> None:
    sock.setblocking(False)
    sent, deadline = 0, time.monotonic() + seconds
    while sent < len(payload) and time.monotonic() < deadline:
        try:
            sent += sock.send(payload[sent : sent + 65536])
        except BlockingIOError:
            time.sleep(0.02)
        except OSError:
            return


def _non_readers(host: str, port: int, target: str, token: str) -> list[socket.socket]:
    """3 HTTP/1.1 connections with 6,000 pipelined GETs each and 3 h2c connections with 200
    streams each (an unlimited flow-control window granted), none of them ever read."""
    import h2.config
    import h2.connection
    import h2.settings

    socks = []
    one = f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    for _ in range(3):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        _stuff(sock, one.encode() * 6000)
        socks.append(sock)
    head = [(":method", "GET"), (":path", target), (":scheme", "http"), (":authority", "x")]
    for _ in range(3):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        conn.increment_flow_control_window(2**31 - 1 - 65535)
        for n in range(200):
            auth = ("authorization", f"Bearer {token}")
            conn.send_headers(1 + 2 * n, [*head, auth], end_stream=True)
        _stuff(sock, conn.data_to_send())
        socks.append(sock)
    return socks


def _flood(host: str, port: int, token: str, address: str) -> list[socket.socket]:
    """1,000 idle connections (never a byte) and 512 busy ones (an upload's head and 1 KB of
    its 100 KB body, the rest never sent), from 127.0.0.1 like the server's own clients."""
    socks = [socket.create_connection((host, port), timeout=15) for _ in range(1000)]
    for _ in range(512):
        sock = socket.create_connection((host, port), timeout=15)
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.send(
                f"PUT /v1/users/{address}/photo HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: image/jpeg\r\n"
                "Content-Length: 100000\r\n\r\n".encode()
                + b"\xff" * 1000
            )
        socks.append(sock)
    return socks


def connection_phase(
    flood: Flood, base: str, tokens: dict[str, str], pid: int, seconds: float, open_load: Any
) -> None:
    """Open the load (`open_load()` returns its sockets; None: unloaded), then for `seconds`
    run a keep-alive client's cached GETs, a new client's GET every 0.2 s, and sample the
    whole process tree's RSS."""
    host, port = base.removeprefix("http://").split(":")
    target = f"/v1/users/{addr('ada')}/photo?size=240"
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            total = tree_rss(pid)
            flood.tree_peak = max(flood.tree_peak, total)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    socks: list[socket.socket] = open_load() if open_load else []
    try:
        # The keep-alive client connects after the load is in: it competes for a slot too.
        with httpx.Client(base_url=base, timeout=15) as client:
            headers = {"Authorization": f"Bearer {tokens['bob']}"}
            deadline = time.monotonic() + seconds
            next_fresh = time.monotonic()
            while time.monotonic() < deadline:
                if time.monotonic() >= next_fresh:
                    took = _raw_get(host, int(port), target, tokens["bob"])
                    if took is None:
                        flood.fresh_failed += 1
                    else:
                        flood.fresh.append(took)
                    next_fresh = time.monotonic() + 0.2
                t = time.perf_counter()
                try:
                    r = client.get(target, headers=headers)
                    if r.status_code == 200:
                        flood.latencies.append(time.perf_counter() - t)
                except httpx.HTTPError:
                    pass
                time.sleep(0.005)
    finally:
        for sock in socks:
            sock.close()
        stop.set()
        sampler.join()


def _pct(values: list[float], q: float) -> float:
    return p(values, q) if values else float("nan")  # nan: not one answer in the phase


def connection_phases(base: str, tokens: dict[str, str], pid: int, seconds: float) -> list[str]:
    """The connection phases against one server; the table's lines."""
    host, port = base.removeprefix("http://").split(":")
    with httpx.Client(base_url=base, timeout=60) as client:
        big = client.put(
            f"/v1/users/{addr('max')}/photo",
            content=noise_jpeg(900),
            headers={**JPEG, "Authorization": f"Bearer {tokens['admin']}"},
        )
        assert big.status_code == 200, big.text
        big_target = f"/v1/users/{addr('max')}/photo?size=648"
        size = len(
            client.get(big_target, headers={"Authorization": f"Bearer {tokens['bob']}"}).content
        )
    phases = [
        (Flood("unloaded"), None),
        (
            Flood(f"non-reading: 3 x 6,000 pipelined + 3 x 200 h2 streams of {size // 1024} KB"),
            lambda: _non_readers(host, int(port), big_target, tokens["bob"]),
        ),
        (
            Flood("connection flood: 1,000 idle + 512 busy"),
            lambda: _flood(host, int(port), tokens["admin"], addr("oz")),
        ),
        (Flood("unloaded again"), None),
    ]
    for flood, load in phases:
        connection_phase(flood, base, tokens, pid, seconds, load)
    ref = _pct(phases[0][0].latencies, 0.99)
    lines = [
        "| phase | tree peak RSS | GET p50 ms | GET p99 ms | p99 / unloaded "
        "| new client GET median / max ms (failed) |",
        "|---|---|---|---|---|---|",
    ]
    for flood, _load in phases:
        fresh = (
            f"{_pct(flood.fresh, 0.5):.1f} / {_pct(flood.fresh, 1.0):.1f}" if flood.fresh else "-"
        )
        lines.append(
            f"| {flood.name} | {flood.tree_peak / MB:.0f} MB | {_pct(flood.latencies, 0.5):.2f} "
            f"| {_pct(flood.latencies, 0.99):.2f} | {_pct(flood.latencies, 0.99) / ref:.2f} "
            f"| {fresh} ({flood.fresh_failed}) |"
        )
    return lines


def connections_bench(seconds: float, extra_env: dict[str, str] | None = None) -> list[str]:
    """The connection phases on a server of their own (`--connections`)."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        tokens = seed(home)[0]
        proc, base = start_server(home, extra_env)
        try:
            while httpx.get(base + "/readyz", timeout=10).status_code != 200:
                time.sleep(0.2)  # image workers started: their start-up is not the load's
            return connection_phases(base, tokens, proc.pid, seconds)
        finally:
            stop_server(proc)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--send":
        send(*sys.argv[2:7])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--connections", action="store_true", help="only the connection phases")
    args = parse(parser, {"seconds": 1.0, "senders": 1})
    if args.connections:
        print("\n".join(connections_bench(args.seconds)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        seeded = seed(home)
        tokens, ids = seeded[0], seeded[4]
        proc, base = start_server(home)
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                r = client.put(
                    f"/v1/users/{addr('ada')}/photo",
                    content=portrait(1, 900, 900),
                    headers={**JPEG, "Authorization": f"Bearer {tokens['admin']}"},
                )
                assert r.status_code == 200, r.text
            phases = [
                Phase("unloaded", None, 0),
                Phase("scan bomb, 3.5 MB (60,000 repeated scans)", scan_bomb(60_000), args.senders),
                Phase("padded scan bomb (a 00 before each scan)", padded_scan_bomb(), args.senders),
                Phase(
                    "32-scan progressive JPEG, 36 MP (allowed, ~1 s)", scan_bomb(22), args.senders
                ),
                Phase("60 MP RGBA PNG (300 KB)", png_rgba(7746, 7746), args.senders),
                Phase("49 MP RGBA PNG (205 KB)", png_rgba(7000, 7000), args.senders),
                Phase("25 MP RGBA PNG (within budget)", png_rgba(5000, 5000), args.senders),
                Phase("unloaded again", None, 0),
            ]
            # First, on fresh workers: the tree's figure is the burst's, not earlier phases'.
            burst = preview_burst(base, tokens["admin"], ids["ada"], proc.pid)
            for phase in phases:
                run_phase(phase, base, tokens, proc.pid, args.seconds)
            single, eight = uploads(base, tokens)
        finally:
            stop_server(proc)

    cores = os.cpu_count() or 1
    ref = p(phases[0].latencies, 0.99)
    print(f"cores: {cores}; load average {os.getloadavg()[0]:.1f}; {args.seconds:g} s a phase")
    print(
        "| phase | hostile answers | server peak RSS | server+workers peak RSS "
        "| GET p50 ms | GET p99 ms | p99 / unloaded |"
    )
    print("|---|---|---|---|---|---|---|")
    for ph in phases:
        answers = ", ".join(f"{n}×{s}" for s, n in sorted(ph.statuses.items())) or "-"
        print(
            f"| {ph.name} | {answers} | {ph.server_peak / MB:.0f} MB | {ph.tree_peak / MB:.0f} MB "
            f"| {p(ph.latencies, 0.5):.2f} | {p(ph.latencies, 0.99):.2f} "
            f"| {p(ph.latencies, 0.99) / ref:.2f} |"
        )
    print(
        f"\n8 concurrent uploads: {eight:.2f} s; one alone: {single:.2f} s; "
        f"ratio {eight / single:.2f} (serialized would be 8.00; ideal 8/cores = {8 / cores:.2f})"
    )
    before, peak, after, codes = burst
    verdict = "ok" if peak < PREVIEW_BURST_LIMIT else "OVER"
    print(
        f"\n6 + 6 concurrent web previews (15 MB, ~2 MB): answers {dict(Counter(codes))}; "
        f"tree RSS {before / MB:.0f} MB before, peak {peak / MB:.0f} MB "
        f"(limit {PREVIEW_BURST_LIMIT / MB:.0f} MB: {verdict}), {after / MB:.0f} MB after "
        f"(peak / before {peak / before:.2f}, after / before {after / before:.2f})"
    )
    print("\n".join(["", "Connections:", *connections_bench(args.seconds)]))


if __name__ == "__main__":
    main()
