"""Directory photos: clean JPEGs are kept byte for byte; anything with metadata is re-encoded."""

from __future__ import annotations

import io

from PIL import Image

from userphoto.directory.photo import clean_jpeg, prepare_photo


def jpeg(**params: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), (40, 90, 200)).save(buf, "JPEG", **params)
    return buf.getvalue()


def test_clean_jpeg_is_kept_as_it_is() -> None:
    for raw in (jpeg(), jpeg(progressive=True), jpeg(quality=60)):
        assert clean_jpeg(raw)
        prepared = prepare_photo(raw)
        assert prepared.jpeg == raw and (prepared.width, prepared.height) == (96, 96)


def test_metadata_or_trailing_bytes_mean_re_encoding() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # any EXIF at all (GPS would be the privacy leak)
    with_exif = jpeg(exif=exif.tobytes())
    with_comment = jpeg(comment=b"secret")
    with_tail = jpeg() + b"PK\x03\x04 a zip file appended"
    for raw in (with_exif, with_comment, with_tail):
        assert not clean_jpeg(raw)
        prepared = prepare_photo(raw)
        assert prepared.jpeg is not None and prepared.jpeg != raw and prepared.problem is None
        assert clean_jpeg(prepared.jpeg)  # what we serve carries no metadata
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
