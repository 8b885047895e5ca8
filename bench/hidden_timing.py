"""Can an anonymous client tell a hidden user from an unknown address by timing? (issue 24)

Both get the same 404 (`not_found`); a hidden user's miss reads the user and runs the
resolution rule, an unknown address's miss stops after the store read, so the first costs
more work. Each answer is cached after its first request, so a client gets one timed miss per
(address, size, client, default) key — a few dozen per address at most.

A real `userphoto serve` on loopback (the least noisy path there is), `--users` hidden users
(visibility `nobody`, with a photo) and as many unknown addresses, each asked once per size
anonymously over one keep-alive connection, in random order. Printed: the medians and their
difference, the spread of single misses, and how often the best threshold on the mean of `k`
timed misses per address (mean or minimum) tells the two apart (50 % = chance), for k = 1, 3
and 9 (9 = every size a photo surface renders), beside the same figure for two halves of the
unknown addresses (a control: pure noise, since both halves get the same answer and work).

    .venv/bin/python -m bench.hidden_timing [--users 1500] [--quick]
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import parse
from tests.support.server import start_server, stop_server
from userphoto.app import App
from userphoto.config import Settings
from userphoto.demo import portrait
from userphoto.model import PhotoState, User, Visibility
from userphoto.photos import put_photo

SIZES = [48, 64, 96, 120, 240, 360, 432, 504, 648]


def seed(home: Path, users: int) -> None:
    app = App(Settings.load(home))
    app.settings.write_default()
    try:
        first = User(id="h-0", address="h0@bench.example", display_name="H 0")
        rendered = app.photos.render(first, portrait(8, 900, 900), None)
        hidden = [
            User(
                id=f"h-{n}",
                address=f"h{n}@bench.example",
                display_name=f"Hidden {n}",
                visibility=Visibility.NOBODY,
            )
            for n in range(users)
        ]
        with app.store.batch():
            app.store.add_users(hidden)
            for u in hidden:
                put_photo(app.store, u.id, rendered, PhotoState.SAVED, actor="bench", via="bench")
    finally:
        app.close()


def ask(sock: socket.socket, target: str) -> float:
    started = time.perf_counter()
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    took = time.perf_counter() - started
    assert head.startswith(b"HTTP/1.1 404"), head[:100]
    return took


def best_accuracy(hidden: list[float], unknown: list[float]) -> float:
    """The share classified right by the best single threshold (either direction)."""
    labelled = sorted([(v, 1) for v in hidden] + [(v, 0) for v in unknown])
    total, ones = len(labelled), len(hidden)
    best = 0.5
    below_ones = below_zeros = 0
    for _value, label in labelled:
        if label:
            below_ones += 1
        else:
            below_zeros += 1
        # "hidden if above": right = zeros below + ones above
        right = below_zeros + (ones - below_ones)
        best = max(best, right / total, 1 - right / total)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1500)
    args = parse(parser, {"users": 100})
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        seed(home, args.users)
        proc, base = start_server(home)
        try:
            host, port = base.removeprefix("http://").split(":")
            jobs = [
                (kind, n, size)
                for n in range(args.users)
                for kind in ("hidden", "unknown")
                for size in SIZES
            ]
            random.Random(24).shuffle(jobs)
            times: dict[tuple[str, int], list[float]] = {}
            with socket.create_connection((host, int(port))) as sock:
                for _ in range(200):  # warm the connection and the code paths
                    ask(sock, "/v1/users/warm@bench.example/photo?size=48")
                for kind, n, size in jobs:
                    local = f"h{n}" if kind == "hidden" else f"u{n}"
                    target = f"/v1/users/{local}@bench.example/photo?size={size}"
                    times.setdefault((kind, n), []).append(ask(sock, target))
        finally:
            stop_server(proc)

    def singles(kind: str) -> list[float]:
        return [t for (k, _n), ts in times.items() if k == kind for t in ts]

    h, u = singles("hidden"), singles("unknown")
    q = statistics.quantiles
    print(f"{args.users} hidden users and {args.users} unknown addresses, {len(SIZES)} sizes each")
    print("| | median µs | p10 µs | p90 µs |")
    print("|---|---|---|---|")
    for name, values in (("hidden user", h), ("unknown address", u)):
        deciles = q(values, n=10)
        print(
            f"| {name} | {statistics.median(values) * 1e6:.0f} | {deciles[0] * 1e6:.0f} "
            f"| {deciles[-1] * 1e6:.0f} |"
        )
    diff = (statistics.median(h) - statistics.median(u)) * 1e6
    print(f"\nmedian difference: {diff:.0f} µs")
    # The control: the same comparison between two halves of the unknown addresses (the
    # same answer and the same work): what the best threshold finds in pure noise.
    half = args.users // 2
    print(
        "\n| per address | hidden, median µs | unknown, median µs | told apart "
        "| control: unknown vs unknown |"
    )
    print("|---|---|---|---|---|")
    for k in (1, 3, 9):
        for name, pick in (("mean", statistics.fmean), ("min", min)):
            of = {
                kind: {n: pick(ts[:k]) for (kk, n), ts in times.items() if kk == kind}
                for kind in ("hidden", "unknown")
            }
            test = best_accuracy(list(of["hidden"].values()), list(of["unknown"].values()))
            control = best_accuracy(
                [v for n, v in of["unknown"].items() if n < half],
                [v for n, v in of["unknown"].items() if n >= half],
            )
            medians = [statistics.median(of[kind].values()) * 1e6 for kind in of]
            print(
                f"| {name} of {k} | {medians[0]:.0f} | {medians[1]:.0f} "
                f"| {test:.1%} | {control:.1%} |"
            )


if __name__ == "__main__":
    main()
