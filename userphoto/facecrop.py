"""Face-aware square crop suggestion: find the main face, frame head and shoulders.

Pure: an image in, a `CropBox` (or None) out. It plugs into `imaging.render(suggest=...)`,
which hands it a small upright RGB image (at most 648 px) and falls back to the centre crop
when it returns None.

Detector: OpenCV's Haar cascade `haarcascade_frontalface_alt2`, bundled with
opencv-python-headless 4.x (`cv2.data.haarcascades`), so it works offline with no model
download. It is dated, but contact photos are the easy case for it — one frontal, well-lit face —
and it costs tens of milliseconds on a small image. `alt2` rather than `default`: on the same
images it gives fewer false positives (shoulders and collars read as faces by `default`).
A DNN detector (YuNet, `cv2.FaceDetectorYN`) would need an ONNX file the wheel does not ship.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, NamedTuple

from PIL import Image

from .model import CropBox

if TYPE_CHECKING:
    import cv2

CASCADE = "haarcascade_frontalface_alt2.xml"

# Detection runs on grey copies scaled to these long sides, cheapest first, stopping at the
# first that finds a face. Haar's cost grows with (image side / smallest face)^2, so the first
# pass looks only for faces of at least MIN_FACE/200 = 1/10 of the long side (every ordinary
# head-and-shoulders photo) for a few ms; only photos where it finds nothing (wide shots with
# a small face, or no face at all) pay for a search of the whole image the seam handed us.
# Each pass: (long side searched, pyramid step between window sizes). A coarser step on the
# first pass looked cheaper but missed faces near its 20 px floor, and every miss pays for
# the fallback pass (measured on bench/import.py's photos: 1.2 -> 9 of 60 fell through and
# cost 44% more on average), so both passes use 10%.
PASSES: tuple[tuple[int, float], ...] = ((200, 1.1), (648, 1.1))
MIN_FACE = 20  # px in the searched image; alt2 is trained on 20x20 windows
MIN_NEIGHBOURS = 3

# Framing: the square is GROW x the detected face box (head, hair and shoulders), and the
# face centre sits FACE_Y of the way down it — the usual portrait placement, which leaves
# less room above the face (hair) than below (chin, neck, shoulders).
GROW = 2.2
FACE_Y = 0.42
# A framing nearly as large as the short side is not worth the zoom: take the full side,
# so already well-framed photos (and re-imported exports, whose face fills 1/GROW of the
# square) are kept whole instead of being nibbled at on every round trip.
SNAP = 0.8
# A square image was framed by someone already (or is one of our own exports): re-frame it
# only when the face is clearly small in it, so detection noise (+-10% on the face box) can
# never make a round trip zoom in.
SNAP_SQUARE = 0.5
SQUARE_TOLERANCE = 0.02


class Face(NamedTuple):
    """A detected face box in the analysed image's pixels."""

    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


_local = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    """One loaded cascade per thread (a classifier is not safe to share across threads)."""
    cascade = getattr(_local, "cascade", None)
    if cascade is None:
        import cv2  # imported here: ~0.1 s, and most commands never crop anything

        cv2.setNumThreads(1)  # callers parallelise across photos; nested threads only contend
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if cascade.empty():
            raise RuntimeError(f"OpenCV could not load {CASCADE} (opencv-python-headless 4.x?)")
        _local.cascade = cascade
    return cascade


def _detect(grey: Image.Image, scale_factor: float) -> list[Face]:
    import numpy as np

    # No histogram equalisation: on a flat backdrop it wrecks the contrast of a small face,
    # and Haar features are variance-normalised per window anyway.
    found = _cascade().detectMultiScale(
        np.asarray(grey, dtype=np.uint8),
        scaleFactor=scale_factor,
        minNeighbors=MIN_NEIGHBOURS,
        minSize=(MIN_FACE, MIN_FACE),
    )
    return [Face(*map(float, box)) for box in found]


def detect_faces(image: Image.Image) -> list[Face]:
    """Every frontal face, in `image`'s pixel coordinates (cheap pass first, then finer)."""
    grey = image.convert("L")
    long_side = max(grey.size)
    for side, scale_factor in PASSES:
        factor = max(1.0, long_side / side)
        small = grey
        if factor > 1:
            small = grey.resize(
                (max(1, round(grey.width / factor)), max(1, round(grey.height / factor))),
                Image.Resampling.BOX,  # area averaging: cheap and alias-free for detection
            )
        faces = _detect(small, scale_factor)
        if faces:
            return [Face(f.x * factor, f.y * factor, f.w * factor, f.h * factor) for f in faces]
        if factor == 1:
            break  # already searched at full resolution
    return []


def main_face(faces: list[Face], width: int, height: int) -> Face | None:
    """The subject: the largest face, with a mild preference for one near the centre."""
    # Haar sometimes adds a head-sized box around a real face; a box holding another
    # detection is that, not a second person, so it yields to the face inside it.
    faces = [f for f in faces if not any(g is not f and _holds(f, g) for g in faces)] or faces
    if not faces:
        return None
    half_diagonal = math.hypot(width, height) / 2

    def score(f: Face) -> float:
        off = math.hypot(f.cx - width / 2, f.cy - height / 2) / half_diagonal
        return f.w * f.h * (1 - 0.3 * off)

    return max(faces, key=score)


def _holds(outer: Face, inner: Face) -> bool:
    return (
        outer.x <= inner.x
        and outer.y <= inner.y
        and outer.x + outer.w >= inner.x + inner.w
        and outer.y + outer.h >= inner.y + inner.h
    )


def frame(face: Face, width: int, height: int) -> CropBox:
    """Head-and-shoulders square around `face`, clamped inside a `width`x`height` image."""
    short = min(width, height)
    side = min(face.w * GROW, short)
    square = abs(width - height) <= SQUARE_TOLERANCE * max(width, height)
    if side >= (SNAP_SQUARE if square else SNAP) * short:
        side = short
    side = max(1, math.floor(side))
    x = round(face.cx - side / 2)
    y = round(face.cy - FACE_Y * side)
    x = min(max(0, x), width - side)
    y = min(max(0, y), height - side)
    return CropBox(x, y, side)


def suggest(image: Image.Image) -> CropBox | None:
    """The `imaging.CropSuggester`: a face-framing square, or None for the centre crop."""
    width, height = image.size
    face = main_face(detect_faces(image), width, height)
    return frame(face, width, height) if face else None
