"""My photo in a real browser: upload a real face, crop, preview, save; cancel; errors."""

from __future__ import annotations

import io
import re
from typing import Any

from PIL import Image

from tests.support.browser import Web, astronaut_png, shot, sign_in
from userphoto.model import CropBox, CropReason, PhotoState

PNG = "image/png"


def crop_shown(page: Any) -> CropBox:
    text = page.locator("#crop-text").inner_text()
    match = re.search(r"Crop: (\d+)×\d+ px at \((\d+), (\d+)\)", text)
    assert match, text
    size, x, y = (int(g) for g in match.groups())
    return CropBox(x, y, size)


def wait_preview(page: Any, version_after: int = 0) -> None:
    page.wait_for_function(
        "() => [96, 240, 648].every(s => { const i = document.getElementById('preview-' + s);"
        " return i && i.complete && i.naturalWidth > 0"
        " && !document.getElementById('preview').hidden; })"
    )


def test_upload_crop_preview_save(page: Any, web: Web) -> None:
    before = web.api_photo("kim").content  # no photo yet: the generated initials
    sign_in(page, web, "kim")
    page.get_by_text("choose a file").wait_for()
    page.set_input_files(
        "#file", files=[{"name": "me.png", "mimeType": PNG, "buffer": astronaut_png()}]
    )
    page.locator("#crop").wait_for(state="visible")
    wait_preview(page)
    suggested = crop_shown(page)
    app = web.app()
    try:
        preview = app.store.get_photo(web.ids["kim"], PhotoState.PREVIEW)
        assert preview is not None and preview.crop == suggested  # the server's face crop
        # The portrait rule keeps resolution: the whole 512 px picture, face centred in it.
        assert suggested.size >= 504
        assert preview.crop_decision.reason is CropReason.FACE
        why = page.locator("#crop-why")
        assert why.inner_text().startswith("Suggested around your face")
        assert "guess" not in (why.get_attribute("class") or "")
        # Crop with the keyboard: zoom in twice, move left, then let the preview update.
        page.locator("#stage").focus()
        page.keyboard.press("+")
        page.keyboard.press("+")
        page.keyboard.press("Shift+ArrowLeft")
        page.get_by_text("Preview updated.").wait_for()
        chosen = crop_shown(page)
        assert chosen != suggested and chosen.size < suggested.size
        preview = app.store.get_photo(web.ids["kim"], PhotoState.PREVIEW)
        assert preview is not None and preview.crop == chosen
        assert preview.crop_decision.reason is CropReason.MANUAL
        wait_preview(page)
        shot(page, "web-photo-preview")
        page.get_by_role("button", name="Save photo").click()
        page.get_by_text("Saved.").wait_for()
        saved = app.store.get_photo(web.ids["kim"])
        assert saved is not None and saved.crop == chosen
        assert app.store.get_photo(web.ids["kim"], PhotoState.PREVIEW) is None
    finally:
        app.close()
    # The API serves the new photo within the serving cache's poll interval.
    for _ in range(100):
        after = web.api_photo("kim")
        if after.content != before:
            break
        page.wait_for_timeout(50)
    assert after.status_code == 200 and after.headers["x-photo-source"] == "hd"
    assert after.content != before
    page.locator("img.avatar-lg").evaluate("i => i.decode()")
    shot(page, "web-photo-saved")


def test_cancel_keeps_saved_photo(page: Any, web: Web) -> None:
    before = web.api_photo("bob").content
    sign_in(page, web, "bob")
    # The astronaut at the left of a wide picture: the suggested square can move sideways.
    wide = Image.new("RGB", (1024, 512), (90, 110, 140))
    wide.paste(Image.open(io.BytesIO(astronaut_png())), (0, 0))
    buf = io.BytesIO()
    wide.save(buf, "PNG")
    page.set_input_files(
        "#file", files=[{"name": "new.png", "mimeType": PNG, "buffer": buf.getvalue()}]
    )
    wait_preview(page)
    page.locator("#crop").wait_for(state="visible")
    # Drag the crop square with the mouse: the preview follows.
    first = crop_shown(page)
    box = page.locator("#box").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 30, cy + 20, steps=5)
    page.mouse.up()
    page.get_by_text("Preview updated.").wait_for()
    moved = crop_shown(page)
    assert moved.size == first.size and (moved.x, moved.y) != (first.x, first.y)
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Preview discarded").wait_for()
    assert page.locator("#preview").is_hidden()
    app = web.app()
    try:
        assert app.store.get_photo(web.ids["bob"], PhotoState.PREVIEW) is None
    finally:
        app.close()
    page.wait_for_timeout(300)
    assert web.api_photo("bob").content == before
    shot(page, "web-photo-cancelled")


def test_no_face_upload_says_the_crop_is_a_guess(page: Any, web: Web) -> None:
    from skimage import data

    sign_in(page, web, "kim")
    buf = io.BytesIO()
    Image.fromarray(data.coffee()).save(buf, "PNG")
    page.set_input_files(
        "#file", files=[{"name": "cup.png", "mimeType": PNG, "buffer": buf.getvalue()}]
    )
    page.locator("#crop").wait_for(state="visible")
    why = page.locator("#crop-why")
    assert why.inner_text().startswith("No face found: the suggestion is the centre")
    assert "guess" in (why.get_attribute("class") or "")
    assert crop_shown(page) == CropBox(100, 0, 400)  # the centre-top square of 600x400
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Preview discarded").wait_for()


def test_text_file_shows_the_api_message_inline(page: Any, web: Web) -> None:
    from userphoto import imaging

    sign_in(page, web, "ada")
    text = b"name,address\nAda,ada@contoso.test\n"
    page.set_input_files(
        "#file", files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": text}]
    )
    error = page.locator("#upload-error")
    error.wait_for(state="visible")
    try:
        imaging.inspect(text)
    except imaging.ImageError as exc:
        expected = exc.message
    assert error.inner_text() == expected
    assert "text, not an image" in expected
    assert page.locator("#preview").is_hidden()
    shot(page, "web-photo-error")


def test_phone_width_and_keyboard_reachable(browser: Any, web: Web) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        sign_in(page, web, "ada")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"page scrolls sideways at phone width ({width}px)"
        # The file picker is reachable by keyboard and shows a focus ring.
        page.locator("#file").focus()
        ring = page.locator("#dropzone").evaluate("e => getComputedStyle(e).boxShadow")
        assert ring != "none"
        for img in page.locator("img").all():
            assert img.get_attribute("alt") is not None
        shot(page, "web-photo-phone")
    finally:
        context.close()


def test_picture_and_visibility_settings(page: Any, web: Web) -> None:
    sign_in(page, web, "gus")
    page.get_by_label("A picture from a web address").check()
    page.get_by_role("button", name="Save settings").click()
    error = page.locator(".flash-error")
    error.wait_for()
    assert "needs the web address" in error.inner_text()
    page.get_by_label("A default picture with my initials").check()
    page.get_by_label("Nobody").check()
    page.get_by_role("button", name="Save settings").click()
    page.get_by_text("Settings saved.").wait_for()
    assert page.get_by_label("Nobody").is_checked()
    app = web.app()
    try:
        user = app.store.find_user(web.ids["gus"])
        assert user is not None
        assert (user.picture.value, user.visibility.value) == ("default", "nobody")
    finally:
        app.close()
    shot(page, "web-photo-settings")


def test_phone_photo_with_exif_rotation_crops_upright(page: Any, web: Web) -> None:
    """A sideways-stored camera JPEG: the browser and the server agree on upright pixels."""
    import io

    from PIL import Image
    from skimage import data

    upright = Image.fromarray(data.astronaut()[:384])  # 512 wide, 384 high
    stored = upright.rotate(90, expand=True)  # as a phone stores it: sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    sign_in(page, web, "ada")
    page.set_input_files(
        "#file", files=[{"name": "phone.jpg", "mimeType": "image/jpeg", "buffer": buf.getvalue()}]
    )
    page.locator("#crop").wait_for(state="visible")
    assert "of 512×384." in page.locator("#crop-text").inner_text()
    natural = page.locator("#source").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert natural == [512, 384]
    # The square sits inside the picture on screen.
    image_box = page.locator("#source").bounding_box()
    crop_box = page.locator("#box").bounding_box()
    assert image_box and crop_box
    assert crop_box["x"] >= image_box["x"] - 1 and crop_box["y"] >= image_box["y"] - 1
    assert crop_box["x"] + crop_box["width"] <= image_box["x"] + image_box["width"] + 1
    assert crop_box["y"] + crop_box["height"] <= image_box["y"] + image_box["height"] + 1
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Preview discarded").wait_for()


def test_a_phone_photo_over_the_size_limit_is_shrunk_in_the_browser(page: Any, web: Web) -> None:
    """A camera-sized, noisy, sideways-stored JPEG over [limits] max_bytes: the page shrinks
    it upright (longest side 2048) under the limit, uploads that, and says it did."""
    import numpy as np
    from skimage import data

    rng = np.random.default_rng(48)
    upright = Image.fromarray(data.astronaut()[:384]).resize((3200, 2400), Image.Resampling.BICUBIC)
    pixels = np.asarray(upright, dtype=np.int16) + rng.normal(0, 24, (2400, 3200, 3))
    noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, as a phone does
    buf = io.BytesIO()
    noisy.rotate(90, expand=True).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    photo = buf.getvalue()
    limit = web.app().settings.limits.max_bytes
    assert len(photo) > limit  # the server alone would refuse it (413)

    sign_in(page, web, "pam")
    page.set_input_files(
        "#file", files=[{"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": photo}]
    )
    page.locator("#crop").wait_for(state="visible", timeout=60_000)
    wait_preview(page)
    assert page.locator("#upload-error").is_hidden()
    note = page.locator("#shrink-note")
    assert note.is_visible()
    assert f"Your photo was {len(photo) / 2**20:.1f} MB" in note.inner_text()
    assert "shrank it to 2048×1536 px" in note.inner_text()
    assert "of 2048×1536." in page.locator("#crop-text").inner_text()
    app = web.app()
    try:
        preview = app.store.get_photo(web.ids["pam"], PhotoState.PREVIEW)
        assert preview is not None
        assert (preview.source_width, preview.source_height) == (2048, 1536)  # upright
        assert preview.source_format == "JPEG"
    finally:
        app.close()
    shot(page, "web-photo-shrunk")
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Preview discarded").wait_for()


def test_an_over_limit_file_the_browser_cannot_shrink_gets_the_standard_words(
    page: Any, web: Web
) -> None:
    """Not a picture the browser can decode: it goes as it is, and the server's 413 (read no
    further than the limit) reaches the page as the same words the CLI and API use."""
    from userphoto.errors import too_large

    limit = web.app().settings.limits.max_bytes
    junk = b"\xff\xd8\xff" + bytes(limit + 1024)
    sign_in(page, web, "ada")
    page.set_input_files(
        "#file", files=[{"name": "big.jpg", "mimeType": "image/jpeg", "buffer": junk}]
    )
    error = page.locator("#upload-error")
    error.wait_for(state="visible", timeout=30_000)
    assert error.inner_text() == too_large(limit).message
    assert page.locator("#shrink-note").is_hidden()
    assert page.locator("#preview").is_hidden()
