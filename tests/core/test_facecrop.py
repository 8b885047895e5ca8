"""Face-aware crop on real faces: the face lands inside a portrait square that keeps resolution.

Real photos ship offline with scikit-image: the astronaut (Eileen Collins, NASA, public domain),
the cameraman, and Labeled Faces in the Wild crops (`lfw_subset`, 25x25 grey); its cat, coffee,
rocket, coins and Hubble pictures are the non-faces. Faces are also pasted off-centre into large
canvases, where a centre crop would cut them off, and run through the real render pipeline so
the seam's scaling is tested too. The face boxes below are hand-annotated, not detector output.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image
from skimage import data

from userphoto import facecrop, imaging
from userphoto.app import App
from userphoto.facecrop import Face
from userphoto.model import CropBox, CropReason, User

# Hand-annotated faces (hairline to chin, ear to ear / nose) in scikit-image's 512x512 photos.
ASTRONAUT_FACE = (175, 70, 275, 178)
CAMERA_FACE = (180, 105, 257, 195)
CONFIDENT = (CropReason.FACE, CropReason.SEVERAL)
HEAD = (100, 0, 360, 260)  # a head-and-shoulders cut-out of the astronaut containing the face

Box = tuple[float, float, float, float]


def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


def backdrop(width: int, height: int, seed: int) -> Image.Image:
    """A photographic-ish background: a colour gradient with sensor-like noise."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    c0, c1 = rng.integers(40, 220, 3), rng.integers(40, 220, 3)
    img = c0 * (1 - (x + y) / 2) + c1 * (x + y) / 2 + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def paste_astronaut(canvas: Image.Image, side: int, at: tuple[int, int]) -> Box:
    """Paste the astronaut's head at `at`, `side` px square; return the face box on the canvas."""
    head = astronaut().crop(HEAD).resize((side, side), Image.Resampling.LANCZOS)
    canvas.paste(head, at)
    k = side / (HEAD[2] - HEAD[0])
    x0, y0, x1, y1 = ASTRONAUT_FACE
    return (
        at[0] + (x0 - HEAD[0]) * k,
        at[1] + (y0 - HEAD[1]) * k,
        at[0] + (x1 - HEAD[0]) * k,
        at[1] + (y1 - HEAD[1]) * k,
    )


def assert_inside(box: CropBox | None, face: Box, margin: float = 0.1) -> None:
    """The whole face, plus `margin` x its width on every side, lies inside the crop."""
    assert box is not None, "no face found"
    pad = margin * (face[2] - face[0])
    assert box.x <= face[0] - pad, (box, face)
    assert box.y <= face[1] - pad, (box, face)
    assert box.x + box.size >= face[2] + pad, (box, face)
    assert box.y + box.size >= face[3] + pad, (box, face)


def contains(box: CropBox, face: Box) -> bool:
    return (
        box.x <= face[0]
        and box.y <= face[1]
        and box.x + box.size >= face[2]
        and box.y + box.size >= face[3]
    )


def camera() -> Image.Image:
    return Image.fromarray(data.camera()).convert("RGB")


def recompress(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.mark.parametrize("quality", [None, 75, 60])
def test_astronaut_keeps_its_resolution(quality: int | None) -> None:
    """The face is 44% across the 512 px picture: the rule's largest square with the face
    centred within 8% is the whole picture (and 5 face heights, 540 px, would be more), so
    504 is served where a tight face box gave 230."""
    image = astronaut() if quality is None else recompress(astronaut(), quality)
    rendered = imaging.render(jpeg(image), suggest=facecrop.suggest)
    assert rendered.decision.reason is CropReason.FACE
    assert rendered.decision.confidence >= facecrop.MIN_SCORE
    assert_inside(rendered.crop, ASTRONAUT_FACE, margin=0.25)
    face = ASTRONAUT_FACE
    promised = min(
        512,
        (face[0] + face[2]) / 2 / (0.5 - facecrop.CENTRE_TOLERANCE),
        (face[3] - face[1]) * facecrop.MAX_GROW,
    )
    assert promised == 512
    assert rendered.crop == CropBox(0, 0, 512)
    assert rendered.sizes[-1] == 504


@pytest.mark.parametrize("quality", [None, 60])
def test_cameraman_is_framed_head_and_shoulders(quality: int | None) -> None:
    """A three-quarter face (a narrow box) framed with room for head and shoulders."""
    image = camera() if quality is None else recompress(camera(), quality)
    rendered = imaging.render(jpeg(image), suggest=facecrop.suggest)
    assert rendered.decision.reason is CropReason.FACE
    assert_inside(rendered.crop, CAMERA_FACE, margin=0.25)
    width = CAMERA_FACE[2] - CAMERA_FACE[0]
    assert 3.5 * width <= rendered.crop.size <= 512 and rendered.sizes[-1] >= 360


def portrait_12mp(seed: int = 21) -> tuple[Image.Image, Box]:
    """An off-centre 12 MP frame around a real face (the astronaut's head and shoulders)."""
    image = backdrop(4000, 3000, seed=seed)
    return image, paste_astronaut(image, 1500, (2300, 700))


def relative(box: CropBox, image: Image.Image) -> np.ndarray:
    return np.array([box.x, box.y, box.size]) / min(image.size)


def test_variants_get_the_same_framing() -> None:
    """Recompressed (q75, q60) and downscaled (640 px) copies are framed within 3%."""
    image, face = portrait_12mp()
    first = imaging.render(jpeg(image), suggest=facecrop.suggest)
    assert first.decision.reason is CropReason.FACE
    assert_inside(first.crop, face, margin=0.2)
    assert first.sizes[-1] == 648
    small = image.resize((640, 480), Image.Resampling.LANCZOS)
    variants = [recompress(image, 75), recompress(image, 60), small, recompress(small, 60)]
    for variant in variants:
        again = imaging.render(jpeg(variant), suggest=facecrop.suggest)
        assert again.decision.reason is CropReason.FACE
        gap = np.abs(relative(again.crop, variant) - relative(first.crop, image))
        assert gap.max() < 0.03, (again.crop, first.crop, variant.size)


def test_head_and_shoulders_not_the_whole_wide_frame() -> None:
    """A big 12 MP frame is cut to a portrait around the face, not kept whole."""
    image, face = portrait_12mp()
    box = imaging.render(jpeg(image), suggest=facecrop.suggest).crop
    width = face[2] - face[0]
    assert 2.5 * width <= box.size <= facecrop.MAX_GROW * 1.3 * (face[3] - face[1])
    # Face horizontally centred, eyes (~40% down the face) in the upper part.
    assert abs((face[0] + face[2]) / 2 - (box.x + box.size / 2)) <= 0.1 * box.size
    eyes = face[1] + 0.4 * (face[3] - face[1])
    assert box.y + 0.15 * box.size <= eyes <= box.y + 0.5 * box.size


@pytest.mark.parametrize(
    ("canvas", "side", "at"),
    [
        ((1600, 900), 420, (40, 60)),  # far left, landscape
        ((1600, 900), 380, (1150, 420)),  # bottom right
        ((900, 1600), 400, (450, 1100)),  # portrait canvas, face low down
        ((2400, 1000), 300, (1950, 80)),  # very wide, small face near the right edge
    ],
)
def test_pasted_astronaut_through_the_render_pipeline(
    canvas: tuple[int, int], side: int, at: tuple[int, int]
) -> None:
    image = backdrop(*canvas, seed=side)
    face = paste_astronaut(image, side, at)
    rendered = imaging.render(jpeg(image), suggest=facecrop.suggest)
    # The crop comes back in source pixels although detection saw a <= 648 px copy.
    assert_inside(rendered.crop, face)
    # The centre crop would have cut the face: the suggestion is what saved it.
    assert not contains(imaging.centre_crop(*canvas), face)
    # Every source here has 648 px to give: resolution is kept even for a face near an edge.
    assert rendered.sizes[-1] == 648


def off_centre(rng: random.Random, length: int, side: int) -> int:
    """A position in the first or last third of `length`, never the middle."""
    return rng.choice(
        [rng.randint(0, length // 3 - side), rng.randint(2 * length // 3, length - side)]
    )


def test_lfw_faces_pasted_off_centre() -> None:
    faces = data.lfw_subset()[:100]  # the first 100 are faces (the rest are not)
    rng = random.Random(7)
    for i in range(12):
        width, height = rng.choice([(1200, 800), (800, 1200), (1400, 700)])
        canvas = backdrop(width, height, seed=100 + i)
        side = rng.randint(130, 300)
        tile = faces[rng.randrange(100)]
        face = Image.fromarray((tile * 255).astype(np.uint8)).convert("RGB")
        face = face.resize((side, side), Image.Resampling.BICUBIC)
        # Off-centre: in a side third of the long dimension.
        if width > height:
            x, y = off_centre(rng, width, side), rng.randint(0, height - side)
        else:
            x, y = rng.randint(0, width - side), off_centre(rng, height, side)
        canvas.paste(face, (x, y))
        small = canvas.copy()
        small.thumbnail((648, 648))
        f = small.width / width
        suggestion = facecrop.suggest(small)
        assert suggestion.decision.reason in CONFIDENT, (i, suggestion)
        # The tile is a tight face crop; its inner 80% is the face proper.
        inner = (x + 0.1 * side, y + 0.1 * side, x + 0.9 * side, y + 0.9 * side)
        assert_inside(suggestion.box, tuple(v * f for v in inner), margin=0.05)  # type: ignore[arg-type]


def sideways_cases() -> list[tuple[str, Image.Image]]:
    image, _ = portrait_12mp(seed=31)
    image.thumbnail((1600, 1600))
    return [
        ("astronaut-90", astronaut().rotate(90, expand=True)),
        ("astronaut-270", astronaut().rotate(270, expand=True)),
        ("camera-90", camera().rotate(90, expand=True)),
        ("12mp-270", image.rotate(270, expand=True)),
    ]


@pytest.mark.parametrize(
    ("name", "image"), sideways_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_sideways_pictures_never_get_a_confident_face_crop(name: str, image: Image.Image) -> None:
    """A portrait with no EXIF orientation lies on its side: flagged, centre-top crop."""
    rendered = imaging.render(jpeg(image), suggest=facecrop.suggest)
    assert rendered.decision.reason not in CONFIDENT, rendered.decision
    assert rendered.decision.guess
    assert rendered.crop == imaging.portrait_crop(image.width, image.height)


@pytest.mark.parametrize(
    "name", ["coffee", "rocket", "chelsea", "coins", "hubble_deep_field", "gradient", "noise"]
)
def test_no_face_falls_back_to_centre_top_and_says_so(name: str) -> None:
    if name == "gradient":
        image = backdrop(900, 600, seed=1)
    elif name == "noise":
        rng = np.random.default_rng(3)
        image = Image.fromarray(rng.integers(0, 256, (500, 800, 3), dtype=np.uint8))
    else:
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
    suggestion = facecrop.suggest(image)
    assert suggestion.box is None
    assert suggestion.decision.reason in (CropReason.CENTRE, CropReason.DOUBTFUL)
    rendered = imaging.render(jpeg(image), suggest=facecrop.suggest)
    assert rendered.crop == imaging.portrait_crop(image.width, image.height)
    assert rendered.decision.guess and str(rendered.decision).endswith("[check]")


def test_portrait_crop_sits_high_in_a_tall_picture() -> None:
    assert imaging.portrait_crop(800, 600) == CropBox(100, 0, 600)
    assert imaging.portrait_crop(600, 1000) == CropBox(0, 80, 600)


def test_judge_flags_implausible_faces() -> None:
    upright = ((100.0, 100.0), (140.0, 101.0))
    sideways = ((120.0, 100.0), (121.0, 140.0))
    good = facecrop.Face(90, 80, 60, 75, 0.999, upright)
    assert facecrop.judge([good], 400, 400)[1].reason is CropReason.FACE
    tilted = facecrop.Face(90, 80, 60, 75, 0.999, sideways)
    face, decision = facecrop.judge([tilted], 400, 400)
    assert face is None and decision.reason is CropReason.DOUBTFUL and "sideways" in decision.note
    tiny = facecrop.Face(90, 80, 10, 12, 0.999, upright)
    assert facecrop.judge([tiny], 400, 400)[1].reason is CropReason.DOUBTFUL
    weak = facecrop.Face(90, 80, 60, 75, 0.8, upright)
    assert facecrop.judge([weak], 400, 400)[1].reason is CropReason.DOUBTFUL
    assert facecrop.judge([], 400, 400)[1].reason is CropReason.CENTRE
    rival = facecrop.Face(250, 90, 55, 70, 0.99, ((265.0, 110.0), (290.0, 110.0)))
    face, decision = facecrop.judge([good, rival], 400, 400)
    assert face == good and decision.reason is CropReason.SEVERAL and decision.guess


def test_frame_takes_the_largest_centred_square() -> None:
    eyes = ((480.0, 500.0), (520.0, 500.0))
    face = facecrop.Face(470, 470, 60, 80, 1.0, eyes)  # centre x 500, eyes at y 500
    # Plenty of picture: the ceiling (MAX_GROW x the face's larger side) applies.
    box = facecrop.frame(face, 1000, 1000)
    assert box.size == int(80 * facecrop.MAX_GROW)
    assert abs(box.x + box.size / 2 - 500) <= 1
    assert box.y + 0.3 * box.size <= 500 <= box.y + 0.4 * box.size  # eyes in the upper part
    # ... unless the renditions need more and the rule allows it: resolution wins.
    assert facecrop.frame(face, 1000, 1000, min_side=800).size == 800
    # The eye line limits the rule's square (eyes no lower than EYES_BOTTOM of the side) ...
    assert facecrop.largest_side(face, 1000, 1000) == pytest.approx(500 / 0.55)
    # ... but where the renditions need more and the picture has it, resolution wins.
    assert facecrop.frame(face, 1000, 1000, min_side=950).size == 950
    # A 400 px picture with the face in the middle: the whole picture, though 648 is asked.
    small = facecrop.Face(170, 140, 60, 80, 1.0, ((180.0, 170.0), (220.0, 170.0)))
    assert facecrop.frame(small, 400, 400, min_side=648) == CropBox(0, 0, 400)


def test_frame_near_an_edge_keeps_resolution() -> None:
    face = facecrop.Face(0, 0, 50, 50, 1.0, ((15.0, 20.0), (35.0, 20.0)))
    box = facecrop.frame(face, 1000, 800, min_side=300)
    assert box == CropBox(0, 0, 300)
    box = facecrop.frame(facecrop.Face(930, 730, 50, 50), 1000, 800, min_side=300)
    assert box.x + box.size == 1000 and box.y + box.size == 800


def test_main_face_prefers_the_largest() -> None:
    faces = [Face(10, 10, 40, 40), Face(300, 200, 90, 90), Face(600, 20, 60, 60)]
    assert facecrop.main_face(faces, 800, 600) == faces[1]
    assert facecrop.main_face([], 800, 600) is None


def test_exported_square_round_trips_whole() -> None:
    image, _ = portrait_12mp(seed=5)
    first = imaging.render(jpeg(image), suggest=facecrop.suggest)
    again = imaging.render(first.renditions[648], suggest=facecrop.suggest)
    assert again.crop == CropBox(0, 0, 648)
    assert again.decision.reason is CropReason.FACE


def test_uploads_default_to_the_face_crop_and_store_why(app: App) -> None:
    app.store.add_user(User(id="u1", address="eileen@example.org", display_name="Eileen Collins"))
    image = backdrop(1600, 900, seed=9)
    face = paste_astronaut(image, 400, (1100, 300))
    photo = app.photos.set("eileen@example.org", jpeg(image))
    assert_inside(photo.crop, face)
    stored = app.store.get_photo("u1")
    assert stored is not None and stored.crop == photo.crop
    assert stored.crop_decision.reason is CropReason.FACE
    assert stored.crop_decision.confidence >= facecrop.MIN_SCORE
    # An explicit box wins over the suggestion, and is recorded as manual.
    explicit = app.photos.set("eileen@example.org", jpeg(image), crop=CropBox(0, 0, 900))
    assert explicit.crop == CropBox(0, 0, 900)
    assert explicit.crop_decision.reason is CropReason.MANUAL
    # A picture with no face is stored with the guess recorded.
    coffee = app.photos.set("eileen@example.org", jpeg(Image.fromarray(data.coffee())))
    assert coffee.crop_decision.reason is CropReason.CENTRE and coffee.crop_decision.guess


def test_tight_face_crop_keeps_full_detail() -> None:
    """A box smaller than the first decode can fill: render decodes again at the box's scale,
    so the 648 master comes from real pixels and equals rendering that box explicitly."""
    image = backdrop(4000, 3000, seed=11)
    data_ = jpeg(image)

    def tight(small: Image.Image, _min_side: float) -> facecrop.Suggestion:
        k = small.width / 4000
        box = CropBox(round(300 * k), round(1900 * k), round(700 * k))
        return facecrop.Suggestion(box, facecrop.CropDecision(CropReason.FACE, 0.99))

    suggested = imaging.render(data_, suggest=tight)
    assert 648 <= suggested.crop.size < 800 and suggested.sizes[-1] == 648
    explicit = imaging.render(data_, crop=suggested.crop)
    a = np.asarray(Image.open(io.BytesIO(suggested.renditions[648])), dtype=float)
    b = np.asarray(Image.open(io.BytesIO(explicit.renditions[648])), dtype=float)
    assert np.abs(a - b).mean() < 0.5


def test_slightly_tight_box_is_widened_not_decoded_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """A box a little under what the 1/2-scale decode can fill is widened (one decode)."""
    image = backdrop(4000, 3000, seed=12)
    data_ = jpeg(image)
    calls = []
    real = imaging.normalize
    monkeypatch.setattr(imaging, "normalize", lambda *a, **k: calls.append(k) or real(*a, **k))

    def slightly_tight(small: Image.Image, _min_side: float) -> facecrop.Suggestion:
        k = small.width / 4000
        box = CropBox(round(1000 * k), round(800 * k), round(1160 * k))
        return facecrop.Suggestion(box, facecrop.CropDecision(CropReason.FACE, 0.99))

    rendered = imaging.render(data_, suggest=slightly_tight)
    assert len(calls) == 1
    assert rendered.crop.size == 1296 and rendered.sizes[-1] == 648
