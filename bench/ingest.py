"""Ingest benchmark: the full rendition set from one 12 MP JPEG, against a naive Pillow pipeline.

userphoto decodes once at reduced scale and derives all nine HD sizes plus the directory
thumbnail from that one image. The naive reference decodes the full 12 MP image for every
size. Both run in this process, alternating, on the same bytes; the figure that matters is
the ratio. Peak extra memory is measured in a fresh child process per approach (ru_maxrss
after the call minus before it), since Pillow allocates outside Python's tracemalloc.

    .venv/bin/python -m bench.ingest [--rounds 7] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import io
import statistics
import subprocess
import sys
import time

import numpy as np
from PIL import Image, ImageOps

from bench.common import ROOT, parse
from userphoto import checks, facecrop, imaging  # loaded before any measurement
from userphoto.model import HD_SIZES, CheckPolicy


def twelve_megapixels() -> bytes:
    """A 4000×3000 JPEG with photo-like detail (smooth gradients plus grain)."""
    y, x = np.mgrid[0:3000, 0:4000]
    base = np.stack(
        [(x / 4000 * 255), (y / 3000 * 255), ((x + y) % 512) / 2],
        axis=-1,
    )
    grain = np.random.default_rng(0).normal(0, 12, base.shape)
    pixels = np.clip(base + grain, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def naive(data: bytes) -> dict[int, bytes]:
    """What a straightforward pipeline does: a full decode for every size."""
    out = {}
    for size in (*HD_SIZES, 96):
        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
            side = min(img.size)
            left, top = (img.width - side) // 2, (img.height - side) // 2
            square = img.crop((left, top, left + side, top + side))
            buf = io.BytesIO()
            square.resize((size, size), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=85)
            out[size] = buf.getvalue()
    return out


# Camera JPEGs of 12 MP often exceed the 4 MB upload default; the benchmark measures pixels.
LIMITS = imaging.Limits(max_bytes=32 * 1024 * 1024)


def ours(data: bytes) -> imaging.Rendered:
    return imaging.render(data, limits=LIMITS)


def ours_face_aware(data: bytes) -> imaging.Rendered:
    """The default upload path: the same, plus face detection choosing the crop."""
    return imaging.render(data, limits=LIMITS, suggest=facecrop.suggest)


# Every check on, each one measured (warn: nothing refused, so every photo renders).
CHECK_ALL = functools.partial(checks.run, CheckPolicy())


def ours_checked(data: bytes) -> imaging.Rendered:
    """The upload path as served: face-aware crop plus every automatic photo check."""
    return imaging.render(data, limits=LIMITS, suggest=facecrop.suggest, check=CHECK_ALL)


APPROACHES = {
    "userphoto": ours,
    "naive": naive,
    "face-aware": ours_face_aware,
    "checked": ours_checked,
}


def portrait_12mp() -> bytes:
    """A real face in 12 MP: the astronaut (NASA, public domain) at 2400 px on a 4000x3000
    grainy frame, so the checks measure a face (the gradient above has none)."""
    from skimage import data as samples

    frame = np.clip(np.random.default_rng(1).normal(128, 20, (3000, 4000, 3)), 0, 255).astype(
        np.uint8
    )
    canvas = Image.fromarray(frame)
    face = Image.fromarray(samples.astronaut()).resize((2400, 2400), Image.Resampling.LANCZOS)
    canvas.paste(face, (1200, 300))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def cpu_seconds(fn, data: bytes) -> float:
    start = time.process_time()
    fn(data)
    return time.process_time() - start


def high_water_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_extra_mb(name: str, path: str) -> float:
    """Run one approach once in a fresh process; report its peak RSS growth in MB.

    VmHWM (this process's own high-water mark) rather than ru_maxrss, which Linux carries
    over from the parent across fork+exec.
    """
    code = (
        "import sys; from bench import ingest; data = open(sys.argv[1], 'rb').read();"
        "before = ingest.high_water_kb();"
        f"ingest.APPROACHES[{name!r}](data);"
        "print(ingest.high_water_kb() - before)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, check=True, cwd=ROOT
    )
    return int(out.stdout) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parse(parser, {"rounds": 1})

    data = twelve_megapixels()
    path = "/tmp/userphoto-bench-12mp.jpg"
    with open(path, "wb") as f:
        f.write(data)
    rendered = ours(data)
    assert rendered.sizes == HD_SIZES and len(rendered.thumbnail) <= imaging.DIRECTORY_LIMIT

    times: dict[str, list[float]] = {name: [] for name in APPROACHES}
    for _ in range(args.rounds):
        for name, fn in APPROACHES.items():
            times[name].append(cpu_seconds(fn, data))
    med = {name: statistics.median(t) for name, t in times.items()}
    mem = {name: peak_extra_mb(name, path) for name in APPROACHES}

    print(f"input: 4000×3000 JPEG, {len(data) / 1e6:.1f} MB; output: 9 HD sizes + 96 px thumbnail")
    print(f"rounds: {args.rounds} (median CPU time; in-process, alternating)")
    for name in APPROACHES:
        print(f"  {name:<11} {med[name] * 1000:8.1f} ms   peak extra memory {mem[name]:6.1f} MB")
    print(f"speed-up: {med['naive'] / med['userphoto']:.1f}× faster than naive (target ≥ 8×)")
    face = med["naive"] / med["face-aware"]
    print(f"          {face:.1f}× with face-aware cropping (the upload default)")
    checked = med["naive"] / med["checked"]
    print(f"          {checked:.1f}× with face-aware cropping and every photo check (goal ≥ 20×)")
    print(f"memory:   {mem['userphoto']:.1f} MB extra for userphoto (target < 50 MB)")
    # What the checks cost where they measure a face: the same face-aware render with and
    # without them, alternating, on a real portrait.
    face_data = portrait_12mp()
    plain, with_checks = [], []
    for _ in range(args.rounds):
        plain.append(cpu_seconds(ours_face_aware, face_data))
        with_checks.append(cpu_seconds(ours_checked, face_data))
    p, c = statistics.median(plain), statistics.median(with_checks)
    results = ours_checked(face_data).checks
    print(
        f"checks on a 12 MP portrait: {p * 1000:.1f} ms without, {c * 1000:.1f} ms with "
        f"(+{(c - p) * 1000:.1f} ms, {c / p:.3f}×); {checks.summary(results)}"
    )


if __name__ == "__main__":
    main()
