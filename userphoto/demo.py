"""The contoso.example demo organization: ~50 people with generated, varied photos.

Photos are drawn, not downloaded: a coloured backdrop, head and shoulders placed off-centre
in frames of different shapes and sizes, so cropping, sizes and fallbacks all have
something to show.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageDraw

from .model import Account, Picture, User, Visibility

DOMAIN = "contoso.example"

NAMES = [
    "Adele Vance",
    "Alex Wilber",
    "Allan Deyoung",
    "Bianca Pisani",
    "Brian Johnson",
    "Cameron White",
    "Christie Cline",
    "Conf Room Adams",
    "Debra Berger",
    "Delia Dennis",
    "Diego Siciliani",
    "Emily Braun",
    "Enrico Cattaneo",
    "Gerhart Moller",
    "Grady Archie",
    "Henrietta Mueller",
    "Irvin Sayers",
    "Isaiah Langer",
    "Johanna Lorenz",
    "Joni Sherman",
    "Jordan Miller",
    "Lee Gu",
    "Lidia Holloway",
    "Lynne Robbins",
    "Mallory Cortez",
    "Megan Bowen",
    "Miriam Graham",
    "Nestor Wilke",
    "Patti Fernandez",
    "Pradeep Gupta",
    "Raul Razo",
    "Rob Young",
    "Sanjay Shah",
    "Stanley Rich",
    "Zrinka Makovac",
    "Aiko Tanaka",
    "Bruno Costa",
    "Chloe Martin",
    "Dmitri Volkov",
    "Esther Okafor",
    "Farah Haddad",
    "Goran Petrovic",
    "Hana Novak",
    "Ines Duarte",
    "Jonas Berg",
    "Kemal Aydin",
    "Leila Karimi",
    "Mateo Rojas",
    "Nadia Benali",
    "Oskar Lind",
]


@dataclass
class DemoPerson:
    user: User
    photo: bytes | None


def _local(name: str) -> str:
    first, _, last = name.lower().partition(" ")
    return f"{first}.{last.replace(' ', '')}"


def portrait(seed: int, width: int, height: int) -> bytes:
    """A drawn head-and-shoulders picture, placed off-centre, as a JPEG."""
    rng = random.Random(seed)
    bg = tuple(rng.randint(90, 230) for _ in range(3))
    img = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    unit = min(width, height)
    cx = width // 2 + rng.randint(-width // 6, width // 6)
    cy = height // 2 + rng.randint(-height // 10, height // 10)
    head = unit // 5
    skin = rng.choice(
        [(241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172)]
    )
    shirt = tuple(rng.randint(20, 200) for _ in range(3))
    hair = rng.choice([(30, 20, 10), (90, 60, 30), (200, 170, 80), (120, 30, 20), (60, 60, 60)])
    draw.ellipse((cx - 2 * head, cy + head, cx + 2 * head, cy + 5 * head), fill=shirt)
    draw.rectangle(
        (cx - head // 3, cy + head // 2, cx + head // 3, cy + int(1.4 * head)), fill=skin
    )
    draw.ellipse(
        (cx - head - 6, cy - int(1.35 * head) - 8, cx + head + 6, cy + head // 2), fill=hair
    )
    draw.ellipse((cx - head, cy - int(1.3 * head), cx + head, cy + int(1.1 * head)), fill=skin)
    eye = max(2, head // 8)
    for dx in (-head // 2.6, head // 2.6):
        ex, ey = cx + int(dx), cy - head // 5
        draw.ellipse((ex - eye, ey - eye // 2, ex + eye, ey + eye // 2), fill=(250, 250, 250))
        draw.ellipse(
            (ex - eye // 2, ey - eye // 2, ex + eye // 2, ey + eye // 2), fill=(40, 30, 20)
        )
    draw.arc(
        (cx - head // 2, cy + head // 6, cx + head // 2, cy + int(0.7 * head)),
        20,
        160,
        fill=(150, 60, 60),
        width=max(2, head // 15),
    )
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def people() -> Iterator[DemoPerson]:
    """The demo people in a fixed order, each with its photo (or None)."""
    shapes = [(1600, 1200), (1200, 1600), (800, 800), (2000, 1500), (640, 960), (1024, 768)]
    for i, name in enumerate(NAMES):
        local = _local(name)
        user = User(
            id=f"demo-{i:03d}",
            address=f"{local}@{DOMAIN}",
            display_name=name,
            visibility=Visibility.EVERYONE if i % 3 == 0 else Visibility.ORGANIZATION,
        )
        if i % 7 == 0:
            user.aliases = [f"{local.split('.')[0]}@{DOMAIN}"]
        photo: bytes | None = portrait(i, *shapes[i % len(shapes)])
        if i in (4, 11, 19, 26, 33, 40, 47):
            photo = None  # no photo: the default picture shows
        if i == 8:
            user.account = Account.SD_ONLY
        if i == 15:
            user.account = Account.DISABLED
            photo = None
        if i == 22:
            user.picture = Picture.HIDDEN
        if i == 29:
            user.picture = Picture.URL
            user.picture_url = f"https://photos.{DOMAIN}/{local}.jpg"
            photo = None
        if i == 36:
            photo = portrait(i, 300, 240)  # small: sizes stop at 240
        yield DemoPerson(user, photo)
