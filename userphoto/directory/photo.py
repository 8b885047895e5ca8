"""Directory photos as sync stores them: validated, and re-encoded unless already clean.

Pure (bytes in, verdict out), so worker processes can run it. A raw `thumbnailPhoto` that is
already a clean JPEG (image data only: no EXIF, XMP, ICC profile, comment or trailing bytes;
RGB or grey; at most 648 px) is kept byte for byte once it decodes completely: no generation
loss, and half the CPU of a directory load. Anything else goes through the imaging pipeline
(upright, sRGB, metadata stripped, re-encoded).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from PIL import Image

from .. import imaging
from ..model import MASTER_MAX, DirectoryThumbnail
from .entry import unwrap_base64


@dataclass(frozen=True)
class Prepared:
    """A raw directory photo after validation: a servable JPEG, or the reason there is none."""

    jpeg: bytes | None
    width: int
    height: int
    note: str | None  # usable, but worth telling the troubleshooter (base64 text)
    problem: str | None  # unusable, and why


# Marks a photo whose raw hash matched the stored slot when its page was prepared.
UNCHANGED = Prepared(None, 0, 0, None, "unchanged")

# In entropy-coded data 0xFF is followed only by 0x00 or RSTn, so any of these after the
# first scan starts is a real APPn / COM marker (metadata).
_METADATA_MARKER = re.compile(rb"\xff[\xe0-\xef\xfe]")


def clean_jpeg(data: bytes) -> bool:
    """True for a JPEG holding image data only (a JFIF APP0 header at most)."""
    if not (data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")):
        return False
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: only image data (and tables) from here on
            return _METADATA_MARKER.search(data, i) is None
        if marker == 0xE0:
            if data[i + 4 : i + 9] != b"JFIF\x00":
                return False
        elif 0xE1 <= marker <= 0xEF or marker == 0xFE:
            return False  # EXIF, XMP, ICC, Adobe, comments...
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return False


def _as_is(data: bytes) -> tuple[int, int] | None:
    """Width and height if `data` can be served exactly as it is, else None."""
    if not clean_jpeg(data):
        return None
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            width, height = image.size
            if image.mode not in ("RGB", "L") or not 0 < max(width, height) <= MASTER_MAX:
                return None
            image.load()  # every byte decodes: truncation and corruption show here
    except Exception:
        return None  # let the full pipeline say what is wrong
    return width, height


def prepare_photo(raw: bytes, attribute: str = "thumbnailPhoto") -> Prepared:
    """Validate one raw directory photo and make it servable."""
    data = raw
    note: str | None = None
    decoded = unwrap_base64(raw) if imaging.sniff(raw) is None else None
    if decoded is not None and imaging.sniff(decoded) is not None:
        data = decoded
        note = (
            f"{attribute} holds base64 text, not image bytes; it was decoded and used. "
            "Rewrite it as bytes (`userphoto directory upload`)."
        )
    if attribute.lower() == "thumbnailphoto" and len(raw) > imaging.DIRECTORY_LIMIT:
        return Prepared(
            None,
            0,
            0,
            None,
            (
                f"{attribute} is {len(raw):,} bytes, over the {imaging.DIRECTORY_LIMIT:,}-byte "
                "limit; it was ignored. Upload a 96×96 JPEG (`userphoto directory upload`)."
            ),
        )
    size = _as_is(data)
    if size is not None:
        return Prepared(data, size[0], size[1], note, None)
    try:
        jpeg, width, height = imaging.reencode_directory_photo(data)
    except imaging.ImageError as exc:
        return Prepared(None, 0, 0, None, f"{attribute} is not a usable image: {exc}")
    return Prepared(jpeg, width, height, note, None)


def prepare_many(raws: list[bytes], attribute: str) -> list[Prepared]:
    """Worker-process entry point: one chunk of photos per task."""
    return [prepare_photo(raw, attribute) for raw in raws]


def directory_thumbnail(
    user_id: str,
    prepared: Prepared,
    raw_hash: str,
    raw_size: int,
    old: DirectoryThumbnail | None,
) -> DirectoryThumbnail:
    """The slot's new value; on garbage the last good JPEG stays, with the problem noted."""
    now = datetime.now(UTC)
    if prepared.jpeg is not None:
        return DirectoryThumbnail(
            user_id,
            prepared.jpeg,
            raw_hash,
            raw_size,
            prepared.width,
            prepared.height,
            prepared.note,
            now,
            False,
        )
    return DirectoryThumbnail(
        user_id=user_id,
        jpeg=old.jpeg if old else None,
        raw_hash=raw_hash,
        raw_size=raw_size,
        width=old.width if old else 0,
        height=old.height if old else 0,
        problem=prepared.problem,
        seen=now,
        written_by_us=old.written_by_us if old else False,
    )
