"""Directory photos as sync stores them: validated and re-encoded, never served as read.

Pure (bytes in, verdict out), so worker processes can run it. Every raw `thumbnailPhoto`
goes through the imaging pipeline (upright, sRGB, metadata stripped, re-encoded): a
directory value is as untrusted as an upload, and a JPEG that merely looks clean can still
carry a payload in its tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .. import imaging
from ..model import DirectoryThumbnail
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
