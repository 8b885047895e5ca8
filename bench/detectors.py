"""Face detector comparison for the crop step: recall, false positives, sideways, ms per image.

Every detector sees what the crop step sees: the upright picture reduced to at most 648 px.
Sets, all from pictures that ship inside packages (nothing downloaded):
- upright portraits: scikit-image's astronaut and cameraman (hand-annotated faces) and 40
  Labeled-Faces-in-the-Wild faces (`lfw_subset`, upscaled and placed off-centre on a grainy
  backdrop), each as the original, recompressed at JPEG q60, downscaled to 640 px, and placed
  off-centre in a 12 MP (4000x3000) frame;
- sideways: the same portraits turned a quarter with no EXIF orientation;
- non-faces: scikit-image's cat, coffee, rocket, coins, Hubble field, horse, moon, brick, grass,
  gravel, retina, immunohistochemistry, page, text, clock, colorwheel, logo, and 20 of
  lfw_subset's non-face patches (upscaled).

A portrait counts as found when a box's centre lies inside its annotated face. For the raw
detectors a "box" is any detection; for userphoto's pipeline (MTCNN + judge + sideways check)
it is a confident crop decision (`face` or `several faces`), which is what the user gets.

    .venv/bin/python -m bench.detectors [--lfw 40] [--quick]

Candidates not measured here, and why: OpenCV's YuNet (`cv2.FaceDetectorYN` is in the wheel,
its ONNX model is not), OpenCV LBP cascades (not in the pip wheel), MediaPipe/BlazeFace (see
BENCHMARKS.md: packaging). dlib's HOG detector is measured when `dlib` imports (the `dlib-bin`
wheel is not a project dependency: `pip install --target DIR dlib-bin`, then PYTHONPATH=DIR).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from skimage import data

from bench.common import parse
from userphoto import facecrop
from userphoto.model import CropReason

Box = tuple[float, float, float, float]  # x0, y0, x1, y1
ASTRONAUT_FACE = (175, 70, 275, 178)
CAMERA_FACE = (180, 105, 257, 195)
NON_FACES = [
    "chelsea",
    "coffee",
    "rocket",
    "coins",
    "hubble_deep_field",
    "horse",
    "moon",
    "brick",
    "grass",
    "gravel",
    "retina",
    "immunohistochemistry",
    "page",
    "text",
    "clock",
    "colorwheel",
    "logo",
]


@dataclass
class Case:
    name: str
    image: Image.Image  # what the crop step sees (<= 648 px)
    face: Box | None  # None: no face to find (non-face or sideways)


def backdrop(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    c0, c1 = rng.integers(40, 220, 3), rng.integers(40, 220, 3)
    img = c0 * (1 - (x + y) / 2) + c1 * (x + y) / 2
    img = img + rng.normal(0, 6, (height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def jpeg_round(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def seen(image: Image.Image) -> tuple[Image.Image, float]:
    """The <= 648 px copy the crop step gets, and its scale."""
    k = min(1.0, 648 / max(image.size))
    if k == 1:
        return image, 1.0
    size = (round(image.width * k), round(image.height * k))
    return image.resize(size, Image.Resampling.BOX), k


def scaled(box: Box, k: float, dx: float = 0, dy: float = 0) -> Box:
    return ((box[0] + dx) * k, (box[1] + dy) * k, (box[2] + dx) * k, (box[3] + dy) * k)


def portraits(lfw: int) -> list[tuple[str, Image.Image, Box]]:
    out: list[tuple[str, Image.Image, Box]] = [
        ("astronaut", Image.fromarray(data.astronaut()), ASTRONAUT_FACE),
        ("camera", Image.fromarray(data.camera()).convert("RGB"), CAMERA_FACE),
    ]
    tiles = data.lfw_subset()[:100]
    rng = np.random.default_rng(5)
    for i in range(lfw):
        side = int(rng.integers(160, 260))
        tile = Image.fromarray((tiles[i] * 255).astype(np.uint8)).convert("RGB")
        tile = tile.resize((side, side), Image.Resampling.BICUBIC)
        canvas = backdrop(640, 480, seed=i)
        x = int(rng.integers(0, 640 - side))
        y = int(rng.integers(0, 480 - side))
        canvas.paste(tile, (x, y))
        inner = (x + 0.1 * side, y + 0.1 * side, x + 0.9 * side, y + 0.9 * side)
        out.append((f"lfw{i}", canvas, inner))
    return out


def build(lfw: int) -> tuple[list[Case], list[Case], list[Case]]:
    upright: list[Case] = []
    sideways: list[Case] = []
    for n, (name, image, face) in enumerate(portraits(lfw)):
        upright.append(Case(name, image, face))
        upright.append(Case(f"{name}-q60", jpeg_round(image, 60), face))
        k = 640 / max(image.size)
        small = image.resize((round(image.width * k), round(image.height * k)), Image.LANCZOS)
        upright.append(Case(f"{name}-640", small, scaled(face, k)))
        big = backdrop(4000, 3000, seed=1000 + n)
        grow = 1500 / max(image.size)
        pasted = image.resize(
            (round(image.width * grow), round(image.height * grow)), Image.LANCZOS
        )
        at = (300 if n % 2 else 4000 - 300 - pasted.width, 900 if n % 3 else 200)
        big.paste(pasted, at)
        on_big = scaled(face, grow, at[0] / grow, at[1] / grow)  # (face + at/grow) * grow
        upright.append(Case(f"{name}-12mp", big, on_big))
        sideways.append(
            Case(f"{name}-sideways", image.rotate(90 if n % 2 else 270, expand=True), None)
        )
    nonfaces = [
        Case(name, Image.fromarray(getattr(data, name)()).convert("RGB"), None)
        for name in NON_FACES
    ]
    patches = data.lfw_subset()[100:120]
    nonfaces += [
        Case(
            f"lfw-nonface{i}",
            Image.fromarray((p * 255).astype(np.uint8)).convert("RGB").resize((200, 200)),
            None,
        )
        for i, p in enumerate(patches)
    ]
    return upright, sideways, [Case(c.name, seen(c.image)[0], None) for c in nonfaces]


# --- detectors: image -> list of boxes (x0, y0, x1, y1) --------------------------------------

Detector = Callable[[Image.Image], list[Box]]


def haar(cascade_name: str, passes: tuple[tuple[int, float], ...]) -> Detector:
    import cv2

    cv2.setNumThreads(1)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + cascade_name)

    def detect(image: Image.Image) -> list[Box]:
        grey = image.convert("L")
        for side, step in passes:
            k = max(1.0, max(grey.size) / side)
            small = (
                grey.resize((round(grey.width / k), round(grey.height / k)), Image.BOX)
                if k > 1
                else grey
            )
            found = cascade.detectMultiScale(
                np.asarray(small), scaleFactor=step, minNeighbors=3, minSize=(20, 20)
            )
            if len(found):
                return [(x * k, y * k, (x + w) * k, (y + h) * k) for x, y, w, h in found]
        return []

    return detect


def dlib_hog() -> Detector | None:
    """dlib's HOG frontal detector (`dlib-bin` wheels, Boost licence), if installed."""
    try:
        import dlib  # type: ignore[import-not-found]
    except ImportError:
        return None
    detector = dlib.get_frontal_face_detector()

    def detect(image: Image.Image) -> list[Box]:
        # Upsample once: its 80 px window misses the smaller faces of a <= 648 px picture.
        found = detector(np.asarray(image.convert("RGB")), 1)
        return [(r.left(), r.top(), r.right(), r.bottom()) for r in found]

    return detect


def mtcnn_raw(image: Image.Image) -> list[Box]:
    return [(f.x, f.y, f.x + f.w, f.y + f.h) for f in facecrop.detect_faces(image)]


def userphoto_pipeline(image: Image.Image) -> list[Box]:
    """What the user gets: a confident crop decision, reported as the chosen face's box."""
    width, height = image.size
    image = image.convert("RGB")
    faces = facecrop.detect_faces(image)
    face, decision = facecrop.judge(faces, width, height)
    if face is None or decision.reason not in (CropReason.FACE, CropReason.SEVERAL):
        return []
    if facecrop.lies_sideways(image, face):
        return []
    return [(face.x, face.y, face.x + face.w, face.y + face.h)]


@dataclass
class Score:
    found: int = 0
    portraits: int = 0
    nonface_hits: int = 0
    nonfaces: int = 0
    sideways_hits: int = 0
    sideways: int = 0
    ms: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)


def hit(boxes: list[Box], face: Box) -> bool:
    return any(
        face[0] <= (b[0] + b[2]) / 2 <= face[2] and face[1] <= (b[1] + b[3]) / 2 <= face[3]
        for b in boxes
    )


def measure(
    detect: Detector, upright: list[Case], sideways: list[Case], nonfaces: list[Case]
) -> Score:
    score = Score()
    detect(upright[0].image)  # warm up (model load)

    def timed(image: Image.Image) -> list[Box]:
        t = time.perf_counter()
        boxes = detect(image)
        score.ms.append((time.perf_counter() - t) * 1000)
        return boxes

    for case in upright:
        score.portraits += 1
        assert case.face is not None
        if hit(timed(case.image), case.face):
            score.found += 1
        else:
            score.missed.append(case.name)
    for case in sideways:
        score.sideways += 1
        score.sideways_hits += bool(timed(case.image))
    for case in nonfaces:
        score.nonfaces += 1
        score.nonface_hits += bool(timed(case.image))
    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=int, default=40, help="LFW faces in the portrait set")
    parser.add_argument("--only", default="", help="measure only detectors whose name has this")
    args = parse(parser, {"lfw": 2})
    upright, sideways, nonfaces = build(args.lfw)
    upright = [Case(c.name, *_seen_case(c)) for c in upright]
    sideways = [Case(c.name, seen(c.image)[0], None) for c in sideways]
    detectors: dict[str, Detector] = {
        "OpenCV Haar alt2, 200+648 px passes (previous default)": haar(
            "haarcascade_frontalface_alt2.xml", ((200, 1.1), (648, 1.1))
        ),
        "OpenCV Haar default, 648 px": haar("haarcascade_frontalface_default.xml", ((648, 1.1),)),
        "MTCNN on cv2.dnn, raw boxes (192+320 px passes)": mtcnn_raw,
        "userphoto: MTCNN + judge + sideways check (confident crops)": userphoto_pipeline,
    }
    hog = dlib_hog()
    if hog is not None:
        detectors["dlib HOG (dlib-bin), 1x upsampled"] = hog
    print(
        f"{len(upright)} upright portrait images, {len(sideways)} sideways, "
        f"{len(nonfaces)} non-face pictures"
    )
    print(
        "| detector | main face found | non-face pictures with a box | sideways with a box "
        "| ms/image (median, p90) |"
    )
    print("|---|---|---|---|---|")
    for name, detect in detectors.items():
        if args.only.lower() not in name.lower():
            continue
        s = measure(detect, upright, sideways, nonfaces)
        ms = sorted(s.ms)
        p90 = ms[int(0.9 * (len(ms) - 1))]
        print(
            f"| {name} | {s.found}/{s.portraits} | {s.nonface_hits}/{s.nonfaces} | "
            f"{s.sideways_hits}/{s.sideways} | {statistics.median(ms):.0f}, {p90:.0f} |"
        )
        if s.missed:
            more = " ..." if len(s.missed) > 12 else ""
            print(f"|   missed: {', '.join(s.missed[:12])}{more} | | | | |")


def _seen_case(case: Case) -> tuple[Image.Image, Box]:
    view, k = seen(case.image)
    assert case.face is not None
    return view, scaled(case.face, k)


if __name__ == "__main__":
    main()
