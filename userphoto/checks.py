"""Automatic photo checks: is this a usable portrait? Declared once, measured once per upload.

Pure: the small upright image the face crop analysed, the source's size and the crop's
suggestion (its detections) in, one `CheckResult` per check out. It runs inside the image
worker's job, right after the crop suggester (`imaging.render(check=...)`), so a check costs no
second decode and no second face detection.

Every check has an id, a measured value, a threshold and an action from `[policy]`
(`refuse`, `review`, `warn`, `off`; `review` behaves as `warn` until approval exists). The
thresholds were chosen by measuring real photos (bench/checks.py, docs/checks.md):

- one_face: confident faces at least RIVAL_SHARE of the largest one's width (a group photo,
  a logo or a landscape fails; a small face far behind the subject does not count);
  a sideways picture counts as no face, since nothing upright was found.
- face_size: the main face's width / the picture's short side, within a range (a speck in a
  landscape or a crowd; an extreme close-up).
- sharpness: the face region at a fixed 32 px, energy of its Laplacian divided by its own
  intensity variance, so neither the face's size in pixels nor its contrast moves the value.
- exposure: the face region's mean luminance (too dark / too bright) and the share of its
  pixels clipped to black or white.
- resolution: the source's short side in pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from .errors import PhotoCheckFailed
from .facecrop import MIN_FACE_SHARE, MIN_SCORE, RIVAL_SHARE, Face, main_face
from .model import CHECK_NAMES, CheckPolicy, CheckResult, SourceInfo

CHECKS = CHECK_NAMES
# The face region is measured at this side whatever its size: measured on real portraits
# (bench/checks.py), 32 px kept every sharp face at >= 0.49 and every blurred one at <= 0.15,
# where 64 px upscaled small faces and read them as blurred.
PATCH = 32
CLIP_LOW, CLIP_HIGH = 8, 247  # luminance counted as clipped black / white

WORDS = {
    "one_face": "one face",
    "face_size": "face size",
    "sharpness": "sharpness",
    "exposure": "exposure",
    "resolution": "resolution",
}


def _face_region(image: Image.Image, face: Face) -> np.ndarray:
    """The face box (clamped to the picture) as PATCH x PATCH luminance, float."""
    box = (
        max(0, round(face.x)),
        max(0, round(face.y)),
        min(image.width, round(face.x + face.w)),
        min(image.height, round(face.y + face.h)),
    )
    patch = image.crop(box).convert("L")
    small = patch.width >= PATCH
    patch = patch.resize(
        (PATCH, PATCH), Image.Resampling.BOX if small else Image.Resampling.BILINEAR
    )
    return np.asarray(patch, dtype=np.float32)


def sharpness(patch: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the patch's intensity variance."""
    lap = (
        patch[1:-1, :-2]
        + patch[1:-1, 2:]
        + patch[:-2, 1:-1]
        + patch[2:, 1:-1]
        - 4 * patch[1:-1, 1:-1]
    )
    spread = float(patch.var())
    return float(lap.var()) / spread if spread > 1.0 else 0.0


def measure(image: Image.Image, source: SourceInfo, suggestion: Any) -> dict[str, float | None]:
    """Each check's measured value (None: nothing to measure, e.g. no face for sharpness)."""
    faces: tuple[Face, ...] = getattr(suggestion, "faces", ())
    width, height = image.size
    confident = [f for f in faces if f.score >= MIN_SCORE]
    main = main_face(confident, width, height)
    values: dict[str, float | None] = {
        "resolution": float(min(source.width, source.height)),
        "one_face": 0.0,
        "face_size": None,
        "sharpness": None,
        "exposure": None,
        "clipped": None,
        "whole": 0.0,  # 1: exposure measured on the whole picture (no face)
    }
    if main is None or getattr(suggestion, "sideways", False):
        # No face to judge: the whole picture's light still says why nothing was found (a
        # nearly black or white photo), so exposure is measured on all of it.
        whole = np.asarray(image.convert("L").reduce(max(1, max(image.size) // 64)), np.float32)
        values["exposure"], values["clipped"] = _light(whole)
        values["whole"] = 1.0
        return values
    share = main.w / min(width, height)
    values["face_size"] = share
    # Faces below the crop's own floor are specks (a poster, a crowd far behind): not people.
    values["one_face"] = float(
        sum(1 for f in confident if f.w >= RIVAL_SHARE * main.w or f is main)
        if share >= MIN_FACE_SHARE
        else 0
    )
    patch = _face_region(image, main)
    values["sharpness"] = sharpness(patch)
    values["exposure"], values["clipped"] = _light(patch)
    return values


def _light(pixels: np.ndarray) -> tuple[float, float]:
    """Mean luminance and the share of pixels clipped to black or white."""
    return float(pixels.mean()), float(((pixels <= CLIP_LOW) | (pixels >= CLIP_HIGH)).mean())


def run(
    policy: CheckPolicy, image: Image.Image, source: SourceInfo, suggestion: Any
) -> tuple[CheckResult, ...]:
    """The `imaging.PhotoChecker`: every check's result under `policy`."""
    return judge(policy, measure(image, source, suggestion))


def judge(policy: CheckPolicy, v: dict[str, float | None]) -> tuple[CheckResult, ...]:
    """Measured values against the policy's thresholds, in plain words."""
    p = policy
    faces = v["one_face"] or 0.0
    results = [
        CheckResult(
            "one_face",
            faces,
            "= 1",
            faces == 1,
            p.one_face,
            "one face found"
            if faces == 1
            else "no face found (none, or too small, dark or blurred to see)"
            if faces == 0
            else f"{faces:.0f} faces: a photo of one person is needed",
        )
    ]
    size = v["face_size"]
    if size is not None:
        ok = p.face_size_min <= size <= p.face_size_max
        results.append(
            CheckResult(
                "face_size",
                size,
                f"{p.face_size_min:.2f}-{p.face_size_max:.2f}",
                ok,
                p.face_size,
                f"the face is {size:.0%} of the picture's width"
                + ("" if ok else " (too small)" if size < p.face_size_min else " (too close)"),
            )
        )
    sharp = v["sharpness"]
    if sharp is not None:
        ok = sharp >= p.sharpness_min
        results.append(
            CheckResult(
                "sharpness",
                sharp,
                f">= {p.sharpness_min:.2f}",
                ok,
                p.sharpness,
                "the face is sharp" if ok else "the face is blurred or out of focus",
            )
        )
    light, clipped = v["exposure"], v["clipped"]
    if light is not None and clipped is not None:
        ok = p.exposure_min <= light <= p.exposure_max and clipped <= p.clipped_max
        what = "the picture" if v.get("whole") else "the face"
        if light < p.exposure_min:
            words = f"{what} is too dark"
        elif light > p.exposure_max:
            words = f"{what} is too bright"
        elif clipped > p.clipped_max:
            words = f"{clipped:.0%} of {what} is clipped to black or white"
        else:
            words = f"{what} is well lit"
        results.append(
            CheckResult(
                "exposure",
                light,
                f"{p.exposure_min:.0f}-{p.exposure_max:.0f}, clipped <= {p.clipped_max:.0%}",
                ok,
                p.exposure,
                words,
            )
        )
    side = v["resolution"] or 0.0
    results.append(
        CheckResult(
            "resolution",
            side,
            f">= {p.resolution_min}",
            side >= p.resolution_min,
            p.resolution,
            f"the photo is {side:.0f} px on its short side"
            + ("" if side >= p.resolution_min else f"; {p.resolution_min} px or more is needed"),
        )
    )
    return tuple(results)


def refusal(results: tuple[CheckResult, ...]) -> PhotoCheckFailed | None:
    """The error for the first check whose action is `refuse` and that failed, if any."""
    for r in results:
        if r.outcome == "refuse":
            return PhotoCheckFailed(
                f"The photo failed the {r.id} check: {r.words} (measured {r.value:.3g}, "
                f"needed {r.threshold}). Upload a photo of one person's face, sharp and well "
                "lit.",
                r.id,
            )
    return None


def summary(results: tuple[CheckResult, ...]) -> str:
    """One line for a header or a report: id=outcome, ... (e.g. `one_face=pass, sharpness=warn`)."""
    return ", ".join(f"{r.id}={r.outcome}" for r in results)


def problems(results: tuple[CheckResult, ...]) -> list[str]:
    """Plain sentences for the failed checks that are not off."""
    return [
        f"{r.words} ({WORDS[r.id]}: {r.value:.3g}, needed {r.threshold}; {r.outcome})"
        for r in results
        if r.outcome != "pass"
    ]
