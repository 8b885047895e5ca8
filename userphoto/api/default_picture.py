"""Generated pictures: initials on a colour derived from a seed, a silhouette, an identicon.

The seed is the user id for internal viewers; for external viewers it is the request's own
key (the address hash), so the answer never depends on whether the user exists.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from ..imaging import encode_jpeg


def initials_of(name: str) -> str:
    """'Ada Lovelace' → 'AL'; 'ada.lovelace@x' → 'AL'; one word → its first letter."""
    name = name.strip().partition("@")[0]
    words = [w for w in name.replace(".", " ").replace("_", " ").replace("-", " ").split() if w]
    letters = [w[0] for w in words if w[0].isalnum()]
    if not letters:
        return "?"
    picked = letters[0] + (letters[-1] if len(letters) > 1 else "")
    return picked.upper()


def colour_of(seed: str) -> tuple[int, int, int]:
    """A stable, fairly dark colour (white text stays readable on it)."""
    digest = hashlib.sha256(seed.encode()).digest()
    hue = digest[0] / 255 * 6
    c, x = 0.55, 0.55 * (1 - abs(hue % 2 - 1))
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(hue) % 6]
    m = 0.18
    return tuple(int((v + m) * 255) for v in (r, g, b))  # type: ignore[return-value]


@lru_cache(maxsize=64)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(px, 1))


@lru_cache(maxsize=512)
def initials(text: str, seed: str, size: int) -> bytes:
    """A size×size JPEG of `text` (1–2 letters) centred on the seed's colour."""
    image = Image.new("RGB", (size, size), colour_of(seed))
    draw = ImageDraw.Draw(image)
    font = _font(int(size * (0.42 if len(text) > 1 else 0.5)))
    draw.text((size / 2, size / 2), text[:2], fill=(255, 255, 255), font=font, anchor="mm")
    return encode_jpeg(image)


@lru_cache(maxsize=128)
def silhouette(size: int) -> bytes:
    """The 'mystery person' (`d=mp`): a grey head and shoulders."""
    scale = 4 if size < 256 else 1  # draw large and shrink: smooth edges at small sizes
    side = size * scale
    image = Image.new("RGB", (side, side), (201, 206, 213))
    draw = ImageDraw.Draw(image)
    fg = (245, 246, 248)
    draw.ellipse((side * 0.32, side * 0.16, side * 0.68, side * 0.52), fill=fg)
    draw.ellipse((side * 0.14, side * 0.58, side * 0.86, side * 1.3), fill=fg)
    if scale != 1:
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return encode_jpeg(image)


@lru_cache(maxsize=512)
def identicon(seed: str, size: int) -> bytes:
    """A 5×5 mirrored block pattern from the seed (GitHub/Gravatar style)."""
    digest = hashlib.sha256(seed.encode()).digest()
    colour = colour_of(seed)
    cells = 5
    grid = Image.new("RGB", (cells, cells), (240, 240, 240))
    for y in range(cells):
        for x in range(3):
            if digest[1 + y * 3 + x] & 1:
                grid.putpixel((x, y), colour)
                grid.putpixel((cells - 1 - x, y), colour)
    return encode_jpeg(grid.resize((size, size), Image.Resampling.NEAREST))


@lru_cache(maxsize=64)
def blank(size: int) -> bytes:
    return encode_jpeg(Image.new("RGB", (size, size), (255, 255, 255)))
