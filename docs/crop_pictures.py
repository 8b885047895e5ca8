"""Draw the pictures of docs/cropping.md: real photos through the real crop, box and reason shown.

    .venv/bin/python docs/crop_pictures.py      (writes docs/images/crop-*.jpg)

Each picture is the upright source reduced to 360 px wide, the detected faces in thin yellow,
the chosen square in green (a trusted face) or red (a guess), and the decision under it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage import data

from userphoto import facecrop, imaging

OUT = Path(__file__).parent / "images"
WIDTH = 360


def jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def backdrop(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    c0, c1 = rng.integers(60, 200, 3), rng.integers(60, 200, 3)
    img = c0 * (1 - (x + y) / 2) + c1 * (x + y) / 2 + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def cases() -> list[tuple[str, Image.Image]]:
    astronaut = Image.fromarray(data.astronaut())
    twelve = backdrop(4000, 3000, seed=3)
    twelve.paste(astronaut.resize((1500, 1500), Image.Resampling.LANCZOS), (2300, 700))
    wide = backdrop(1600, 900, seed=4)
    wide.paste(astronaut.crop((100, 0, 360, 260)).resize((420, 420)), (40, 60))
    return [
        ("astronaut", astronaut),
        ("camera", Image.fromarray(data.camera()).convert("RGB")),
        ("12mp-off-centre", twelve),
        ("face-near-edge", wide),
        ("sideways", astronaut.rotate(270, expand=True)),
        ("no-face", Image.fromarray(data.coffee())),
    ]


def draw(name: str, image: Image.Image) -> None:
    rendered = imaging.render(jpeg(image), suggest=facecrop.suggest)
    k = WIDTH / image.width
    view = image.convert("RGB").resize((WIDTH, round(image.height * k)), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (WIDTH, view.height + 34), "white")
    canvas.paste(view, (0, 0))
    pen = ImageDraw.Draw(canvas)
    small = image.convert("RGB")
    small.thumbnail((648, 648))
    f = WIDTH / small.width
    for face in facecrop.detect_faces(small):
        pen.rectangle((face.x * f, face.y * f, (face.x + face.w) * f, (face.y + face.h) * f),
                      outline=(250, 210, 0), width=1)  # fmt: skip
    box = rendered.crop
    colour = (210, 30, 30) if rendered.decision.guess else (30, 170, 60)
    pen.rectangle(
        (box.x * k, box.y * k, (box.x + box.size) * k - 1, (box.y + box.size) * k - 1),
        outline=colour,
        width=3,
    )
    text = f"{image.width}x{image.height}: crop {box} -> largest size {rendered.sizes[-1]}"
    pen.text((4, view.height + 3), text, fill="black")
    pen.text((4, view.height + 18), str(rendered.decision)[:60], fill=colour)
    canvas.save(OUT / f"crop-{name}.jpg", quality=85)
    print(f"crop-{name}.jpg  {text}  {rendered.decision}")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, image in cases():
        draw(name, image)


if __name__ == "__main__":
    main()
