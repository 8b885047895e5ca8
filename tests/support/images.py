"""Generated test images of every odd kind, built in memory (no binary fixtures to trust)."""

from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
from PIL import Image


# --- a face to find: the astronaut's head on a plain backdrop -------------------------------
@functools.cache
def astronaut_head() -> Image.Image:
    """scikit-image's astronaut, head only (260 px square): a real face for the face crop."""
    from skimage import data  # loaded by the tests that need a face, not by every importer

    return Image.fromarray(data.astronaut()).crop((100, 0, 360, 260))


def face_photo(seed: int, size: tuple[int, int] = (480, 320), noise: float = 4.0) -> bytes:
    """A JPEG: a gradient backdrop with the astronaut's head pasted off-centre."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(60, 200, 3) * np.ones((h, w, 3))
    img = base + np.linspace(0, 50, w)[None, :, None] + rng.normal(0, noise, (h, w, 3))
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    side = int(h * 0.6)
    x = int(rng.integers(0, w // 4)) if seed % 2 else int(rng.integers(3 * w // 4 - side, w - side))
    canvas.paste(astronaut_head().resize((side, side)), (max(0, x), int(rng.integers(0, h - side))))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=88)
    return buf.getvalue()


# --- a Display-P3 ICC profile, built from its primaries ------------------------------------
D65 = np.array([0.95047, 1.0, 1.08883])
D50 = np.array([0.96422, 1.0, 0.82521])
BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)
P3_PRIMARIES = [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)]
SRGB_PRIMARIES = [(0.640, 0.330), (0.300, 0.600), (0.150, 0.060)]
GAMMA = 2.2


def rgb_to_xyz(primaries: list[tuple[float, float]], white: np.ndarray = D65) -> np.ndarray:
    """The RGB→XYZ matrix for the given chromaticities and white point."""
    m = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    scale = np.linalg.solve(m, white)
    return m * scale


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(xyz: np.ndarray) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def icc_profile(primaries: list[tuple[float, float]], gamma: float = GAMMA) -> bytes:
    """A minimal ICC v2 matrix/TRC RGB display profile (D50-adapted, as ICC requires)."""
    adapt = np.linalg.inv(BRADFORD) @ np.diag((BRADFORD @ D50) / (BRADFORD @ D65)) @ BRADFORD
    matrix = adapt @ rgb_to_xyz(primaries)
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    desc_text = b"Test P3\0"
    desc = (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(desc_text))
        + desc_text
        + b"\0" * 8
        + b"\0\0\0"
        + b"\0" * 67
    )
    desc += b"\0" * (-len(desc) % 4)
    tags = [
        (b"desc", desc),
        (b"wtpt", _xyz_tag(D50)),
        (b"rXYZ", _xyz_tag(matrix[:, 0])),
        (b"gXYZ", _xyz_tag(matrix[:, 1])),
        (b"bXYZ", _xyz_tag(matrix[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def p3_to_srgb(rgb: tuple[int, int, int]) -> np.ndarray:
    """What a colour-managed viewer shows for a P3 pixel, in 8-bit sRGB (independent math)."""
    linear = (np.array(rgb) / 255.0) ** GAMMA
    xyz = rgb_to_xyz(P3_PRIMARIES) @ linear
    srgb_linear = np.clip(np.linalg.solve(rgb_to_xyz(SRGB_PRIMARIES), xyz), 0, 1)
    encoded = np.where(
        srgb_linear <= 0.0031308, 12.92 * srgb_linear, 1.055 * srgb_linear ** (1 / 2.4) - 0.055
    )
    return encoded * 255


# --- encoders -------------------------------------------------------------------------------
def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def two_tone(width: int, height: int, first=(255, 0, 0), second=(0, 0, 255)) -> Image.Image:
    """Left half `first`, right half `second`."""
    img = Image.new("RGB", (width, height), second)
    img.paste(first, (0, 0, width // 2, height))
    return img


def jpeg_with_orientation(orientation: int) -> bytes:
    """A 200×100 stored image, left red / right blue, tagged with an EXIF orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(two_tone(200, 100), "JPEG", quality=95, exif=exif.tobytes())


def png_header_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG that claims width×height but carries almost no (and invalid) pixel data.

    If anything tried to decode it, it would fail as corrupt; a header check says "too many
    pixels" first.
    """

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg_markers(data: bytes) -> list[int]:
    """The marker bytes of a JPEG's header segments up to the scan (APPn, COM, DQT, ...)."""
    markers, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: header segments end here
            break
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return markers


# --- hostile inputs: cheap to send, expensive to decode --------------------------------------


def scan_segments(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every scan of a JPEG: its SOS header and entropy-coded data."""
    scans, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xD9:
            break
        end = i + 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker != 0xDA:
            i = end
            continue
        j = end
        while True:  # skip entropy data to the next marker that is not RSTn / stuffing
            j = data.index(b"\xff", j)
            if data[j + 1] == 0 or 0xD0 <= data[j + 1] <= 0xD7:
                j += 2
                continue
            break
        scans.append((i, j))
        i = j
    return scans


def scan_bomb(repeats: int, side: int = 6000) -> bytes:
    """A progressive JPEG with one small scan repeated `repeats` more times.

    A flat image's AC scans are a few dozen bytes (one end-of-band run covers the frame),
    yet the decoder walks every block of the frame for each: ~40 ms per 59-byte repeat at
    6000×6000 here, so a 4 MB file would hold most of an hour of CPU.
    """
    data = encode(Image.new("RGB", (side, side), (120, 130, 140)), "JPEG", progressive=True)
    scans = scan_segments(data)
    # The smallest scan over the whole luminance AC band (libjpeg's progression has two
    # of 59 bytes here; the later one costs most per byte).
    start, end = min(reversed(scans), key=lambda s: s[1] - s[0] if s[1] - s[0] > 40 else 1e9)
    last = scans[-1][1]
    return data[:last] + data[start:end] * repeats + data[last:]


def png_rgba(width: int, height: int) -> bytes:
    """A flat RGBA PNG of width×height: a few hundred KB that decode to width×height×4 bytes."""
    row = b"\0" + b"\x80\x80\x80\xff" * width
    raw = zlib.compressobj(9)
    body = b"".join(raw.compress(row) for _ in range(height)) + raw.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def noise_jpeg(side: int) -> bytes:
    """A JPEG of random noise: big for its size, like a camera file."""
    rng = np.random.default_rng(side)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=95
    )
    return buf.getvalue()
