"""Bounded work per photo: cheap checks before decoding, and the supervised worker pool.

Hostile files are generated here (a progressive JPEG with one scan repeated, a flat RGBA PNG
of tens of megapixels), never stored. Pool tests run real worker processes.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.images import encode, png_header_bomb, png_rgba, scan_bomb, scan_segments
from tests.support.jobs import (
    allocate,
    crash,
    cv2_ready,
    die_quietly,
    nap,
    pid,
    refuse,
    spin,
    timed_nap,
)
from userphoto import imaging
from userphoto.demo import portrait
from userphoto.errors import WorkersBusy, WorkersUnavailable
from userphoto.imaging import ImageError, ImageErrorKind, Limits
from userphoto.workers import WorkerPool

MB = 1024 * 1024


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2, memory=96 * MB, cpu_seconds=1)
    yield workers
    workers.close()


# --- cheap checks ---------------------------------------------------------------------------
def test_scans_are_counted_from_the_markers() -> None:
    image = Image.new("RGB", (256, 256), (10, 200, 30))
    assert imaging.jpeg_scans(encode(image, "JPEG")) == 1
    progressive = encode(image, "JPEG", progressive=True)
    assert imaging.jpeg_scans(progressive) == 10  # libjpeg's default progression
    assert imaging.jpeg_scans(scan_bomb(5, side=256)) == 15
    # The count stops early: a 4 MB bomb costs no more to count than a sane file.
    assert imaging.jpeg_scans(scan_bomb(50_000, side=256), stop=33) == 33


def test_a_scan_bomb_is_refused_before_decoding() -> None:
    bomb = scan_bomb(60_000)  # ~3.5 MB: about 40 minutes of CPU if decoded
    assert len(bomb) < Limits().max_bytes
    started = time.process_time()
    with pytest.raises(ImageError) as refused:
        imaging.render(bomb)
    assert refused.value.code == "image_too_costly"
    assert "progressive scans" in refused.value.message
    assert "baseline JPEG" in refused.value.message
    # Refused from the markers: far inside one job's CPU budget.
    assert time.process_time() - started < Limits().job_cpu_seconds


def test_a_few_extra_scans_still_decode() -> None:
    rendered = imaging.render(scan_bomb(10, side=1024))  # 20 scans: unusual, not hostile
    assert rendered.sizes[-1] == 648


def test_decoded_size_over_the_job_budget_is_refused_from_the_header() -> None:
    png = png_rgba(7000, 7000)  # 49 MP RGBA: ~200 KB that decode to 196 MB
    assert len(png) < 300_000
    with pytest.raises(ImageError) as refused:
        imaging.render(png, limits=Limits(job_memory=128 * MB))
    assert refused.value.code == "image_too_costly"
    assert "more than 128 MB" in refused.value.message


def test_the_memory_check_comes_before_any_decoding() -> None:
    # Dimensions of 49 MP and pixel data that would fail to decode: refused as too costly,
    # so nothing (not even a look for a late eXIf chunk) decoded it first.
    with pytest.raises(ImageError) as refused:
        imaging.render(png_header_bomb(7000, 7000))
    assert refused.value.code == "image_too_costly"
    assert imaging.inspect(png_header_bomb(7000, 7000)).width == 7000


def test_sixty_megapixels_are_refused_from_the_header() -> None:
    with pytest.raises(ImageError) as refused:
        imaging.render(png_rgba(7746, 7746))
    assert refused.value.kind is ImageErrorKind.TOO_MANY_PIXELS


def test_large_png_is_reduced_right_after_decoding() -> None:
    # Within budget it renders, and the transparent-on-white rule still holds after the
    # reduction (the flat grey is opaque, so the result is that grey).
    rendered = imaging.render(png_rgba(3000, 2000))
    assert rendered.source.width == 3000 and rendered.sizes[-1] == 648
    pixel = Image.open(io.BytesIO(rendered.renditions[648])).getpixel((300, 300))
    assert all(abs(c - 128) <= 3 for c in pixel)


def test_estimate_counts_progressive_coefficients() -> None:
    image = Image.new("RGB", (4000, 3000))
    baseline = Image.open(io.BytesIO(encode(image, "JPEG")))
    progressive = Image.open(io.BytesIO(encode(image, "JPEG", progressive=True)))
    # A baseline JPEG decoded at 1/8 scale needs little; a progressive one keeps every
    # coefficient of the full frame whatever the scale.
    assert imaging.decoded_bytes(baseline, "JPEG", 8) < 2 * MB
    assert imaging.decoded_bytes(progressive, "JPEG", 8) >= 4000 * 3000 * 1.5 * 2  # 4:2:0


# --- the pool ------------------------------------------------------------------------------
def test_a_job_over_its_cpu_limit_is_killed_and_refused(pool: WorkerPool) -> None:
    with pytest.raises(ImageError) as refused:
        pool.run(spin)
    assert refused.value.code == "image_too_costly"
    assert "more than 1 s to decode" in refused.value.message
    assert pool.run(pid) > 0  # a fresh worker took the slot


def test_a_job_over_its_memory_limit_is_refused(pool: WorkerPool) -> None:
    assert pool.run(allocate, 16 * MB) == 16 * MB
    with pytest.raises(ImageError) as refused:
        pool.run(allocate, 300 * MB)
    assert refused.value.code == "image_too_costly"
    assert "more than 96 MB to decode" in refused.value.message
    assert pool.run(allocate, 16 * MB) == 16 * MB


def test_a_crash_kills_a_worker_not_the_caller(pool: WorkerPool) -> None:
    before = pool.run(pid)
    with pytest.raises(ImageError) as refused:
        pool.run(crash)
    assert refused.value.code == "image_crashed"
    assert pool.run(pid) != os.getpid()
    assert before not in pool.pids() or pool.run(pid) > 0


def test_errors_from_the_job_come_back_as_themselves(pool: WorkerPool) -> None:
    with pytest.raises(ImageError) as refused:
        pool.run(refuse)
    assert refused.value.kind is ImageErrorKind.CORRUPT and refused.value.message == "bad bytes"


def test_workers_are_recycled_after_a_number_of_jobs() -> None:
    workers = WorkerPool(1, recycle_after=3)
    try:
        pids = [workers.run(pid) for _ in range(7)]
    finally:
        workers.close()
    assert pids[0] == pids[1] == pids[2]
    assert pids[3] != pids[2] and pids[3] == pids[4] == pids[5]
    assert pids[6] not in pids[:6]


def test_jobs_run_concurrently_up_to_the_pool_size(pool: WorkerPool) -> None:
    pool.start()
    results: list[tuple[float, float, int]] = []
    threads = [
        threading.Thread(target=lambda: results.append(pool.run(timed_nap, 1.0))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (began_a, ended_a, pid_a), (began_b, ended_b, pid_b) = results
    # Two workers ran the two naps at the same time: the intervals overlap (serialized, one
    # would begin only after the other ended). No wall-clock bound: the machine may be busy.
    assert pid_a != pid_b
    assert max(began_a, began_b) < min(ended_a, ended_b)


def test_a_full_queue_is_refused_at_once() -> None:
    workers = WorkerPool(1, queue=0)
    try:
        workers.start()
        busy = threading.Thread(target=workers.run, args=(nap, 1.5))
        busy.start()
        time.sleep(0.3)
        with pytest.raises(WorkersBusy) as refused:
            workers.run(pid)
        busy.join()
        assert refused.value.status == 503 and refused.value.retry_after
        assert workers.run(pid) > 0
    finally:
        workers.close()


def test_workers_start_with_opencv_loaded(pool: WorkerPool) -> None:
    # The first job in a fresh worker finds cv2 (and its data files) imported already.
    assert pool.run(cv2_ready) is True


# --- limits inherited from outside (systemd LimitAS=, ulimit -v, prlimit) --------------------
UNDER_LIMIT = """
import json, sys
from tests.support.jobs import allocate
from userphoto import imaging
from userphoto.demo import portrait
from userphoto.errors import UserPhotoError
from userphoto.workers import WorkerPool

if __name__ == "__main__":
    pool = WorkerPool(1, memory=256 * 2**20)
    out = {}
    try:
        pool.start()
        out["problems"] = pool.problems
        out["rendered"] = pool.run(imaging.render, portrait(2, 900, 900)).source.width
        try:
            pool.run(allocate, 400 * 2**20)
        except UserPhotoError as exc:
            out["refused"] = [exc.code, exc.status, exc.message]
        out["after"] = pool.run(allocate, 16 * 2**20)
    finally:
        pool.close()
    print(json.dumps(out))
"""


def run_under_prlimit(tmp_path: Path, limit: int, code: str = UNDER_LIMIT) -> dict:
    script = tmp_path / "under_limit.py"
    script.write_text(code)
    root = Path(__file__).parent.parent
    done = subprocess.run(
        ["prlimit", f"--as={limit}", sys.executable, str(script)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_workers_lower_their_limits_under_an_inherited_hard_limit(tmp_path: Path) -> None:
    out = run_under_prlimit(tmp_path, 4 * 1024 * MB)
    assert out["problems"] == []
    assert out["rendered"] == 900
    # Over its own budget, under the inherited limit: the job's refusal, as without one.
    assert out["refused"][:2] == ["image_too_costly", 422]
    assert out["after"] == 16 * MB


def test_a_limit_too_tight_for_the_budget_is_reported_and_never_blamed_on_the_file(
    tmp_path: Path,
) -> None:
    # A worker's address space (Pillow, OpenCV, the face models) is ~400 MB: 600 MB of hard
    # limit leaves a job less than its 256 MB budget.
    out = run_under_prlimit(tmp_path, 600 * MB)
    assert len(out["problems"]) == 1 and "RLIMIT_AS" in out["problems"][0]
    assert "of its 256 MB budget" in out["problems"][0]
    assert out["rendered"] == 900  # a normal photo fits in what is left
    code, status, message = out["refused"]
    assert (code, status) == ("image_workers_failed", 503)
    assert "not a problem with the photo" in message
    assert out["after"] == 16 * MB


NO_ROOM_TO_START = """
import json
from userphoto import imaging
from userphoto.demo import portrait
from userphoto.errors import UserPhotoError
from userphoto.workers import WorkerPool

if __name__ == "__main__":
    pool = WorkerPool(1)
    try:
        pool.run(imaging.render, portrait(2, 900, 900))
        print(json.dumps({"refused": None}))
    except UserPhotoError as exc:
        print(json.dumps({"refused": [exc.code, exc.status, exc.message]}))
    finally:
        pool.close()
"""


def test_workers_that_cannot_even_import_are_a_server_failure(tmp_path: Path) -> None:
    # 300 MB: the worker's imports (OpenCV, the face models) fail (MemoryError) before it
    # could take a job. The upload is answered 503 "could not process", not 422 "bad file".
    code, status, message = run_under_prlimit(tmp_path, 300 * MB, NO_ROOM_TO_START)["refused"]
    assert (code, status) == ("image_workers_failed", 503)
    assert "not a problem with the photo" in message


def test_a_worker_killed_from_outside_is_not_blamed_on_the_file(pool: WorkerPool) -> None:
    with pytest.raises(WorkersUnavailable) as refused:
        pool.run(die_quietly)
    assert refused.value.status == 503 and "not a problem with the photo" in refused.value.message
    assert pool.run(pid) > 0


# --- scan bombs with padding: counted the way libjpeg reads them ------------------------------
def marker_starts(data: bytes) -> list[int]:
    """Where each marker after SOI begins (header segments, scans, EOI), walking the file."""
    starts, i = [], 2
    while i < len(data):
        i = data.index(b"\xff", i)
        marker = data[i + 1]
        starts.append(i)
        if marker == 0xD9:
            return starts
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # skip entropy-coded data (stuffed FF 00, restarts FF D0..D7)
            while data[(i := data.index(b"\xff", i)) + 1] == 0 or 0xD0 <= data[i + 1] <= 0xD7:
                i += 2
    return starts


def padded(data: bytes, junk: bytes) -> bytes:
    """`junk` before every marker but the first (the sniffed FF D8 FF must stay)."""
    out, last = [], 0
    for start in marker_starts(data)[1:]:
        out += [data[last:start], junk]
        last = start
    return b"".join([*out, data[last:]])


def restart_bomb(repeats: int, side: int) -> bytes:
    """A scan bomb whose scans hold restart markers (FF D0..D7) every block."""
    data = encode(
        Image.new("RGB", (side, side), (120, 130, 140)),
        "JPEG",
        progressive=True,
        restart_marker_blocks=1,
    )
    scans = scan_segments(data)
    start, end = scans[-2]
    return data[: scans[-1][1]] + data[start:end] * repeats + data[scans[-1][1] :]


JUNK = {
    "one zero byte": b"\x00",
    "stuffed FF 00": b"\xff\x00",
    "junk bytes": b"\x12\x34\x56\x78",
    "fill bytes": b"\xff" * 7,
    "stuffing then fill": b"\xff\x00\xff\xff",
    "a run of zeros": b"\x00" * 300,
}


@pytest.mark.parametrize("junk", JUNK.values(), ids=JUNK.keys())
@pytest.mark.parametrize("kind", ["progressive", "restarts"])
def test_a_padded_scan_bomb_is_refused_before_decoding(kind: str, junk: bytes) -> None:
    small = scan_bomb(40, side=256) if kind == "progressive" else restart_bomb(40, side=256)
    # libjpeg reads past the padding and decodes every scan: the padding hides nothing.
    with Image.open(io.BytesIO(padded(small, junk))) as decoded:
        assert decoded.convert("RGB").getpixel((100, 100)) == (120, 130, 140)
    assert imaging.jpeg_scans(padded(small, junk), stop=1000) == imaging.jpeg_scans(small, 1000)
    # As many repeats as the upload limit holds (a restart in every block makes scans big).
    repeats = (3_500_000 // (60 + len(junk))) if kind == "progressive" else 80  # at 1600²
    bomb = padded(scan_bomb(repeats) if kind == "progressive" else restart_bomb(80, 1600), junk)
    assert 3_000_000 < len(bomb) <= Limits().max_bytes
    started = time.process_time()
    with pytest.raises(ImageError) as refused:
        imaging.render(bomb)
    assert refused.value.code == "image_too_costly", refused.value.message
    assert time.process_time() - started < 2  # from the markers, not a 10 s decode


@pytest.mark.parametrize("junk", JUNK.values(), ids=JUNK.keys())
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_padded_ordinary_jpegs_are_accepted(progressive: bool, junk: bytes) -> None:
    photo = Image.open(io.BytesIO(portrait(4, 900, 1200)))
    data = encode(photo, "JPEG", progressive=progressive, quality=90)
    assert imaging.jpeg_scans(padded(data, junk)) == (10 if progressive else 1)
    rendered = imaging.render(padded(data, junk))
    assert (rendered.source.width, rendered.source.height) == (900, 1200)


def test_the_widest_valid_webp_renders_within_one_jobs_memory() -> None:
    """Pillow would hold ~750 MB for it (two animation canvases); the still-WebP decode fits
    the default 256 MB job under the worker's RLIMIT_AS."""
    data = encode(Image.new("RGB", (16383, 3000), (100, 150, 200)), "WEBP", quality=80)
    workers = WorkerPool(1, memory=Limits().job_memory)
    try:
        rendered = workers.run(imaging.render, data)
        assert (rendered.source.width, rendered.source.height) == (16383, 3000)
        directory = workers.run(imaging.reencode_directory_photo, data)
        assert directory[1:] == (648, 119)  # the whole picture, not cropped
    finally:
        workers.close()


@pytest.mark.parametrize("seed", range(4))
def test_a_scan_bomb_with_random_padding_at_every_boundary_is_refused(seed: int) -> None:
    """Different junk at each marker boundary (bytes that are not FF, FF 00 pairs, fill runs),
    drawn from a seeded generator: libjpeg still decodes the small one, the count matches."""
    rng = np.random.default_rng(seed)

    def junk() -> bytes:
        kind = rng.integers(3)
        if kind == 0:
            return bytes(rng.integers(0, 0xFF, rng.integers(1, 9)).tolist())  # never FF
        if kind == 1:
            return b"\xff\x00" * int(rng.integers(1, 4))
        return b"\xff" * int(rng.integers(1, 6))

    def pad(data: bytes) -> bytes:
        out, last = [], 0
        for start in marker_starts(data)[1:]:
            out += [data[last:start], junk()]
            last = start
        return b"".join([*out, data[last:]])

    small = pad(scan_bomb(40, side=256))
    with Image.open(io.BytesIO(small)) as decoded:
        assert decoded.convert("RGB").getpixel((100, 100)) == (120, 130, 140)
    assert imaging.jpeg_scans(small, stop=1000) == 50
    with pytest.raises(ImageError) as refused:
        imaging.render(pad(scan_bomb(40_000)))
    assert refused.value.code == "image_too_costly"
