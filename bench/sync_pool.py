"""The initial load with directory photos in the App's image pool (what `userphoto sync` does
since the image pools became one, `use_pool`) against the sync's own pool of two workers (what
it did before), alternating in one run against one slapd, each round into a fresh store.

    .venv/bin/python bench/sync_pool.py [--users 3000] [--rounds 3]

Prints users/s of each and the ratio (App's pool over the sync's own); both pools run every
job under the default `[limits]`, so the ratio is the cost of sharing the one pool.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sync import write_config
from tests.support.slapd import Slapd, ldif
from userphoto.app import App
from userphoto.config import Settings
from userphoto.directory.sync import SyncEngine
from userphoto.directory.sync import photos as sync_photos
from userphoto.model import Limits
from userphoto.workers import pool_for


def load(home: Path, server: Slapd, n: int, shared: bool) -> float:
    write_config(home, server)
    app = App(Settings.load(home))
    assert app.directory is not None
    own = None
    if shared:
        sync_photos.use_pool(app.pool)
    else:
        own = pool_for(Limits(), sync_photos.WORKERS)
        sync_photos.use_pool(own)
    sync_photos.photo_workers()  # started before the run, as the sync does
    engine = SyncEngine(app.store, app.directory)
    t0 = time.perf_counter()
    report = engine.full()
    seconds = time.perf_counter() - t0
    assert report.ok and report.added == n, report.summary()
    engine.close()
    app.close()
    if own is not None:
        own.close()
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-pool-"))
    server = Slapd(tmp / "slapd")
    try:
        server.seed(ldif(range(args.users)))
        server.start()
        rates: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.rounds):
            for shared in (False, True) if r % 2 == 0 else (True, False):
                home = tmp / f"home-{r}-{shared}"
                home.mkdir()
                rate = load(home, server, args.users, shared)
                rates[shared].append(rate)
                print(f"round {r + 1}: {'App pool ' if shared else 'own pool'} {rate:,.0f} users/s")
        shared, own = (sum(rates[k]) / len(rates[k]) for k in (True, False))
        print(f"initial load: App's pool {shared:,.0f} users/s, the sync's own pool {own:,.0f}")
        print(f"ratio (App's pool / own pool): {shared / own:.2f}")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
