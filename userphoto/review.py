"""The contact sheet of a bulk import: every stored crop small, the guessed ones marked, so
an admin checks hundreds of crops at a glance (`userphoto import --review sheet.png|html`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .photos import Photos
from .store import Store

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
from .bulk import Item, Status

SHEET_TILE = 120  # px per crop on the contact sheet (a stored rendition size: no resampling)
SHEET_COLUMNS = 10
GUESS_COLOUR = (220, 30, 30)


def review_sheet(items: list[Item], store: Store, path: Path) -> int:
    """A contact sheet of every crop this import stored, guesses marked; returns how many.

    HTML when `path` ends in .html/.htm (inline images, each captioned with the file, user
    and crop decision), else an image (PNG, or whatever Pillow makes of the suffix) with a
    red frame and a "?" corner on every crop that was a guess.
    """
    shown: list[tuple[Item, bytes]] = []
    for item in items:
        if item.status not in (Status.IMPORTED, Status.REPLACED) or not item.user_id:
            continue
        photo = store.get_photo(item.user_id)
        if photo is None:
            continue
        data = store.get_rendition(photo.id, Photos.fit(photo, SHEET_TILE))
        if data is not None:
            shown.append((item, data))
    if path.suffix.lower() in (".html", ".htm"):
        path.write_text(_sheet_html(shown), encoding="utf-8")
    else:
        _sheet_image(shown).save(path)
    return len(shown)


def _sheet_html(shown: list[tuple[Item, bytes]]) -> str:
    import base64
    from html import escape

    guesses = sum(1 for item, _ in shown if item.crop_guess)
    cells = []
    for item, data in shown:
        src = "data:image/jpeg;base64," + base64.b64encode(data).decode()
        mark = ' class="guess"' if item.crop_guess else ""
        score = "" if item.crop_confidence is None else f" {item.crop_confidence:.2f}"
        cells.append(
            f'<figure{mark} title="{escape(item.file)}: {escape(item.detail)}">'
            f'<img src="{src}" width="{SHEET_TILE}" height="{SHEET_TILE}" alt="">'
            f"<figcaption>{escape(item.user)}<br>{escape(item.crop_reason)}{score}"
            "</figcaption></figure>"
        )
    return (
        "<!doctype html><meta charset=utf-8><title>Import review</title>\n"
        "<style>body{font:13px sans-serif}figure{display:inline-block;margin:4px;width:"
        f"{SHEET_TILE + 8}px;vertical-align:top}}figure img{{border:4px solid #ddd}}"
        "figure.guess img{border-color:#dc1e1e}figcaption{overflow-wrap:anywhere}</style>\n"
        f"<h1>Import review: {len(shown)} crops, {guesses} to check</h1>\n"
        "<p>Red frames are guesses (no face, a doubtful one, or several faces): fix one with "
        "<code>userphoto set ADDRESS FILE --crop X,Y,SIZE</code> or the web crop tool.</p>\n"
        + "\n".join(cells)
        + "\n"
    )


def _sheet_image(shown: list[tuple[Item, bytes]]) -> PILImage:
    import io

    from PIL import Image, ImageDraw

    pad, label = 6, 14
    cell_w, cell_h = SHEET_TILE + 2 * pad, SHEET_TILE + 2 * pad + label
    columns = max(1, min(SHEET_COLUMNS, len(shown)))
    rows = max(1, -(-len(shown) // columns))
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (item, data) in enumerate(shown):
        left, top = (n % columns) * cell_w, (n // columns) * cell_h
        with Image.open(io.BytesIO(data)) as opened:
            tile = opened.convert("RGB")
            if tile.width != SHEET_TILE:
                tile = tile.resize((SHEET_TILE, SHEET_TILE), Image.Resampling.LANCZOS)
            sheet.paste(tile, (left + pad, top + pad))
        if item.crop_guess:
            draw.rectangle(
                (left + 2, top + 2, left + cell_w - 3, top + pad * 2 + SHEET_TILE - 3),
                outline=GUESS_COLOUR,
                width=4,
            )
            draw.rectangle((left + pad, top + pad, left + pad + 16, top + pad + 16), GUESS_COLOUR)
            draw.text((left + pad + 5, top + pad + 2), "?", fill="white")
        draw.text((left + pad, top + SHEET_TILE + 2 * pad), item.user[:20], fill="black")
    return sheet
