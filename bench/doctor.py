"""Doctor benchmark: `userphoto doctor` over a generated 100,000-user store.

The store is seeded in bulk with SQL (adding 100,000 users one API call at a time would take
minutes and is not what is measured). Photo rows carry their metadata but tiny rendition
bytes: doctor never reads photo bytes. The mix: 70% with an HD photo, 15% with a directory
photo (a fifth of those unusable), a few percent of each odd state.

References in the same run: one bare `SELECT` over the same joined rows, and the old per-row
walk (every status row streamed into Python and through the rule), so the figures that
matter are doctor's time as a multiple of just reading the data, and of the old way.

    .venv/bin/python -m bench.doctor [--users 100000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import BIN, parse
from userphoto.store.sqlite import SQLiteStore


def seed(path: Path, users: int) -> None:
    store = SQLiteStore(path)
    db = store._db  # bulk seeding is a benchmark concern, not an API
    rng = random.Random(7)
    now = datetime.now(UTC).isoformat()
    sizes = "48,64,96,120,240,360,432,504,648"
    db.execute("BEGIN")
    user_rows, photo_rows, thumb_rows = [], [], []
    for i in range(users):
        uid = f"u{i:06d}"
        r = rng.random()
        account = "sd_only" if r < 0.02 else "disabled" if r < 0.03 else "hd"
        picture = "hidden" if 0.03 <= r < 0.04 else "default" if 0.04 <= r < 0.045 else "photo"
        user_rows.append(
            (
                uid,
                f"user{i:06d}@big.example",
                f"User {i}",
                account,
                picture,
                None,
                "organization",
                None,
                0,
                "directory",
                "{}",
                now,
                now,
            )
        )
        if rng.random() < 0.7:
            photo_rows.append(
                (
                    uid,
                    1,
                    "saved",
                    "0,0,800",
                    "h",
                    "JPEG",
                    800,
                    800,
                    sizes if rng.random() > 0.03 else "48,64,96,120",
                    now,
                    "bench",
                    "bench",
                )
            )
        if rng.random() < 0.15:
            bad = rng.random() < 0.2
            thumb_rows.append(
                (
                    uid,
                    None if bad else b"jpeg",
                    "raw",
                    5000,
                    96,
                    96,
                    "not an image" if bad else None,
                    now,
                    0,
                )
            )
    db.executemany(f"INSERT INTO users VALUES ({','.join('?' * 13)})", user_rows)
    db.executemany(
        "INSERT INTO photos (user_id, version, state, crop, source_hash, source_format, "
        "source_width, source_height, sizes, created, actor, via) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        photo_rows,
    )
    db.executemany("INSERT INTO directory_thumbnails VALUES (?,?,?,?,?,?,?,?,?)", thumb_rows)
    db.execute("COMMIT")
    store.close()


def bare_read(path: Path) -> tuple[float, float]:
    """Seconds (wall, CPU) to read the joined rows once, in this process."""
    store = SQLiteStore(path)
    cpu = time.process_time()
    start = time.perf_counter()
    store._db.execute(
        "SELECT * FROM users u LEFT JOIN photos p ON p.user_id = u.id AND p.state = 'saved' "
        "LEFT JOIN directory_thumbnails d ON d.user_id = u.id ORDER BY u.address"
    ).fetchall()
    seconds = time.perf_counter() - start, time.process_time() - cpu
    store.close()
    return seconds


def row_walk(path: Path) -> tuple[float, float]:
    """The doctor before issue 12's rework: status rows through the rule, one by one.
    Seconds (wall, CPU) for the walk alone, in this process."""
    from userphoto.doctor import user_findings

    store = SQLiteStore(path)
    cpu = time.process_time()
    start = time.perf_counter()
    for status in store.iter_photo_status():
        user_findings(status)
    seconds = time.perf_counter() - start, time.process_time() - cpu
    store.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    args = parse(parser, {"users": 5_000})
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        start = time.perf_counter()
        seed(home / "userphoto.db", args.users)
        print(f"seeded {args.users:,} users in {time.perf_counter() - start:.1f}s")
        read = bare_read(home / "userphoto.db")
        walk = row_walk(home / "userphoto.db")
        cli = BIN / "userphoto"
        print(f"load average before: {os.getloadavg()}")
        before = os.times()
        start = time.perf_counter()
        proc = subprocess.run(
            [str(cli), "--home", str(home), "doctor"], capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        after = os.times()
        cpu = sum(after[2:4]) - sum(before[2:4])  # the command's user + system time
        print(proc.stdout.strip().splitlines()[0])
        print("\n".join(proc.stdout.strip().splitlines()[1:12]))
        print(
            f"doctor, whole command: {wall:.2f}s wall, {cpu:.2f}s CPU "
            f"(exit {proc.returncode}; target < 30 s)"
        )
        print(
            f"bare SQL read of the same rows: {read[0]:.2f}s wall, {read[1]:.2f}s CPU -> doctor "
            f"is {wall / read[0]:.2f}× that (wall), {cpu / read[1]:.2f}× (CPU)"
        )
        print(
            f"old per-row walk (status rows + rule): {walk[0]:.2f}s wall, {walk[1]:.2f}s CPU -> "
            f"{walk[0] / wall:.1f}× doctor (wall), {walk[1] / cpu:.1f}× (CPU)"
        )
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
