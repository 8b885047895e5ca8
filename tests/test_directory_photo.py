"""Directory photos are always re-encoded: never served as the directory holds them."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.support.images import jpeg_markers
from userphoto.directory.photo import prepare_photo


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
