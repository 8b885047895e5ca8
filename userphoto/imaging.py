"""Decode safely, normalize, crop and render photos. Bytes in, bytes out; no other I/O.

The pipeline decodes once, at the smallest scale the largest rendition allows (JPEG
`draft` mode decodes at 1/2, 1/4 or 1/8 scale for almost nothing), then derives every size
from that one image. Nothing from the upload is ever passed through: every output is a fresh
JPEG with no metadata.

Over 400 lines on purpose: it is one pipeline (header checks → decode at scale → upright sRGB
→ crop → renditions → JPEG), and its steps share private helpers (`_open`, `_load`,
`_reduce`, `_to_srgb`) that would become a public API if the steps were split apart. Its
values (`Limits`, `SourceInfo`, `Rendered`) live in `model.py` and its error in `errors.py`.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from collections.abc import Callable
from typing import Protocol, cast

import simplejpeg
from PIL import Image, ImageCms, ImageFile

from .errors import (
    ImageError,
    ImageErrorKind,
    too_large,
    too_many_pixels,
    too_small,
    unsupported_type,
)
from .model import (
    DIRECTORY_LIMIT,
    HD_SIZES,
    MANUAL_CROP,
    MASTER_MAX,
    SD_MAX,
    CheckResult,
    CropBox,
    CropDecision,
    CropReason,
    Limits,
    Rendered,
    SourceInfo,
)

# Formats accepted, by content. Pillow is restricted to exactly these decoders.
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF")
JPEG_QUALITY = 85

# Never let Pillow decode more than we could ever accept, whatever the caller's limits.
Image.MAX_IMAGE_PIXELS = 200_000_000


# A progressive JPEG is decoded once per scan, and a small scan can be repeated tens of
# thousands of times in a 4 MB file (minutes of CPU). Encoders write 10 scans for colour
# (libjpeg's and mozjpeg's default progression), 6 per component otherwise (24 for CMYK).
MAX_JPEG_SCANS = 32


class Suggestion(Protocol):
    # Read-only members, so an immutable value (facecrop's NamedTuple) satisfies it.
    @property
    def box(self) -> CropBox | None: ...
    @property
    def decision(self) -> CropDecision: ...


# A crop suggester looks at a small upright RGB image (and the side a box needs there for the
# largest rendition) and returns a box in its coordinates, or None for the centre-top crop,
# with the decision saying why. The face-aware crop (facecrop.suggest) plugs in here.
CropSuggester = Callable[[Image.Image, float], Suggestion]
# The photo checks (checks.run) look at the same small image and the suggester's findings, so
# checking a photo costs no second decode and no second detection.
PhotoChecker = Callable[[Image.Image, SourceInfo, Suggestion], tuple[CheckResult, ...]]
NO_SUGGESTER = CropDecision(CropReason.CENTRE, 0.0, "no face detection")
# With a suggester, the first decode keeps full detail for boxes down to this share of the
# short side (tighter boxes cost a second decode).
SUGGEST_REGION_SHARE = 0.5
# ... and a box up to this much tighter than that is widened instead (see _widen).
SUGGEST_WIDEN_MAX = 1.25
# The master (largest) rendition is box-averaged by a whole factor first, leaving a Lanczos
# step of at least this ratio: a 1500 px box at 1/2-scale decode goes 2x box then 1.16x
# Lanczos. Measured on the import benchmark's 12 MP photos: -20 ms CPU per photo against a
# 3.0 gap (a full 2.3x Lanczos), 0.41 instead of 0.20 grey levels mean difference from a
# Lanczos of the full-resolution pixels (BENCHMARKS.md, "Bulk import").
MASTER_REDUCING_GAP = 1.0


def sniff(data: bytes) -> str | None:
    """The format by magic bytes, or None. File names and declared types are never trusted."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "AVIF"
    return None


def _describe_unknown(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"hevc"):
        return "HEIC/HEIF (not supported: export it as JPEG or PNG)"
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG (vector images are not accepted)"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:200]:
        return "HTML, not an image"
    if data.startswith(b"%PDF"):
        return "PDF, not an image"
    if data.startswith((b"BM", b"II*\x00", b"MM\x00*")):
        return "BMP/TIFF (not accepted)"
    try:
        data[:512].decode("utf-8")
        return "text, not an image"
    except UnicodeDecodeError:
        return "an unknown format"


def _open(data: bytes, limits: Limits) -> tuple[Image.Image, str]:
    """Open from the header only, enforcing every limit that needs no decoding."""
    if not data:
        raise ImageError(ImageErrorKind.EMPTY, "The file is empty.")
    if len(data) > limits.max_bytes:
        raise too_large(limits.max_bytes)
    kind = sniff(data)
    if kind is None:
        raise unsupported_type(_describe_unknown(data))
    still_webp = False
    if kind == "WEBP" and (header := webp_header(data)) is not None:
        # Pillow allocates a WebP's whole canvas (twice) when it opens the file: the limits
        # are checked from the RIFF header first, and a still picture never goes to Pillow.
        width, height, _alpha, animated = header
        _check_size(width, height, limits)
        if animated and width * height * _PILLOW_WEBP_BYTES > limits.job_memory:
            raise _too_costly(width * height * _PILLOW_WEBP_BYTES, limits)
        still_webp = not animated
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = (
                _StillWebP(io.BytesIO(data))
                if still_webp
                else Image.open(io.BytesIO(data), formats=[kind])
            )
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels(limits.max_pixels) from None
    except Exception as exc:
        raise ImageError(
            ImageErrorKind.CORRUPT,
            f"The {kind} file is damaged and cannot be read{_detail(exc)}.",
        ) from None
    _check_size(*image.size, limits)
    if kind == "JPEG" and (costly := too_many_scans(data)) is not None:
        raise costly
    return image, kind


def _check_size(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_pixels:
        raise too_many_pixels(limits.max_pixels, width, height)
    if min(width, height) < limits.min_side:
        raise too_small(width, height, limits.min_side)


# --- WebP ------------------------------------------------------------------------------------
# Pillow decodes every WebP through libwebp's animation decoder, which holds two full RGBA
# canvases beside the image: measured 758 MB for a 16383×3000 still. A still picture is
# decoded by OpenCV's libwebp instead, into one full-size BGR buffer reduced at once (145 MB
# for the same file at 1/8 scale), so the largest valid WebP fits in one job's budget.
_PILLOW_WEBP_BYTES = 16  # per pixel, measured (above); only animated WebP still goes there


def webp_header(data: bytes) -> tuple[int, int, bool, bool] | None:
    """(width, height, has alpha, animated) from a WebP's first chunk, or None if unreadable."""
    if len(data) < 30:
        return None
    fourcc, payload = data[12:16], 20
    if fourcc == b"VP8X":
        flags = data[payload]
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height, bool(flags & 0x10), bool(flags & 0x02)
    if fourcc == b"VP8 " and data[payload + 3 : payload + 6] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[payload + 6 : payload + 8], "little") & 0x3FFF
        height = int.from_bytes(data[payload + 8 : payload + 10], "little") & 0x3FFF
        return width, height, False, False
    if fourcc == b"VP8L" and data[payload] == 0x2F:
        bits = int.from_bytes(data[payload + 1 : payload + 5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1), False
    return None


def _riff_chunk(data: bytes, fourcc: bytes) -> bytes | None:
    i = 12
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        if data[i : i + 4] == fourcc:
            return data[i + 8 : i + 8 + size]
        i += 8 + size + (size & 1)
    return None


class _StillWebP(ImageFile.ImageFile):
    """A still WebP known from its header (size, alpha, ICC profile, EXIF) and not decoded;
    `decode` gives its pixels at a reduced scale."""

    format = "WEBP"
    format_description = "WebP image"

    def _open(self) -> None:
        assert self.fp is not None
        self._data = self.fp.read()
        header = webp_header(self._data)
        assert header is not None
        width, height, alpha, _animated = header
        self._size = (width, height)
        self._mode = "RGBA" if alpha else "RGB"
        for key, fourcc in (("icc_profile", b"ICCP"), ("exif", b"EXIF")):
            if (value := _riff_chunk(self._data, fourcc)) is not None:
                self.info[key] = value

    def decode(self, factor: int) -> Image.Image:
        """The pixels at 1/`factor` scale (1, 2, 4 or 8), each side rounded down."""
        import cv2  # here: loaded once per image worker (preloaded), never by the serving path
        import numpy as np

        buffer = np.frombuffer(self._data, np.uint8)
        if self.mode == "RGBA":  # no reduced decode with alpha: full size, then reduced
            pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
            if pixels is not None and factor > 1:
                size = (math.ceil(self.width / factor), math.ceil(self.height / factor))
                pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
            convert = cv2.COLOR_BGRA2RGBA
        else:
            reduced = {
                1: cv2.IMREAD_COLOR,
                2: cv2.IMREAD_REDUCED_COLOR_2,
                4: cv2.IMREAD_REDUCED_COLOR_4,
                8: cv2.IMREAD_REDUCED_COLOR_8,
            }
            pixels = cv2.imdecode(buffer, reduced[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
            convert = cv2.COLOR_BGR2RGB
        if pixels is None or pixels.ndim != 3:
            raise OSError("libwebp could not decode it")
        image = Image.fromarray(cv2.cvtColor(pixels, convert))
        image.info = dict(self.info)  # the ICC profile and EXIF, for orientation and colour
        return image


def _still_webp_bytes(image: Image.Image, factor: int) -> int:
    """Peak memory of `_StillWebP.decode`: the full-size buffer and the reduced copies."""
    w, h = image.size
    out = math.ceil(w / factor) * math.ceil(h / factor)
    if image.mode == "RGBA":
        return w * h * 4 * 2 + out * 4 * 3
    return w * h * 3 + out * 3 * 2 + out * 4


class ScanMarkers:
    """An upper bound on a JPEG's scans, counted as its bytes arrive.

    Every scan starts with the marker FF DA, and entropy-coded data never holds one (its FF
    bytes are stuffed), so counting FF DA pairs costs a C-speed pass per chunk and can only
    over-count (metadata may hold the pair). When the bound passes MAX_JPEG_SCANS,
    `too_many_scans` on what has arrived gives the exact answer, once.
    """

    __slots__ = ("_ended_ff", "bound")

    def __init__(self) -> None:
        self.bound = 0
        self._ended_ff = False

    def feed(self, chunk: bytes) -> int:
        self.bound += chunk.count(b"\xff\xda") + (self._ended_ff and chunk[:1] == b"\xda")
        self._ended_ff = chunk[-1:] == b"\xff"
        return self.bound


def too_many_scans(data: bytes) -> ImageError | None:
    """The refusal of a JPEG with more scans than MAX_JPEG_SCANS, else None.

    Works on a prefix too (a scan bomb's scans are small, so the first few kilobytes tell),
    which lets the server refuse one before the rest of the upload arrives.
    """
    if not data.startswith(b"\xff\xd8") or jpeg_scans(data, MAX_JPEG_SCANS + 1) <= MAX_JPEG_SCANS:
        return None
    return ImageError(
        ImageErrorKind.TOO_COSTLY,
        f"This JPEG has more than {MAX_JPEG_SCANS} progressive scans, which makes it "
        "very slow to decode; export it as a baseline JPEG.",
    )


# A marker is FF then a byte that is neither 00 (a stuffed data byte) nor FF (fill): the last
# FF of a run counts, as in libjpeg's next_marker(), which skips any other bytes on the way.
_MARKER = re.compile(rb"\xff[^\x00\xff]")
# Entropy-coded data ends at a marker that is not a restart (RSTn is read inside the scan).
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def jpeg_scans(data: bytes, stop: int = MAX_JPEG_SCANS + 1) -> int:
    """How many scans (SOS segments) a JPEG holds, counting no further than `stop`.

    Follows the marker structure the way libjpeg reads it: bytes that are not a marker
    where one should be (junk, FF 00, fill bytes) are skipped to the next marker, not taken
    as the end, so padding cannot hide scans the decoder would still run. Each scan's
    entropy-coded data is skipped to the next marker that is not a restart. One C-speed
    search per segment and no decoding.
    """
    n = len(data)
    i = 2  # after SOI
    scans = 0
    while (found := _MARKER.search(data, i)) is not None:
        i = found.start()
        marker = data[i + 1]
        if marker == 0xD9:  # EOI
            break
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):  # no length
            i += 2
            continue
        if i + 3 >= n:
            break
        end = i + 2 + ((data[i + 2] << 8) | data[i + 3])
        if marker != 0xDA:
            i = end
            continue
        scans += 1
        if scans >= stop:
            break
        found = _SCAN_END.search(data, end)
        if found is None:
            break
        i = found.start()
    return scans


# Bytes per decoded pixel, by Pillow mode (what `load()` allocates).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16B": 2}
_BYTES_PER_PIXEL.update({"I;16L": 2, "I;16N": 2, "RGB": 4, "YCbCr": 4, "LAB": 4, "HSV": 4})


def decoded_bytes(image: Image.Image, kind: str, scale: float = 1.0) -> int:
    """An upper estimate of the memory a decode at `scale` (1/scale per side) needs, peak.

    Pillow stores RGB in 4 bytes a pixel. A progressive JPEG keeps every DCT coefficient of
    the full-size image (2 bytes a sample) whatever the output scale; other formats decode at
    full size and are reduced right after (see `_reduce`), so the peak is the decoded image
    plus its reduction and one converted copy of that.
    """
    w, h = image.size
    if isinstance(image, _StillWebP):
        return _still_webp_bytes(image, _webp_factor(scale))
    if kind == "JPEG":
        factor = 1
        while factor < 8 and factor * 2 <= scale:
            factor *= 2
        out = math.ceil(w / factor) * math.ceil(h / factor) * 4 * 2  # output + one copy
        if image.info.get("progressive") or image.info.get("progression"):
            out += math.ceil(w * h * 2 * _sampled_share(image))
        return out
    pixels = w * h
    full = pixels * _BYTES_PER_PIXEL.get(image.mode, 4)
    if image.mode.startswith("I;16"):
        full += pixels * 8  # widened to 32-bit, then scaled, at full size
    elif image.mode in ("P", "PA", "1"):
        full += pixels * 4  # expanded to RGB(A) before the reduction
    # Half again for what the decoder and allocator hold beside the image (measured: a 49 MP
    # RGBA PNG needs more than 256 MB of address space to decode, not 196 MB).
    return full * 3 // 2 + pixels * 4 // max(1, int(scale)) ** 2 * 2


def _sampled_share(image: Image.Image) -> float:
    """Samples per pixel over all components, after chroma subsampling (3.0 for 4:4:4)."""
    layers = getattr(image, "layer", None) or []
    if not layers:
        return float(len(image.getbands()))
    h_max = max(layer[1] for layer in layers)
    v_max = max(layer[2] for layer in layers)
    return sum(layer[1] * layer[2] for layer in layers) / (h_max * v_max)


def _check_memory(image: Image.Image, kind: str, scale: float, limits: Limits) -> None:
    need = decoded_bytes(image, kind, scale)
    if need > limits.job_memory:
        raise _too_costly(need, limits)


def _too_costly(need: int, limits: Limits) -> ImageError:
    return ImageError(
        ImageErrorKind.TOO_COSTLY,
        f"This image needs more than {limits.job_memory // (1024 * 1024)} MB to decode "
        f"(about {need // (1024 * 1024)} MB); export it as a baseline JPEG "
        "(648×648 is plenty).",
    )


def _webp_factor(scale: float) -> int:
    factor = 1
    while factor < 8 and factor * 2 <= scale:
        factor *= 2
    return factor


def _detail(exc: Exception) -> str:
    """The decoder's own words, when they say more than "cannot identify <object repr>"."""
    text = str(exc)
    if not text or isinstance(exc, Image.UnidentifiedImageError) or " object at 0x" in text:
        return ""
    return f" ({text})"


def _orientation(image: Image.Image, loaded: bool = False) -> int:
    if not loaded and image.format == "PNG" and "exif" not in image.info:
        # Pillow would decode every pixel to look for an eXIf chunk after the image data;
        # header checks (`inspect`) go by the chunks before it.
        return 1
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:
        return 1


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright_size(image: Image.Image, orientation: int) -> tuple[int, int]:
    w, h = image.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def inspect(data: bytes, limits: Limits = Limits()) -> SourceInfo:
    """Check the header against every limit and report format and upright size."""
    image, kind = _open(data, limits)
    w, h = _upright_size(image, _orientation(image))
    return SourceInfo(kind, w, h, hashlib.sha256(data).hexdigest())


def portrait_crop(width: int, height: int) -> CropBox:
    """The fallback when no face is trusted: the largest square, centred across, and near the
    top of a tall picture (a standing or half-length portrait has the head up there)."""
    side = min(width, height)
    return CropBox((width - side) // 2, round((height - side) * PORTRAIT_TOP), side)


# Where the fallback square sits in a tall picture's spare height (0 top, 0.5 centre).
PORTRAIT_TOP = 0.2


def centre_crop(width: int, height: int) -> CropBox:
    side = min(width, height)
    return CropBox((width - side) // 2, (height - side) // 2, side)


# Modes `Image.reduce` handles; others (palette, 1-bit, 16-bit) are converted first.
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "RGBa", "La", "CMYK", "I", "F")


def _load(image: Image.Image, kind: str, scale_hint: float, limits: Limits) -> Image.Image:
    """Decode to pixels at the smallest scale that loses nothing we need.

    JPEG decodes at 1/2, 1/4 or 1/8 scale directly (`draft`), a still WebP likewise
    (`_StillWebP`); other formats decode at full size and are box-reduced at once
    (`_reduce`), so only one full-size copy ever exists.
    """
    _check_memory(image, kind, scale_hint, limits)
    if kind == "JPEG" and scale_hint > 1:
        w, h = image.size
        image.draft(image.mode, (math.ceil(w / scale_hint), math.ceil(h / scale_hint)))
    try:
        if isinstance(image, _StillWebP):
            return image.decode(_webp_factor(scale_hint))
        image.load()
    except MemoryError:
        raise  # the worker pool turns this into its "needs more than N MB" refusal
    except Exception as exc:
        raise ImageError(
            ImageErrorKind.CORRUPT, f"The {kind} file is damaged or truncated{_detail(exc)}."
        ) from None
    return image


def _reduce(image: Image.Image, kind: str, scale_hint: float) -> Image.Image:
    factor = int(scale_hint)
    if kind != "JPEG" and factor >= 2 and not image.mode.startswith("I;16"):
        info = image.info
        if image.mode in ("P", "PA"):
            image = image.convert("RGBA" if "transparency" in info or image.mode == "PA" else "RGB")
        elif image.mode == "1":
            image = image.convert("L")
        if image.mode in _REDUCIBLE:
            image = image.reduce(factor)
            image.info = info  # the ICC profile, for _to_srgb
    return image


def _to_srgb(image: Image.Image) -> Image.Image:
    """Any mode and embedded profile -> 8-bit RGB in sRGB, alpha flattened on white."""
    icc = image.info.get("icc_profile")
    mode = image.mode

    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (and 32-bit int) grey: scale down explicitly; convert() would clip to white.
        # (One band, so getextrema() is (lo, hi).)
        peak = 65535 if mode.startswith("I;16") or cast(float, image.getextrema()[1]) > 255 else 255
        image = image.convert("I").point(lambda v: v * (255 / peak)).convert("L")
        mode = "L"
    elif mode == "F":
        image = image.convert("L")
        mode = "L"

    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba).convert("RGB")
        mode = "RGB"
    if mode == "1":
        image = image.convert("L")
        mode = "L"

    if icc and mode in ("RGB", "L", "CMYK"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            converted = ImageCms.profileToProfile(image, src, dst, outputMode="RGB")
            if converted is not None:
                return converted
        except Exception:
            pass  # a broken profile is not worth refusing the photo over; fall through
    return image if mode == "RGB" else image.convert("RGB")  # no 12 MP copy for nothing


def _crop_in(width: int, height: int, crop: CropBox | None, suggested: CropBox | None) -> CropBox:
    if crop is None:
        return suggested or portrait_crop(width, height)
    if crop.x + crop.size > width or crop.y + crop.size > height:
        raise ImageError(
            ImageErrorKind.BAD_CROP,
            f"The crop box {crop} does not fit inside the {width}×{height} image.",
        )
    return crop


def normalize(
    data: bytes,
    limits: Limits = Limits(),
    *,
    target: int = MASTER_MAX,
    region: int | None = None,
    region_share: float = 1.0,
    whole: bool = False,
) -> tuple[Image.Image, SourceInfo, float]:
    """Decode once at reduced scale; return the upright sRGB image, the source and the scale.

    The decode keeps at least `target` pixels across `region` (default: `region_share` of
    the short side; with `whole`, the long side: the whole picture is kept, no crop), so no
    rendition loses detail. `scale` maps upright source coordinates to the returned
    image's (divide by it).
    """
    image, kind = _open(data, limits)
    width, height = image.size
    side = max(width, height) if whole else min(width, height) * region_share
    hint = max(1.0, (region or side) / target)
    image = _load(image, kind, hint, limits)
    # Read after loading: a PNG's eXIf chunk may follow its pixels, and asking for it
    # earlier would make Pillow decode the whole image before the memory check.
    orientation = _orientation(image, loaded=True)
    uw, uh = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    # What the decode did not reduce yet (a still WebP comes reduced by a power of two).
    image = _reduce(image, kind, hint * image.width / width)
    if orientation in _TRANSPOSE:
        # By the orientation read before reducing: a reduced copy no longer carries EXIF.
        image = image.transpose(_TRANSPOSE[orientation])
    image = _to_srgb(image)
    scale = uw / image.width
    return image, SourceInfo(kind, uw, uh, hashlib.sha256(data).hexdigest()), scale


def render(
    data: bytes,
    *,
    limits: Limits = Limits(),
    crop: CropBox | None = None,
    suggest: CropSuggester | None = None,
    check: PhotoChecker | None = None,
    thumbnail_size: int = SD_MAX,
    max_size: int = MASTER_MAX,
    quality: int = JPEG_QUALITY,
) -> Rendered:
    """Validate, normalize and crop `data`, and render every HD size plus the thumbnail.

    `crop` is an explicit box in upright source pixels; without it `suggest` (face-aware)
    proposes one and the centre is the fallback. `max_size` caps the renditions
    (96 for sd_only accounts). `check` runs on what the suggester saw (not for manual crops).
    """
    suggesting = crop is None and suggest is not None
    # A suggested (face) crop is usually tighter than the short side, so decode finer up
    # front: for JPEG the entropy decoding dominates and a 1/2-scale decode costs little
    # more than 1/4, while a second decode would cost it all again.
    image, source, scale = normalize(
        data,
        limits,
        target=max_size,
        region=crop.size if crop else None,
        region_share=SUGGEST_REGION_SHARE if suggesting else 1.0,
    )
    suggested = None
    decision = MANUAL_CROP if crop is not None else NO_SUGGESTER
    checks: tuple[CheckResult, ...] = ()
    if suggesting:
        assert suggest is not None
        # Box-filter reduction: the suggester only looks, so fast beats pretty here.
        factor = math.ceil(max(image.size) / max_size)
        small = image.reduce(factor) if factor > 1 else image
        f = source.width / small.width
        suggestion = suggest(small, max_size / f)
        decision, box = suggestion.decision, suggestion.box
        if check is not None:
            checks = check(small, source, suggestion)
        if box is not None:
            suggested = _clamp(
                CropBox(round(box.x * f), round(box.y * f), round(box.size * f)),
                source.width,
                source.height,
            )
            suggested = _widen(suggested, math.ceil(max_size * scale), source)
    box = _crop_in(source.width, source.height, crop, suggested)
    if box.size / scale < min(max_size, box.size) - 0.5:
        # A suggestion tighter than the decode planned for: decode again at the box's scale
        # rather than upscale the master.
        image, source, scale = normalize(data, limits, target=max_size, region=box.size)

    # Map the box into the decoded image and cut it out.
    left, top = box.x / scale, box.y / scale
    # One scale maps both sides, but a decode at 1/n rounds each side up on its own: a box
    # as tall as the picture can come out a fraction of a pixel taller than the decode.
    side = min(box.size / scale, image.width - left, image.height - top)
    square = image.resize(
        (min(max_size, max(1, round(side))),) * 2,
        Image.Resampling.LANCZOS,
        box=(left, top, left + side, top + side),
        reducing_gap=MASTER_REDUCING_GAP,
    )
    images = _downscales(square, [s for s in HD_SIZES if s <= min(box.size, max_size)])
    renditions = {size: encode_jpeg(img, quality) for size, img in images.items()}
    thumbnail = directory_thumbnail(images.get(thumbnail_size, square), thumbnail_size, quality)
    return Rendered(source, box, renditions, thumbnail, decision, checks)


def _widen(box: CropBox, side: int, source: SourceInfo) -> CropBox:
    """A suggested box a little too tight for this decode, widened to `side` around its centre.

    A suggestion is a framing heuristic, and a slightly looser framing (at most
    SUGGEST_WIDEN_MAX) costs nothing, where keeping it exact costs a second full decode.
    """
    if box.size >= side or side > box.size * SUGGEST_WIDEN_MAX:
        return box
    grow = side - box.size
    return _clamp(CropBox(box.x - grow // 2, box.y - grow // 2, side), source.width, source.height)


def _clamp(box: CropBox, width: int, height: int) -> CropBox:
    size = max(1, min(box.size, width, height))
    x = min(max(0, box.x), width - size)
    y = min(max(0, box.y), height - size)
    return CropBox(x, y, size)


# Cascade steps to a size of at least SIMD_STEP_MIN_SIZE by a ratio of at most
# SIMD_STEP_MAX_RATIO (648 -> 504 -> 432 -> 360) use OpenCV's SIMD bicubic instead of Pillow's
# Lanczos: they are 80% of the cascade's pixels, and at such mild ratios a 4-tap kernel barely
# differs (measured against a Lanczos of the full-resolution pixels: 0.45-0.77 grey levels mean
# difference for 504-360 against Lanczos' 0.40-0.49; -14 ms CPU per photo; BENCHMARKS.md).
# Smaller sizes (the 96 directory thumbnail among them) keep Lanczos: cheap there, and sharper.
SIMD_STEP_MAX_RATIO = 1.3
SIMD_STEP_MIN_SIZE = 360


def _downscales(square: Image.Image, sizes: list[int]) -> dict[int, Image.Image]:
    """Every size in `sizes` (never upscaled), largest first, each from the one before.

    Resizing every size from the 648 master costs a full-width Lanczos pass per size
    (~9x the master's pixels); a cascade costs ~2.5x and differs by < 1 level on average.
    """
    out: dict[int, Image.Image] = {}
    current = square
    for size in sorted(sizes, reverse=True):
        if current.width != size:
            mild = current.width <= size * SIMD_STEP_MAX_RATIO and size >= SIMD_STEP_MIN_SIZE
            if mild and current.mode == "RGB":
                current = _bicubic(current, size)
            else:
                current = current.resize((size, size), Image.Resampling.LANCZOS)
        out[size] = current
    return out


def _bicubic(image: Image.Image, size: int) -> Image.Image:
    import cv2  # here: loaded once per image worker (preloaded), never by the serving path
    import numpy as np

    small = cv2.resize(np.asarray(image), (size, size), interpolation=cv2.INTER_CUBIC)
    return Image.fromarray(small)


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    """A baseline sRGB JPEG with no metadata at all (no EXIF, ICC, comments)."""
    # A fresh image object with `info` emptied: Pillow writes metadata (a comment, and
    # whatever later versions add) from `info` and `encoderinfo`; a copy has neither. A
    # copy is one memcpy (a tobytes/frombytes round trip, a raw encode and decode, cost
    # 4-6x as much). `optimize` is a Huffman pass over the quantized blocks, not a second
    # DCT: 20-50% of the encode's CPU for 15-40% fewer bytes (BENCHMARKS.md, sync).
    clean = image.convert("RGB") if image.mode != "RGB" else image.copy()
    clean.info = {}
    buf = io.BytesIO()
    clean.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def directory_thumbnail(
    square: Image.Image, size: int = SD_MAX, quality: int = JPEG_QUALITY
) -> bytes:
    """The `thumbnailPhoto` JPEG: `size`×`size`, stepping quality down until <= 100 KB."""
    img = square if square.width == size else square.resize((size, size), Image.Resampling.LANCZOS)
    for q in range(quality, 19, -10):
        out = encode_jpeg(img, q)
        if len(out) <= DIRECTORY_LIMIT:
            return out
    raise ImageError(
        ImageErrorKind.THUMBNAIL_TOO_LARGE,
        f"A {size}×{size} directory thumbnail cannot fit in {DIRECTORY_LIMIT:,} bytes even at "
        "low quality; choose a smaller thumbnail size (96 is recommended).",
    )


def resize_jpeg(jpeg: bytes, size: int, quality: int = JPEG_QUALITY) -> bytes:
    """Downscale one of our own renditions (trusted bytes) to `size`×`size`."""
    with Image.open(io.BytesIO(jpeg), formats=["JPEG"]) as source:
        source.draft("RGB", (size, size))
        image = source.convert("RGB")
        if image.width != size:
            image = image.resize((size, size), Image.Resampling.LANCZOS)
        return encode_jpeg(image, quality)


def reencode_directory_photo(
    data: bytes, limits: Limits = Limits(min_side=1), max_side: int = MASTER_MAX
) -> tuple[bytes, int, int]:
    """A directory thumbnail as we serve it: validated, upright, sRGB, re-encoded, not cropped.

    Directory photos need not be square (the modeled system serves them as they are). A
    plain JPEG takes the short way (`_reencode_plain_jpeg`); anything else one decode, at
    the JPEG draft scale that still leaves the long side at least `max_side` (1500 px tall:
    17 ms instead of 30), and one encode.
    """
    plain = _reencode_plain_jpeg(data, limits, max_side)
    if plain is not None:
        return plain
    image, _source, _scale = normalize(data, limits, target=max_side, whole=True)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return encode_jpeg(image), image.width, image.height


def _reencode_plain_jpeg(
    data: bytes, limits: Limits, max_side: int
) -> tuple[bytes, int, int] | None:
    """The common directory photo re-encoded by libjpeg-turbo in one call each way, or None.

    A YCbCr or grey JPEG within every limit, no larger than `max_side`, with no EXIF (so no
    orientation) and no ICC profile, needs none of the pipeline's steps but a decode and an
    encode. Pillow drives libjpeg a scanline per call; simplejpeg (the same libjpeg-turbo)
    does the whole image in one, a fifth of the CPU for a 96 px photo (BENCHMARKS.md, sync).
    The output is a fresh baseline JFIF, metadata-free like `encode_jpeg`'s, without its
    Huffman optimisation (simplejpeg has none). Anything unusual, and any decoder complaint,
    returns None: the full pipeline then handles the photo and words its refusals.
    """
    if not data.startswith(b"\xff\xd8\xff") or len(data) > limits.max_bytes:
        return None
    if _header_needs_pipeline(data) or too_many_scans(data) is not None:
        return None
    try:
        height, width, colorspace, _subsampling = simplejpeg.decode_jpeg_header(data)
        if (
            colorspace not in ("YCbCr", "Gray")
            or max(width, height) > max_side
            or min(width, height) < limits.min_side
            or width * height > limits.max_pixels
        ):
            return None
        # strict: a warning libjpeg would shrug off (a truncated scan) is Pillow's call.
        pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
        jpeg = simplejpeg.encode_jpeg(pixels, quality=JPEG_QUALITY, colorsubsampling="420")
    except ValueError:
        return None
    return jpeg, width, height


def _header_needs_pipeline(data: bytes) -> bool:
    """Whether a JPEG's segments before its first scan hold EXIF or an ICC profile (whose
    orientation and colours only the full pipeline applies), or cannot be walked."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return True
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # the first scan: the header is over
            return False
        if marker in (0xD8, 0xD9) or 0xD0 <= marker <= 0xD7:
            return True  # no image data where the header should be
        if marker == 0xE1 and data.startswith(b"Exif\0", i + 4):
            return True
        if marker == 0xE2 and data.startswith(b"ICC_PROFILE\0", i + 4):
            return True
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return True
