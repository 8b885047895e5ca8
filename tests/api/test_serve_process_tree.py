"""`userphoto serve`'s process tree: when the main process dies — `kill -9` included, which
runs no handler — its serving workers (and their image workers) end with it, so the port
stops answering and a new `serve` can bind it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.net import free_port
from tests.support.server import BIN, serve_log, start_server, stop_server
from userphoto.app import App
from userphoto.config import Settings


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(100).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def test_kill_9_of_the_main_process_takes_its_workers_down(tmp_path: Path) -> None:
    App(Settings.load(tmp_path)).settings.write_default()
    port = free_port()
    with serve_log(tmp_path).open("ab") as log:
        proc = subprocess.Popen(
            [str(BIN / "userphoto"), "serve", "--port", str(port), "--workers", "2"],
            env={**os.environ, "USERPHOTO_HOME": str(tmp_path)},
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    tree: set[int] = set()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        # Both serving workers up with their image workers (/readyz waits for those).
        while len(descendants(proc.pid)) < 2 or not _ready(base):
            assert proc.poll() is None and time.monotonic() < deadline, "never ready"
            time.sleep(0.2)
        tree = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in tree) or answers(port):
            left = sorted(p for p in tree if alive(p))
            assert time.monotonic() < deadline, f"5 s after kill -9: alive {left}"
            time.sleep(0.1)
        tree = set()  # all gone: nothing left to clean up (their pids may be reused)
        again, _ = start_server(tmp_path, port=port)  # and the port can be bound again
        stop_server(again)
    finally:
        if proc.poll() is None:
            stop_server(proc)
        for pid in tree:  # only when the test failed: what it started and is still alive
            if alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
