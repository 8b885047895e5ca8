"""Durability benchmark: what `synchronous=FULL` costs a photo write against `NORMAL`.

The SQLite store commits with `synchronous=FULL` so that a write answered 2xx survives a power
loss (in WAL mode, NORMAL may lose the last commits). This times `put_photo` (one photo with
its nine renditions, the write an upload does) in both modes, alternating rounds on the same
store in a folder on the disk given (default: a temporary folder), and prints the ratio.

    .venv/bin/python -m bench.durability [--writes 100] [--rounds 3] [--dir PATH] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import parse
from userphoto import facecrop, imaging
from userphoto.demo import portrait
from userphoto.model import PhotoState, User
from userphoto.photos import put_photo
from userphoto.store.sqlite import SQLiteStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parse(parser, {"writes": 10, "rounds": 1})
    rendered = imaging.render(portrait(1, 900, 900), suggest=facecrop.suggest)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        store = SQLiteStore(Path(tmp) / "userphoto.db")
        store.add_user(User(id="u", address="u@bench.example", display_name="U"))
        per_write: dict[str, list[float]] = {"NORMAL": [], "FULL": []}
        for _ in range(args.rounds):
            for mode in ("NORMAL", "FULL"):
                store._db.execute(f"PRAGMA synchronous={mode}")
                started = time.perf_counter()
                for _ in range(args.writes):
                    put_photo(store, "u", rendered, PhotoState.SAVED, actor="bench", via="bench")
                per_write[mode].append((time.perf_counter() - started) / args.writes)
        store.close()
    normal = statistics.median(per_write["NORMAL"]) * 1000
    full = statistics.median(per_write["FULL"]) * 1000
    print(f"{sum(len(j) for j in rendered.renditions.values()):,} bytes of renditions a write")
    print(f"synchronous=NORMAL: {normal:.2f} ms a photo write (median of {args.rounds})")
    print(f"synchronous=FULL:   {full:.2f} ms a photo write")
    print(f"FULL / NORMAL: {full / normal:.2f}")


if __name__ == "__main__":
    main()
