"""Face-aware crop on real faces: the whole face must land inside the suggested square.

Real faces ship offline with scikit-image: the astronaut (Eileen Collins, NASA, public domain)
and Labeled Faces in the Wild crops (`lfw_subset`, 25x25 grey). They are pasted off-centre
into large canvases, where a centre crop would cut the face off, and run through the real
render pipeline so the seam's scaling is tested too.
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
from userphoto.model import CropBox, User

# Hand-annotated face (hairline to chin, ear to ear) in skimage.data.astronaut(), 512x512.
ASTRONAUT_FACE = (175, 70, 275, 178)
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


def test_astronaut_is_framed_head_and_shoulders() -> None:
    box = facecrop.suggest(astronaut())
    assert_inside(box, ASTRONAUT_FACE, margin=0.25)
    assert box is not None
    # A real zoom onto the subject, not the whole picture ...
    assert box.size < 0.6 * 512
    # ... with the face in the upper half: room for the shoulders below.
    face_cy = (ASTRONAUT_FACE[1] + ASTRONAUT_FACE[3]) / 2
    assert box.y < face_cy < box.y + 0.55 * box.size


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
        box = facecrop.suggest(small)
        # The tile is a tight face crop; its inner 80% is the face proper.
        inner = (x + 0.1 * side, y + 0.1 * side, x + 0.9 * side, y + 0.9 * side)
        assert_inside(box, tuple(v * f for v in inner), margin=0.05)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["coffee", "rocket", "gradient", "noise"])
def test_no_face_falls_back_to_centre(name: str) -> None:
    if name == "gradient":
        image = backdrop(900, 600, seed=1)
    elif name == "noise":
        rng = np.random.default_rng(3)
        image = Image.fromarray(rng.integers(0, 256, (500, 800, 3), dtype=np.uint8))
    else:
        image = Image.fromarray(getattr(data, name)())
    assert facecrop.suggest(image) is None
    rendered = imaging.render(jpeg(image), suggest=facecrop.suggest)
    assert rendered.crop == imaging.centre_crop(image.width, image.height)


def test_frame_clamps_inside_the_image() -> None:
    # A face in the top-left corner: the square is pushed inside, never off the image.
    assert facecrop.frame(Face(0, 0, 50, 50), 400, 300) == CropBox(0, 0, 110)
    # A face at the bottom-right edge.
    box = facecrop.frame(Face(350, 250, 50, 50), 400, 300)
    assert box.x + box.size == 400 and box.y + box.size == 300


def test_frame_snaps_to_the_full_side_when_the_zoom_is_small() -> None:
    # An already framed portrait (face ~45% of the side, e.g. a re-imported export) stays whole.
    assert facecrop.frame(Face(180, 150, 290, 290), 648, 648) == CropBox(0, 0, 648)
    # A landscape photo of a big face: the full height, centred on the face horizontally.
    assert facecrop.frame(Face(500, 100, 250, 250), 1000, 600) == CropBox(325, 0, 600)


def test_main_face_prefers_the_largest() -> None:
    faces = [Face(10, 10, 40, 40), Face(300, 200, 90, 90), Face(600, 20, 60, 60)]
    assert facecrop.main_face(faces, 800, 600) == faces[1]
    assert facecrop.main_face([], 800, 600) is None
    # A head-sized false positive around a real face yields to the face inside it.
    nested = [Face(10, 200, 150, 150), Face(60, 250, 40, 40)]
    assert facecrop.main_face(nested, 500, 375) == nested[1]


def test_exported_square_round_trips_whole() -> None:
    image = backdrop(1600, 900, seed=5)
    paste_astronaut(image, 800, (200, 50))
    first = imaging.render(jpeg(image), suggest=facecrop.suggest)
    again = imaging.render(first.renditions[648], suggest=facecrop.suggest)
    assert again.crop == CropBox(0, 0, 648)


def test_uploads_default_to_the_face_crop_and_store_it(app: App) -> None:
    app.store.add_user(User(id="u1", address="eileen@example.org", display_name="Eileen Collins"))
    image = backdrop(1600, 900, seed=9)
    face = paste_astronaut(image, 400, (1100, 300))
    photo = app.photos.set("eileen@example.org", jpeg(image))
    assert_inside(photo.crop, face)
    assert app.store.get_photo("u1").crop == photo.crop  # type: ignore[union-attr]
    # An explicit box wins over the suggestion.
    explicit = app.photos.set("eileen@example.org", jpeg(image), crop=CropBox(0, 0, 900))
    assert explicit.crop == CropBox(0, 0, 900)


def test_tight_face_crop_keeps_full_detail() -> None:
    """A small face in a 12 MP photo: the 648 master comes from real pixels, not an upscale.

    The first decode (1/2 scale) cannot give 648 px across a ~700 px box, so render decodes
    again at the box's scale: the result equals rendering with that box given explicitly.
    """
    image = backdrop(4000, 3000, seed=11)
    face = paste_astronaut(image, 780, (300, 1900))
    data = jpeg(image)
    suggested = imaging.render(data, suggest=facecrop.suggest)
    assert_inside(suggested.crop, face)
    assert 648 <= suggested.crop.size < 1500 and suggested.sizes[-1] == 648
    explicit = imaging.render(data, crop=suggested.crop)
    a = np.asarray(Image.open(io.BytesIO(suggested.renditions[648])), dtype=float)
    b = np.asarray(Image.open(io.BytesIO(explicit.renditions[648])), dtype=float)
    assert np.abs(a - b).mean() < 0.5


def test_slightly_tight_face_crop_is_widened_not_decoded_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A box a little under what the 1/2-scale decode can fill is widened (one decode)."""
    image = backdrop(4000, 3000, seed=12)
    face = paste_astronaut(image, 1400, (200, 300))  # face ~540 px: box ~1160 < 1296
    data = jpeg(image)
    calls = []
    real = imaging.normalize
    monkeypatch.setattr(imaging, "normalize", lambda *a, **k: calls.append(k) or real(*a, **k))
    rendered = imaging.render(data, suggest=facecrop.suggest)
    assert len(calls) == 1
    assert rendered.crop.size == 1296 and rendered.sizes[-1] == 648
    assert_inside(rendered.crop, face, margin=0.2)
