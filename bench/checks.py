"""The automatic photo checks on real photos: good portraits wrongly flagged, bad photos caught.

Every photo goes through the upload path's own render (`RenderOptions.render`: decode, face
crop, checks in one job) as JPEG bytes, with every check set to `warn` so each is measured.
Sets, all built from real photos that ship inside scikit-image (nothing downloaded, nothing
synthetic but the backdrop a portrait is placed on):

- good portraits: the astronaut (Eileen Collins, NASA, public domain) and the cameraman, each
  as shipped, mirrored, recompressed (q50, q75), scaled (0.75x, 1.5x of the original), a tighter
  head-and-shoulders cut, placed off-centre in a 12 MP frame (face ~16% of the short side),
  a little darker (x0.8) and brighter (x1.2); also q30, scaled 0.65x and 2x, turned 6 degrees
  either way, gamma 0.8 and 1.25, contrast 0.8 and 1.25, grey, cut off-centre left and right,
  and placed in a 1600x1100 frame;
- non-portraits: scikit-image's cat, coffee, rocket, coins, Hubble field, horse, moon, brick,
  grass, gravel, retina, immunohistochemistry, page, text, clock, colorwheel, logo;
- groups: no public-domain group photo ships offline, so groups are COMPOSED from real
  portraits side by side: the astronaut and the cameraman, and 2-6 Labeled-Faces-in-the-Wild
  faces (`lfw_subset`, upscaled) in a row;
- blurred: each good base portrait blurred (Gaussian, radius 2.5-6 % of the face width);
- dark / bright: each base portrait at x0.2 and x0.3 brightness, and at x2.2 (clipped);
- tiny face: each base portrait placed small in a 1200x800 frame (face 4-7% of the short side);
- close-up: a square of 1 and 1.2 face widths around the face, at 600 px;
- low resolution: each base portrait scaled to 160 and 240 px.

    .venv/bin/python -m bench.checks [--quick]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from skimage import data

from bench.common import parse
from userphoto import facecrop
from userphoto.model import CHECK_NAMES, CheckPolicy, CheckResult, Limits
from userphoto.photos import RenderOptions

NON_FACES = [
    "chelsea", "coffee", "rocket", "coins", "hubble_deep_field", "horse", "moon", "brick",
    "grass", "gravel", "retina", "immunohistochemistry", "page", "text", "clock",
    "colorwheel", "logo",
]  # fmt: skip
ASTRONAUT_FACE_W, CAMERA_FACE_W = 100, 77  # px in the shipped 512 px pictures


def backdrop(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    c0, c1 = rng.integers(40, 220, 3), rng.integers(40, 220, 3)
    img = c0 * (1 - (x + y) / 2) + c1 * (x + y) / 2
    img = img + rng.normal(0, 6, (height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def bases() -> list[tuple[str, Image.Image, int]]:
    return [
        ("astronaut", Image.fromarray(data.astronaut()), ASTRONAUT_FACE_W),
        ("camera", Image.fromarray(data.camera()).convert("RGB"), CAMERA_FACE_W),
    ]


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def scale(image: Image.Image, k: float) -> Image.Image:
    size = (round(image.width * k), round(image.height * k))
    return image.resize(size, Image.Resampling.LANCZOS)


def placed(image: Image.Image, side: int, frame: tuple[int, int], seed: int) -> Image.Image:
    canvas = backdrop(*frame, seed=seed)
    k = side / max(image.size)
    small = scale(image, k)
    canvas.paste(small, (frame[0] - small.width - frame[0] // 10, frame[1] // 6))
    return canvas


def closeup(image: Image.Image, face: int, k: float) -> Image.Image:
    """A square `k` face widths wide around the face, at 600 px: a face filling the frame."""
    cx, cy = (225, 124) if face == ASTRONAUT_FACE_W else (218, 150)
    half = face * k / 2
    box = (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
    return image.crop(box).resize((600, 600), Image.Resampling.LANCZOS)


def good() -> Iterator[tuple[str, bytes]]:
    for n, (name, image, _face) in enumerate(bases()):
        yield name, jpeg(image)
        yield f"{name}-mirror", jpeg(ImageOps.mirror(image))
        yield f"{name}-q50", jpeg(image, 50)
        yield f"{name}-q75", jpeg(image, 75)
        yield f"{name}-0.75x", jpeg(scale(image, 0.75))
        yield f"{name}-1.5x", jpeg(scale(image, 1.5))
        yield f"{name}-tight", jpeg(image.crop((60, 0, 440, 380)))
        yield f"{name}-12mp", jpeg(placed(image, 2400, (4000, 3000), 100 + n))
        yield f"{name}-darker", jpeg(ImageEnhance.Brightness(image).enhance(0.8))
        yield f"{name}-brighter", jpeg(ImageEnhance.Brightness(image).enhance(1.2))
        yield f"{name}-q30", jpeg(image, 30)
        yield f"{name}-0.65x", jpeg(scale(image, 0.65))
        yield f"{name}-2x", jpeg(scale(image, 2.0))
        for angle in (-6, 6):
            yield f"{name}-rot{angle}", jpeg(image.rotate(angle, Image.Resampling.BICUBIC))
        for gamma in (0.8, 1.25):
            yield f"{name}-gamma{gamma}", jpeg(image.point(lambda v, g=gamma: 255 * (v / 255) ** g))
        for k in (0.8, 1.25):
            yield f"{name}-contrast{k}", jpeg(ImageEnhance.Contrast(image).enhance(k))
        yield f"{name}-grey", jpeg(image.convert("L"))
        yield f"{name}-left", jpeg(image.crop((0, 0, 400, 420)))
        yield f"{name}-right", jpeg(image.crop((100, 0, 512, 440)))
        yield f"{name}-wide", jpeg(placed(image, 1000, (1600, 1100), 200 + n))


def lfw_row(count: int, seed: int) -> Image.Image:
    tiles = data.lfw_subset()[:100]
    canvas = backdrop(220 * count + 40, 360, seed)
    for i in range(count):
        tile = Image.fromarray((tiles[(seed * 7 + i) % 100] * 255).astype(np.uint8))
        canvas.paste(
            tile.convert("RGB").resize((200, 200), Image.Resampling.BICUBIC), (20 + 220 * i, 80)
        )
    return canvas


def bad() -> Iterator[tuple[str, str, bytes]]:
    """(kind, name, bytes); kind is the check that should catch it."""
    for name in NON_FACES:
        yield "one_face", name, jpeg(Image.fromarray(getattr(data, name)()))
    a, c = (b[1] for b in bases())
    pair = backdrop(1100, 560, 7)
    pair.paste(a, (20, 24))
    pair.paste(scale(c, 1.05), (560, 10))
    yield "one_face", "group-astronaut-camera", jpeg(pair)
    for count in (2, 3, 4, 5, 6):
        for seed in (1, 2):
            yield "one_face", f"group-lfw{count}-{seed}", jpeg(lfw_row(count, seed))
    for name, image, face in bases():
        for share in (0.025, 0.04, 0.06):
            yield (
                "sharpness",
                f"{name}-blur{share}",
                jpeg(image.filter(ImageFilter.GaussianBlur(face * share))),
            )
        for k in (0.2, 0.3):
            yield "exposure", f"{name}-dark{k}", jpeg(ImageEnhance.Brightness(image).enhance(k))
        yield "exposure", f"{name}-bright2.2", jpeg(ImageEnhance.Brightness(image).enhance(2.2))
        for n, side in enumerate((160, 220, 280)):
            yield "face_size", f"{name}-tiny{side}", jpeg(placed(image, side, (1200, 800), 300 + n))
        for k in (1.0, 1.2):
            yield "face_size", f"{name}-closeup{k}", jpeg(closeup(image, face, k))
        for side in (160, 240):
            yield "resolution", f"{name}-{side}px", jpeg(scale(image, side / 512))


def no_face(results: tuple[CheckResult, ...]) -> bool:
    return any(r.id == "one_face" and r.value == 0 for r in results)


def main() -> None:
    # Already a short run: --quick (make bench) runs it whole.
    parse(argparse.ArgumentParser(description=__doc__.splitlines()[0]), {})
    facecrop.warm_up()
    warn_all = CheckPolicy()  # defaults are warn: every check measured and reported
    opts = RenderOptions(Limits(min_side=64), facecrop.suggest, 96, 648, 85, warn_all)
    flagged: dict[str, int] = dict.fromkeys(CHECK_NAMES, 0)
    caught: dict[str, list[int]] = {k: [0, 0] for k in CHECK_NAMES}
    caught_any = [0, 0]
    good_any = 0
    goods = 0
    began = time.perf_counter()
    rows = []
    for name, raw in good():
        goods += 1
        results = opts.render(raw).checks
        failed = [r.id for r in results if not r.passed]
        good_any += bool(failed)
        for f in failed:
            flagged[f] += 1
        rows.append(("good", name, failed, results))
    bads = 0
    for kind, name, raw in bad():
        bads += 1
        results = opts.render(raw).checks
        failed = [r.id for r in results if not r.passed]
        caught[kind][1] += 1
        # A face too small, dark or blurred for the detector is caught as "no face found".
        caught[kind][0] += kind in failed or (kind != "one_face" and no_face(results))
        caught_any[1] += 1
        caught_any[0] += bool(failed)
        rows.append((kind, name, failed, results))
    took = time.perf_counter() - began
    for kind, name, failed, results in rows:
        values = " ".join(f"{r.id}={r.value:.3g}" for r in results)
        print(f"{kind:10} {name:28} failed={','.join(failed) or '-':28} {values}")
    print()
    print(
        f"{goods} good portraits, {bads} bad photos, "
        f"{took / (goods + bads) * 1000:.0f} ms per photo through the whole render"
    )
    print("| check | good portraits flagged | bad photos of its kind caught (by it, or no face) |")
    print("|---|---|---|")
    for check in CHECK_NAMES:
        hit, of = caught[check]
        rate = f"{hit}/{of} ({hit / of:.0%})" if of else "-"
        print(f"| {check} | {flagged[check]}/{goods} ({flagged[check] / goods:.0%}) | {rate} |")
    print(
        f"| any check | {good_any}/{goods} ({good_any / goods:.0%}) | "
        f"{caught_any[0]}/{caught_any[1]} ({caught_any[0] / caught_any[1]:.0%}) |"
    )


if __name__ == "__main__":
    main()
