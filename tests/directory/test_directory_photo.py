"""Directory photos are always re-encoded: never served as the directory holds them."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.support.images import (
    P3_PRIMARIES,
    encode,
    icc_profile,
    jpeg_markers,
    jpeg_with_orientation,
    p3_to_srgb,
    scan_bomb,
)
from userphoto import imaging
from userphoto.directory.photo import prepare_photo
from userphoto.errors import ImageError


def jpeg(**params: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), (40, 90, 200)).save(buf, "JPEG", **params)
    return buf.getvalue()


def test_even_a_clean_jpeg_is_re_encoded() -> None:
    for raw in (jpeg(), jpeg(progressive=True), jpeg(quality=60)):
        prepared = prepare_photo(raw)
        assert prepared.jpeg is not None and prepared.jpeg != raw
        assert (prepared.width, prepared.height) == (96, 96)
        pixel = Image.open(io.BytesIO(prepared.jpeg)).getpixel((40, 40))
        assert pixel == pytest.approx((40, 90, 200), abs=4)


def test_metadata_or_trailing_bytes_mean_re_encoding() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # any EXIF at all (GPS would be the privacy leak)
    with_exif = jpeg(exif=exif.tobytes())
    with_comment = jpeg(comment=b"secret")
    with_tail = jpeg() + b"PK\x03\x04 a zip file appended"
    for raw in (with_exif, with_comment, with_tail):
        prepared = prepare_photo(raw)
        assert prepared.jpeg is not None and prepared.jpeg != raw and prepared.problem is None
        markers = jpeg_markers(prepared.jpeg)  # what we serve carries no metadata
        assert not {0xE1, 0xE2, 0xFE} & set(markers)
        assert prepared.jpeg.endswith(b"\xff\xd9")
        assert b"PhoneMaker" not in prepared.jpeg and b"secret" not in prepared.jpeg

    cmyk = io.BytesIO()
    Image.new("CMYK", (96, 96), (0, 50, 100, 0)).save(cmyk, "JPEG")
    prepared = prepare_photo(cmyk.getvalue())
    assert prepared.jpeg is not None and Image.open(io.BytesIO(prepared.jpeg)).mode == "RGB"


def test_truncated_clean_looking_jpeg_is_refused() -> None:
    raw = jpeg()
    broken = raw[:200] + raw[-2:]  # ends with EOI, image data cut short
    prepared = prepare_photo(broken)
    assert prepared.jpeg is None and "not a usable image" in (prepared.problem or "")


# --- the short way for plain JPEGs ------------------------------------------------------------
def noisy(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    bands = len(mode)
    pixels = rng.integers(0, 255, (size[1], size[0], bands), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze() if bands == 1 else pixels, mode)


def decode(jpeg: bytes) -> Image.Image:
    return Image.open(io.BytesIO(jpeg)).convert("RGB")


def error(jpeg: bytes, original: Image.Image) -> float:
    """How far a JPEG's pixels are from the photo it was made from (mean, 0–255)."""
    source = np.asarray(original.convert("RGB"), dtype=float)
    return float(np.abs(np.asarray(decode(jpeg), dtype=float) - source).mean())


def entered_pipeline(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the full pipeline's decode step from here on."""
    calls: list[int] = []
    full = imaging.normalize

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return full(*args, **kwargs)

    monkeypatch.setattr(imaging, "normalize", counted)
    return calls


def test_a_plain_jpeg_skips_the_pipeline_and_comes_out_as_the_pipeline_makes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sources = [noisy((96, 96)), noisy((97, 61)), noisy((64, 64), "L")]
    plain = [
        encode(sources[0], "JPEG", quality=80),
        encode(sources[0], "JPEG", progressive=True),
        encode(sources[0], "JPEG", subsampling=0),  # 4:4:4
        encode(sources[1], "JPEG"),  # odd sides
        encode(sources[2], "JPEG"),  # grey
        encode(sources[0], "JPEG", comment=b"secret note"),
    ]
    originals = [sources[i] for i in (0, 0, 0, 1, 2, 0)]
    # What the full pipeline makes of each (the short way switched off)...
    monkeypatch.setattr(imaging, "_reencode_plain_jpeg", lambda *args: None)
    expected = [imaging.reencode_directory_photo(raw) for raw in plain]
    monkeypatch.undo()
    # ...and what the short way makes, without entering the pipeline at all.
    calls = entered_pipeline(monkeypatch)
    for raw, original, (want, w, h) in zip(plain, originals, expected, strict=True):
        jpeg, width, height = imaging.reencode_directory_photo(raw)
        assert (width, height) == (w, h) == original.size
        markers = jpeg_markers(jpeg)
        assert 0xC0 in markers and not {0xC2, 0xE1, 0xE2, 0xFE} & set(markers)  # baseline, bare
        assert jpeg != raw and b"secret" not in jpeg
        # As faithful to the photo as the pipeline's JPEG: same codec, quality, subsampling.
        assert error(jpeg, original) <= error(want, original) * 1.05 + 0.5
    assert calls == []


def test_what_the_short_way_cannot_do_goes_through_the_pipeline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p3 = (90, 200, 110)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # EXIF without an orientation still goes the long way
    unusual = {
        "rotated": jpeg_with_orientation(6),
        "other EXIF": encode(noisy((96, 96)), "JPEG", exif=exif.tobytes()),
        "ICC profile": encode(
            Image.new("RGB", (96, 96), p3),
            "JPEG",
            quality=100,
            icc_profile=icc_profile(P3_PRIMARIES),
        ),
        "CMYK": encode(Image.new("CMYK", (96, 96), (0, 255, 255, 0)), "JPEG"),
        "over max_side": encode(noisy((700, 100)), "JPEG"),
        "PNG": encode(noisy((96, 96)), "PNG"),
    }
    refused = {
        "truncated": jpeg()[:200] + b"\xff\xd9",
        "scan bomb": scan_bomb(100, side=64),
    }
    calls = entered_pipeline(monkeypatch)
    out = {name: imaging.reencode_directory_photo(raw) for name, raw in unusual.items()}
    assert len(calls) == len(unusual)
    assert out["rotated"][1:] == (100, 200)  # upright
    assert out["over max_side"][1:] == (648, 93)
    colour = np.asarray(decode(out["ICC profile"][0]), dtype=float).mean((0, 1))
    assert colour == pytest.approx(p3_to_srgb(p3), abs=4)  # converted, not relabelled
    red = np.asarray(decode(out["CMYK"][0]), dtype=float).mean((0, 1))
    assert red == pytest.approx([255, 0, 0], abs=12)
    for name, raw in refused.items():
        with pytest.raises(ImageError):
            imaging.reencode_directory_photo(raw)
        assert len(calls) == len(unusual) + 1, name  # refused in the pipeline's words
        calls.pop()


def test_sync_photos_run_in_the_pool_handed_in_under_its_job_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`userphoto sync` hands the App's pool to the directory photos (`use_pool`): they run
    there, under its per-job limits, and no second pool is started."""
    from userphoto.directory.sync import photos as sync_photos
    from userphoto.model import Limits
    from userphoto.workers import pool_for

    monkeypatch.setattr(sync_photos, "_POOL", None)  # this process's pool, put back after
    buf = io.BytesIO()  # small on the wire, 4 MB decoded: over a 1 MB job budget
    Image.new("RGB", (1200, 1200), (40, 90, 200)).save(buf, "JPEG")
    raw = buf.getvalue()
    for memory, usable in ((2**20, False), (Limits().job_memory, True)):
        pool = pool_for(Limits(job_memory=memory), 1)
        try:
            sync_photos.use_pool(pool)
            assert sync_photos.photo_workers().pool is pool
            prepared = sync_photos.prepare_one(raw, "thumbnailPhoto")
            ran_there = bool(pool.pids())  # a worker of this pool (none left if it was killed)
        finally:
            pool.close()
        if usable:
            assert ran_there and prepared.problem is None and prepared.jpeg is not None
        else:  # the pool's own refusal: the worker ran out of its 1 MB budget
            assert prepared.problem is not None and "needs more than 1 MB" in prepared.problem
