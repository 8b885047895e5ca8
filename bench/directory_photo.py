"""Directory photo re-encoding: the short way for plain JPEGs against the full pipeline.

`imaging.reencode_directory_photo` hands a plain JPEG (YCbCr or grey, no EXIF, no ICC
profile, within `max_side`) to libjpeg-turbo through simplejpeg, a whole image per call;
everything else goes through Pillow's pipeline, which drives the same library a scanline per
call. Both run here on the same bytes, alternating, best of `--rounds`: CPU per photo, the
ratio, and the JPEG sizes (the short way has no Huffman optimisation).

    .venv/bin/python -m bench.directory_photo [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from bench.common import parse
from tests.support.slapd import photo
from userphoto import imaging

Reencode = Callable[[bytes], tuple[bytes, int, int]]


def noise(width: int, height: int) -> bytes:
    rng = np.random.default_rng(width * height)
    buf = io.BytesIO()
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def pipeline(data: bytes) -> tuple[bytes, int, int]:
    """The full pipeline alone: the short way switched off for this call."""
    short_way = imaging._reencode_plain_jpeg
    imaging._reencode_plain_jpeg = lambda *args: None
    try:
        return imaging.reencode_directory_photo(data)
    finally:
        imaging._reencode_plain_jpeg = short_way


def cpu_per_photo(reencode: Reencode, photos: list[bytes]) -> tuple[float, float]:
    """CPU seconds per photo, and the mean output size in bytes."""
    start = time.process_time()
    out = [reencode(p)[0] for p in photos]
    return (time.process_time() - start) / len(photos), sum(map(len, out)) / len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parse(parser, {"rounds": 1})
    cases = {
        "bench.sync's 96×96 directory photos": [photo(i) for i in range(500)],
        "96×96 noise": [noise(96, 96)] * 500,
        "300×400 noise": [noise(300, 400)] * 50,
        "648×648 noise": [noise(648, 648)] * 20,
    }
    print(
        f"{'photo':40s} {'pipeline':>10s} {'short way':>10s} {'ratio':>7s}  bytes (pipeline/short)"
    )
    for name, photos in cases.items():
        assert imaging._reencode_plain_jpeg(photos[0], imaging.Limits(min_side=1), 648)
        best = {"pipeline": (1e9, 0.0), "short": (1e9, 0.0)}
        for _ in range(args.rounds):
            for label, fn in (("pipeline", pipeline), ("short", imaging.reencode_directory_photo)):
                seconds, size = cpu_per_photo(fn, photos)
                best[label] = min(best[label], (seconds, size))
        (slow, slow_bytes), (fast, fast_bytes) = best["pipeline"], best["short"]
        print(
            f"{name:40s} {slow * 1e6:8.0f}µs {fast * 1e6:8.0f}µs {fast / slow:6.2f}×  "
            f"{slow_bytes:,.0f} / {fast_bytes:,.0f}"
        )


if __name__ == "__main__":
    main()
