"""The imaging pipeline against inputs of every odd kind, each with an exact expected outcome."""

from __future__ import annotations

import io

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
    png_header_bomb,
    scan_bomb,
    two_tone,
)
from userphoto import imaging
from userphoto.errors import ImageError, ImageErrorKind
from userphoto.facecrop import Suggestion
from userphoto.model import HD_SIZES, CropBox, CropDecision, CropReason, Limits


def decode(jpeg: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG"
    return img.convert("RGB")


def mean(img: Image.Image, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    region = img.crop(box) if box else img
    return np.asarray(region, dtype=float).reshape(-1, 3).mean(axis=0)


def refused(data: bytes, limits: Limits = Limits()) -> ImageError:
    with pytest.raises(ImageError) as info:
        imaging.render(data, limits=limits)
    return info.value


# --- accepted formats ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "AVIF"])
def test_every_accepted_format_is_sniffed_and_rendered(fmt: str) -> None:
    data = encode(Image.new("RGB", (300, 300), (0, 160, 0)), fmt)
    rendered = imaging.render(data)
    assert rendered.source.format == fmt
    assert rendered.sizes == (48, 64, 96, 120, 240)
    assert mean(decode(rendered.renditions[96])) == pytest.approx([0, 160, 0], abs=8)


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (100, 100), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(buf.getvalue())).n_frames == 2
    out = decode(imaging.render(buf.getvalue()).renditions[96])
    assert mean(out) == pytest.approx([255, 0, 0], abs=10)


# --- normalization -------------------------------------------------------------------------
def test_exif_orientation_6_is_turned_upright() -> None:
    # Stored 200×100, left red / right blue; orientation 6 = rotate 90° clockwise to view,
    # so upright it is 100×200 with red on top and blue below.
    image, source, _scale = imaging.normalize(jpeg_with_orientation(6))
    assert (source.width, source.height) == (100, 200) == image.size
    assert mean(image, (0, 0, 100, 90)) == pytest.approx([255, 0, 0], abs=12)
    assert mean(image, (0, 110, 100, 200)) == pytest.approx([0, 0, 255], abs=12)
    # The explicit crop box is in upright coordinates: the top square is all red.
    rendered = imaging.render(jpeg_with_orientation(6), crop=CropBox(0, 0, 100))
    assert mean(decode(rendered.renditions[96])) == pytest.approx([255, 0, 0], abs=12)


def test_display_p3_is_converted_to_srgb() -> None:
    p3_colour = (90, 200, 110)
    data = encode(
        Image.new("RGB", (200, 200), p3_colour),
        "JPEG",
        quality=100,
        icc_profile=icc_profile(P3_PRIMARIES),
    )
    out = mean(decode(imaging.render(data).renditions[96]))
    expected = p3_to_srgb(p3_colour)
    # Converted, not merely re-labelled: P3 green is more saturated than sRGB's.
    assert np.abs(expected - np.array(p3_colour)).max() > 15
    assert out == pytest.approx(expected, abs=4)


def test_cmyk_jpeg_comes_out_in_the_right_colours() -> None:
    cmyk = Image.new("CMYK", (200, 200), (0, 255, 255, 0))  # pure red ink mix
    data = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    assert mean(decode(imaging.render(data).renditions[96])) == pytest.approx([255, 0, 0], abs=12)


def test_16_bit_grey_is_scaled_not_clipped() -> None:
    grey = Image.new("I;16", (200, 200), 16384)  # a quarter of full scale
    data = encode(grey, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = mean(decode(imaging.render(data).renditions[96]))
    assert out == pytest.approx([64, 64, 64], abs=2)


def test_alpha_is_flattened_on_white() -> None:
    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))  # fully transparent black
    img.paste((255, 0, 0, 128), (0, 0, 200, 100))  # half-transparent red on top
    out = decode(imaging.render(encode(img, "PNG")).renditions[96])
    assert mean(out, (0, 60, 96, 96)) == pytest.approx([255, 255, 255], abs=3)  # not black
    assert mean(out, (0, 0, 96, 40)) == pytest.approx([255, 127, 127], abs=6)  # pink


def test_palette_png_with_transparency() -> None:
    img = Image.new("P", (120, 120), 0)
    img.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    img.paste(1, (0, 0, 120, 60))
    data = encode(img, "PNG", transparency=0)
    out = decode(imaging.render(data).renditions[96])
    assert mean(out, (0, 0, 96, 40)) == pytest.approx([0, 128, 0], abs=6)
    assert mean(out, (0, 56, 96, 96)) == pytest.approx([255, 255, 255], abs=3)


def test_every_output_is_stripped_of_metadata() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS latitude: a privacy leak
    data = encode(
        Image.new("RGB", (700, 700), (10, 120, 200)),
        "JPEG",
        exif=exif.tobytes(),
        icc_profile=icc_profile(P3_PRIMARIES),
        comment=b"secret note",
    )
    assert b"PhoneMaker" in data and b"secret note" in data
    rendered = imaging.render(data)
    for jpeg in [*rendered.renditions.values(), rendered.thumbnail]:
        markers = jpeg_markers(jpeg)
        assert 0xE1 not in markers and 0xE2 not in markers and 0xFE not in markers
        assert b"PhoneMaker" not in jpeg and b"secret note" not in jpeg
        assert Image.open(io.BytesIO(jpeg)).getexif() == {}


# --- crop and sizes ------------------------------------------------------------------------
def test_centre_crop_of_a_landscape_image() -> None:
    # 900×300: blue | green | red in thirds; the centre square is all green.
    img = Image.new("RGB", (900, 300), (0, 0, 255))
    img.paste((0, 200, 0), (300, 0, 600, 300))
    img.paste((255, 0, 0), (600, 0, 900, 300))
    rendered = imaging.render(encode(img, "PNG"))
    assert rendered.crop == CropBox(300, 0, 300)
    assert mean(decode(rendered.renditions[240])) == pytest.approx([0, 200, 0], abs=6)


def test_explicit_crop_box_is_honoured_and_checked() -> None:
    data = encode(two_tone(800, 400), "PNG")
    rendered = imaging.render(data, crop=CropBox(400, 0, 400))
    assert mean(decode(rendered.renditions[240])) == pytest.approx([0, 0, 255], abs=6)
    with pytest.raises(ImageError) as info:
        imaging.render(data, crop=CropBox(500, 0, 400))
    assert info.value.kind is ImageErrorKind.BAD_CROP


def test_crop_suggester_seam_is_used_and_mapped_to_source_pixels() -> None:
    data = encode(two_tone(1600, 800), "PNG")
    seen = []

    def suggest(small: Image.Image, min_side: float) -> Suggestion:
        seen.append((small.size, min_side))
        box = CropBox(small.width // 2, 0, small.height)  # the right (blue) half
        return Suggestion(box, CropDecision(CropReason.FACE, 0.97, "test"))

    rendered = imaging.render(data, suggest=suggest)
    (size, min_side), *_ = seen
    assert max(size) <= 648
    # The side a box needs for a 648 master, in the small image's pixels.
    assert min_side == pytest.approx(648 * size[0] / 1600)
    assert rendered.crop == CropBox(800, 0, 800)
    assert rendered.decision == CropDecision(CropReason.FACE, 0.97, "test")
    assert mean(decode(rendered.renditions[240])) == pytest.approx([0, 0, 255], abs=6)


def test_large_photo_gets_every_size_exactly() -> None:
    rendered = imaging.render(encode(Image.new("RGB", (4000, 3000), (200, 30, 30)), "JPEG"))
    assert rendered.sizes == HD_SIZES
    for size, jpeg in rendered.renditions.items():
        assert Image.open(io.BytesIO(jpeg)).size == (size, size)


def test_small_photo_is_never_upscaled() -> None:
    rendered = imaging.render(encode(Image.new("RGB", (504, 600), (1, 2, 3)), "PNG"))
    assert rendered.sizes == (48, 64, 96, 120, 240, 360, 432, 504)  # all but 648
    rendered = imaging.render(encode(Image.new("RGB", (100, 100), (1, 2, 3)), "PNG"))
    assert rendered.sizes == (48, 64, 96)


def test_directory_thumbnail_is_96_jpeg_within_100_kb() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    rendered = imaging.render(encode(Image.fromarray(noise), "PNG"))
    thumb = Image.open(io.BytesIO(rendered.thumbnail))
    assert thumb.format == "JPEG" and thumb.size == (96, 96)
    assert len(rendered.thumbnail) <= imaging.DIRECTORY_LIMIT


def test_directory_thumbnail_steps_quality_down_then_refuses() -> None:
    noise = Image.fromarray(
        np.random.default_rng(2).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    )
    thumb = imaging.directory_thumbnail(noise, 400, quality=95)
    assert len(thumb) <= imaging.DIRECTORY_LIMIT
    assert len(imaging.encode_jpeg(noise, 95)) > imaging.DIRECTORY_LIMIT  # it had to step down
    huge = Image.fromarray(
        np.random.default_rng(3).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    )
    with pytest.raises(ImageError) as info:
        imaging.directory_thumbnail(huge, 2000)
    assert info.value.kind is ImageErrorKind.THUMBNAIL_TOO_LARGE


# --- refusals ------------------------------------------------------------------------------
def test_empty_file() -> None:
    err = refused(b"")
    assert err.kind is ImageErrorKind.EMPTY and err.status == 400


def test_truncated_jpeg_is_corrupt() -> None:
    data = encode(Image.effect_noise((800, 800), 60).convert("RGB"), "JPEG")
    err = refused(data[: len(data) // 2])
    assert err.kind is ImageErrorKind.CORRUPT and err.status == 422
    assert "truncated" in err.message or "damaged" in err.message


def test_garbage_after_a_jpeg_signature_is_corrupt() -> None:
    err = refused(b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x13" * 500)
    assert err.kind is ImageErrorKind.CORRUPT


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "HTML"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "SVG"),
        (b"just some text in a file called photo.jpg", "text"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (encode(Image.new("RGB", (64, 64)), "BMP"), "BMP"),
    ],
)
def test_unsupported_types_are_named(data: bytes, words: str) -> None:
    err = refused(data)
    assert err.kind is ImageErrorKind.UNSUPPORTED_TYPE and err.status == 415
    assert words in err.message


def test_jpeg_html_polyglot_is_re_encoded_without_the_html() -> None:
    jpeg = encode(Image.new("RGB", (200, 200), (9, 99, 199)), "JPEG")
    payload = b"<html><script>alert(document.cookie)</script></html>"
    # Put the HTML in a COM segment right after SOI: a valid JPEG that browsers sniffing
    # for HTML might also run.
    polyglot = jpeg[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]
    assert Image.open(io.BytesIO(polyglot)).size == (200, 200)
    rendered = imaging.render(polyglot)
    for out in [*rendered.renditions.values(), rendered.thumbnail]:
        assert b"<script" not in out and b"<html" not in out


def test_too_many_bytes_names_the_limit() -> None:
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    err = refused(data + b"\0" * 5000, Limits(max_bytes=2048))
    assert err.kind is ImageErrorKind.TOO_LARGE and err.status == 413
    assert "2 KB" in err.message


def test_header_bomb_is_refused_before_decoding() -> None:
    bomb = png_header_bomb(30000, 30000)
    assert len(bomb) < 200
    err = refused(bomb)
    # Its pixel data is invalid: any decode would have failed as CORRUPT instead.
    assert err.kind is ImageErrorKind.TOO_MANY_PIXELS and err.status == 422
    assert "30000×30000" in err.message or "far too many" in err.message
    # Just over the configured limit (but well under Pillow's own) is refused the same way.
    err = refused(png_header_bomb(8000, 7000), Limits(max_pixels=50_000_000))
    assert err.kind is ImageErrorKind.TOO_MANY_PIXELS and "8000×7000" in err.message


def test_too_small_is_refused_with_the_minimum() -> None:
    err = refused(encode(Image.new("RGB", (40, 300)), "PNG"))
    assert err.kind is ImageErrorKind.TOO_SMALL and "48×48" in err.message


def test_resize_jpeg_makes_any_size_from_a_rendition() -> None:
    rendered = imaging.render(encode(Image.new("RGB", (700, 700), (50, 60, 70)), "JPEG"))
    out = imaging.resize_jpeg(rendered.renditions[648], 80)
    assert Image.open(io.BytesIO(out)).size == (80, 80)
    assert mean(decode(out)) == pytest.approx([50, 60, 70], abs=4)


def test_directory_photo_is_reencoded_upright_and_not_cropped() -> None:
    jpeg, w, h = imaging.reencode_directory_photo(jpeg_with_orientation(6))
    assert (w, h) == (100, 200)
    assert Image.open(io.BytesIO(jpeg)).size == (100, 200)
    with pytest.raises(ImageError):
        imaging.reencode_directory_photo(b"aGVsbG8gd29ybGQ=")  # base64 text, not bytes


def test_large_directory_photo_is_bounded_by_its_long_side_and_upright() -> None:
    # Stored 2800×1400 (left red, right blue), shown rotated: 1400 wide, 2800 tall, red on
    # top. Decoded at a draft scale chosen by the long side, then brought to 648 exactly.
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(two_tone(2800, 1400), "JPEG", quality=95, exif=exif.tobytes())
    jpeg, w, h = imaging.reencode_directory_photo(data)
    assert (w, h) == (324, 648)
    out = decode(jpeg)
    assert out.size == (324, 648)
    assert mean(out, (0, 0, 324, 300)) == pytest.approx([255, 0, 0], abs=8)
    assert mean(out, (0, 348, 324, 648)) == pytest.approx([0, 0, 255], abs=8)


def test_encode_jpeg_writes_nothing_the_image_object_carries() -> None:
    image = Image.new("RGB", (96, 96), (10, 120, 200))
    image.info.update(comment=b"secret note", dpi=(300, 300))
    image.encoderinfo = {"comment": b"another note"}  # Pillow also saves what this holds
    jpeg = imaging.encode_jpeg(image)
    assert not {0xE1, 0xE2, 0xFE} & set(jpeg_markers(jpeg))
    assert b"note" not in jpeg
    assert image.info["comment"] == b"secret note"  # the caller's image is left as it was
    assert mean(decode(jpeg)) == pytest.approx([10, 120, 200], abs=3)


def test_scan_markers_bound_the_scans_of_a_jpeg_arriving_in_chunks() -> None:
    bomb = scan_bomb(100, side=64)
    exact = imaging.jpeg_scans(bomb, 10_000)
    for size in (1, 7, 4096):  # an FF DA pair split across two chunks still counts
        markers = imaging.ScanMarkers()
        for i in range(0, len(bomb), size):
            markers.feed(bomb[i : i + size])
        assert markers.bound >= exact > imaging.MAX_JPEG_SCANS
    assert imaging.too_many_scans(bomb) is not None
    assert imaging.too_many_scans(bomb[: len(bomb) // 2]) is not None  # a prefix tells


# --- WebP: decoded without Pillow's animation canvases --------------------------------------
def webp_vp8x(width: int, height: int, *, animated: bool = False) -> bytes:
    """A WebP whose extended header claims width×height (no image data follows)."""
    flags = 0x02 if animated else 0
    body = b"VP8X" + (10).to_bytes(4, "little") + bytes([flags, 0, 0, 0])
    body += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


def test_the_widest_valid_webp_is_accepted() -> None:
    """16383 px is WebP's largest side: 49 MP, under max_pixels, is a photo, not damaged."""
    data = encode(Image.new("RGB", (16383, 3000), (100, 150, 200)), "WEBP", quality=80)
    rendered = imaging.render(data)
    assert (rendered.source.format, rendered.source.width, rendered.source.height) == (
        "WEBP",
        16383,
        3000,
    )
    assert rendered.crop.size == 3000
    assert mean(decode(rendered.renditions[648])) == pytest.approx([100, 150, 200], abs=6)


def test_a_webp_header_over_the_limits_is_refused_before_any_canvas() -> None:
    err = refused(webp_vp8x(16383, 16383))
    assert err.kind is ImageErrorKind.TOO_MANY_PIXELS and "16383×16383" in err.message
    err = refused(webp_vp8x(16383, 3000, animated=True))  # Pillow's canvases: ~750 MB
    assert err.kind is ImageErrorKind.TOO_COSTLY
    assert refused(webp_vp8x(40, 4000)).kind is ImageErrorKind.TOO_SMALL
    assert refused(webp_vp8x(900, 900)).kind is ImageErrorKind.CORRUPT  # no image data


def test_a_webp_keeps_its_orientation_alpha_and_animation_rules() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = two_tone(200, 100)  # left red, right blue; upright: red on top
    data = encode(stored, "WEBP", quality=95, exif=exif.tobytes())
    image, source, _scale = imaging.normalize(data)
    assert (source.width, source.height) == (100, 200) == image.size
    assert mean(image, (0, 0, 100, 90)) == pytest.approx([255, 0, 0], abs=12)
    half = encode(Image.new("RGBA", (300, 300), (0, 0, 255, 128)), "WEBP", lossless=True)
    assert mean(decode(imaging.render(half).renditions[96])) == pytest.approx(
        [127, 127, 255], abs=6
    )  # flattened on white
    frames = [Image.new("RGB", (300, 300), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:])
    assert mean(decode(imaging.render(buf.getvalue()).renditions[96])) == pytest.approx(
        [255, 0, 0], abs=10
    )
