"""Bulk import benchmark: `userphoto import --jobs 2` against Debian's `vipsthumbnail`.

200 generated 12 MP (4000×3000) portrait JPEGs. userphoto does everything an import does:
read, hash, decode, face-detect and crop, render all nine HD sizes and the directory
thumbnail, and store them in SQLite — the whole `userphoto import` command in a subprocess,
process start-up included. The reference, in the same run on the same files, produces only
the 648×648 centre square with `vipsthumbnail` (libvips 8.x, shrink-on-load), two processes at
a time, driven two ways: one process per file (`xargs -P 2 -n 1`) and two batch processes of
100 files each. Rounds alternate; the figures are ratios of median photos per second.

Files are generated once, in parallel, and cached in $TMPDIR/userphoto-bench-import-v1.

    .venv/bin/python -m bench.import [--rounds 3] [--files 200] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import BIN, parse
from userphoto.config import Settings
from userphoto.model import User
from userphoto.store import open_store

CACHE = Path(tempfile.gettempdir()) / "userphoto-bench-import-v1"
WIDTH, HEIGHT = 4000, 3000
DOMAIN = "bench.example"


def _portrait(index: int) -> None:
    """One 12 MP JPEG: a lit backdrop with grain, a real face (the astronaut) off-centre.

    The face box spans 10-25% of the long side, as in office head-and-shoulders and half-body
    portraits; the position moves about so a centre crop would not do.
    """
    from skimage import data

    target = CACHE / f"user{index:03d}@{DOMAIN}.jpg"
    if target.exists():
        return
    rng = np.random.default_rng(index)
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :, None]
    c0 = rng.integers(50, 210, 3).astype(np.float32)
    c1 = rng.integers(50, 210, 3).astype(np.float32)
    grain = rng.normal(0, 6, (HEIGHT, WIDTH, 3)).astype(np.float32)
    pixels = c0 * (1 - 0.6 * x) + c1 * (0.6 * y) + grain
    canvas = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    # Head and shoulders of the astronaut: face ~100 px wide in a 340 px wide cut-out.
    person = Image.fromarray(data.astronaut()).crop((60, 0, 400, 512))
    face_share = rng.uniform(0.10, 0.25)
    scale = face_share * WIDTH / 100
    person = person.resize((round(340 * scale), round(512 * scale)), Image.Resampling.BILINEAR)
    px = int(rng.integers(0, max(1, WIDTH - person.width)))
    py = int(rng.integers(0, max(1, HEIGHT - person.height // 2)))
    canvas.paste(person, (px, py))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(target)


def generate(count: int) -> list[Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(count) if not (CACHE / f"user{i:03d}@{DOMAIN}.jpg").exists()]
    if missing:
        print(f"generating {len(missing)} 12 MP JPEGs in {CACHE} ...", flush=True)
        started = time.monotonic()
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(_portrait, missing))
        print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    return [CACHE / f"user{i:03d}@{DOMAIN}.jpg" for i in range(count)]


def become_subreaper() -> None:
    """Adopt every orphaned descendant, so its CPU time is counted when it is reaped here.

    The import's image workers come from a forkserver, which outlives the `userphoto`
    process by a moment and is then re-parented: without this its CPU time (and that of
    the workers it reaped) was never counted, and the import looked almost free.
    """
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_PR_SET_CHILD_SUBREAPER = 36


def reap_orphans(timeout: float = 60.0) -> None:
    """Wait for every adopted descendant to end (each one's CPU then joins RUSAGE_CHILDREN)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children left
        if pid == 0:
            if time.monotonic() > deadline:
                raise SystemExit("a descendant of the measured command did not end")
            time.sleep(0.02)


def children_cpu() -> float:
    """CPU seconds of every reaped child and grandchild (import workers, xargs' vips runs)."""
    reap_orphans()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_import(files: list[Path], folder: Path, work: Path) -> float:
    """Wall seconds for `userphoto import --jobs 2` into a fresh data folder."""
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    store = open_store(Settings.load(home).store_url)
    for i in range(len(files)):
        store.add_user(User(id=f"u{i}", address=f"user{i:03d}@{DOMAIN}", display_name=f"User {i}"))
    store.close()
    env = {**os.environ, "USERPHOTO_HOME": str(home)}
    started = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "userphoto"), "import", str(folder), "--jobs", "2"],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or f"{len(files)} imported" not in proc.stdout:
        raise SystemExit(f"import failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


VIPS = ["vipsthumbnail", "--size", "648x648", "--smartcrop", "centre"]


def run_vips(files: list[Path], work: Path, *, batch: bool) -> float:
    """Wall seconds for vipsthumbnail writing the 648 square only, two processes at a time.

    `batch`: two processes of half the files each (one start-up per process, the fastest
    way to drive it). Otherwise one process per file, two at a time (`xargs -P 2 -n 1`,
    how a shell script drives it; each run pays libvips' start-up).
    """
    out = work / "vips"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [*VIPS, "-o", f"{out}/%s_648.jpg[Q=85,strip]"]
    # One thread per process, like each import worker: two processes on two cores. (With
    # libvips' default pool, a busy machine hands vips more CPU share, not less work.)
    env = {**os.environ, "VIPS_CONCURRENCY": "1"}
    started = time.perf_counter()
    if batch:
        halves = (files[0::2], files[1::2])
        procs = [subprocess.Popen([*command, *map(str, half)], env=env) for half in halves]
        codes = [p.wait() for p in procs]
    else:
        codes = [
            subprocess.run(
                ["xargs", "-P", "2", "-n", "1", *command],
                env=env,
                input="\n".join(map(str, files)),
                text=True,
            ).returncode
        ]
    elapsed = time.perf_counter() - started
    if any(codes) or len(list(out.iterdir())) != len(files):
        raise SystemExit(f"vipsthumbnail failed: exit codes {codes}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=200)
    args = parse(parser, {"rounds": 1, "files": 4})
    if not shutil.which("vipsthumbnail"):
        raise SystemExit("vipsthumbnail not found: apt-get install libvips-tools")
    files = generate(args.files)
    become_subreaper()  # after generate(): its process pool reaps its own workers
    size_mb = sum(f.stat().st_size for f in files) / len(files) / 1e6
    print(f"{len(files)} files, {WIDTH}×{HEIGHT}, {size_mb:.1f} MB each on average")
    with tempfile.TemporaryDirectory(prefix="userphoto-bench-") as tmp:
        work = Path(tmp)
        # The import reads a folder holding exactly these files (the cache may hold more):
        # hard links (the import never follows a symbolic link), copies across file systems.
        folder = work / "photos"
        folder.mkdir()
        for f in files:
            try:
                os.link(f, folder / f.name)
            except OSError:
                shutil.copyfile(f, folder / f.name)
        runs = {
            "vips": lambda: run_vips(files, work, batch=False),
            "import": lambda: run_import(files, folder, work),
            "vips-batch": lambda: run_vips(files, work, batch=True),
        }
        wall: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        for round_no in range(1, args.rounds + 1):
            for name, run in runs.items():
                before = children_cpu()
                wall[name].append(run())
                cpu[name].append(children_cpu() - before)
            load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
            print(
                f"round {round_no} (load average {load}): "
                + ", ".join(
                    f"{name} {len(files) / wall[name][-1]:.1f} photos/s "
                    f"({cpu[name][-1] / len(files) * 1000:.0f} ms CPU/photo)"
                    for name in runs
                ),
                flush=True,
            )
    rate = {name: len(files) / statistics.median(t) for name, t in wall.items()}
    per = {name: statistics.median(t) / len(files) * 1000 for name, t in cpu.items()}
    print(
        "median photos/s (CPU ms per photo): "
        + ", ".join(f"{name} {rate[name]:.1f} ({per[name]:.0f} ms)" for name in runs)
    )
    for name in ("vips", "vips-batch"):
        ratio = rate["import"] / rate[name]
        verdict = "met" if ratio >= 1 else "NOT met"
        print(
            f"import vs {name}: {ratio:.2f}× the rate (target ≥ 1.0×: {verdict}); "
            f"{per[name] / per['import']:.2f}× by CPU per photo"
        )


if __name__ == "__main__":
    main()
