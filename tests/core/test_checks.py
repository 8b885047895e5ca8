"""The automatic photo checks on real photos, and where their results are shown.

Real photos ship with scikit-image: the astronaut (Eileen Collins, NASA, public domain), the
cameraman, Labeled-Faces-in-the-Wild crops and non-portraits (coffee). Bad variants are made
from the real portraits (blurred, darkened, cut to a close-up, scaled down); the group photo is
composed of real LFW faces side by side (no public-domain group photo ships offline).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from skimage import data

from tests.conftest import RunCli
from tests.support.browser import Web, sign_in
from tests.support.server import addr, serving
from userphoto import checks, facecrop
from userphoto.app import App
from userphoto.config import Settings
from userphoto.errors import PhotoCheckFailed
from userphoto.model import CheckPolicy, CheckResult, Limits, PhotoState, User
from userphoto.photos import RenderOptions


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


def camera() -> Image.Image:
    return Image.fromarray(data.camera()).convert("RGB")


def scale(image: Image.Image, k: float) -> Image.Image:
    return image.resize((round(image.width * k), round(image.height * k)), Image.LANCZOS)


def blurred() -> Image.Image:
    return astronaut().filter(ImageFilter.GaussianBlur(4))  # 4% of the 100 px face


def group(count: int = 3) -> Image.Image:
    """Real LFW faces side by side on a plain ground (a composed group photo)."""
    tiles = data.lfw_subset()[:100]
    canvas = Image.new("RGB", (220 * count + 40, 360), (120, 130, 140))
    for i in range(count):
        tile = Image.fromarray((tiles[10 + i] * 255).astype(np.uint8)).convert("RGB")
        canvas.paste(tile.resize((200, 200), Image.BICUBIC), (20 + 220 * i, 80))
    return canvas


def closeup() -> Image.Image:
    return astronaut().crop((175, 74, 275, 174)).resize((600, 600), Image.LANCZOS)


def run(image: Image.Image, policy: CheckPolicy | None = None) -> dict[str, CheckResult]:
    policy = policy or CheckPolicy()
    options = RenderOptions(Limits(min_side=64), facecrop.suggest, 96, 648, 85, policy)
    return {r.id: r for r in options.render(jpeg(image)).checks}


GOOD: dict[str, Callable[[], Image.Image]] = {
    "astronaut": astronaut,
    "astronaut-mirror": lambda: ImageOps.mirror(astronaut()),
    "astronaut-1.5x": lambda: scale(astronaut(), 1.5),
    "camera": camera,
    "camera-darker": lambda: ImageEnhance.Brightness(camera()).enhance(0.8),
}


@pytest.mark.parametrize("name", GOOD)
def test_good_portraits_pass_every_check(name: str) -> None:
    results = run(GOOD[name]())
    assert set(results) == set(checks.CHECKS)  # a face was found, so every check measured
    assert all(r.passed for r in results.values()), checks.problems(tuple(results.values()))


BAD: dict[str, tuple[Callable[[], Image.Image], str, str]] = {
    "coffee": (lambda: Image.fromarray(data.coffee()), "one_face", "no face found"),
    "group": (group, "one_face", "3 faces"),
    "blurred": (blurred, "sharpness", "blurred"),
    "dark": (lambda: ImageEnhance.Brightness(astronaut()).enhance(0.25), "exposure", "too dark"),
    "close-up": (closeup, "face_size", "too close"),
    "200px": (lambda: scale(astronaut(), 200 / 512), "resolution", "320 px or more"),
}


@pytest.mark.parametrize("name", BAD)
def test_each_kind_of_bad_photo_is_caught_with_its_reason(name: str) -> None:
    make, check, words = BAD[name]
    results = run(make())
    failed = results[check]
    assert not failed.passed and failed.outcome == "warn"  # the default action
    assert words in failed.words, failed
    # The measured value is on the wrong side of the threshold it names.
    if check == "sharpness":
        assert failed.value < CheckPolicy().sharpness_min


def test_off_never_flags_and_refuse_names_the_check() -> None:
    off = run(blurred(), CheckPolicy(sharpness="off"))["sharpness"]
    assert not off.passed and off.outcome == "pass"
    with pytest.raises(PhotoCheckFailed) as caught:
        run(blurred(), CheckPolicy(sharpness="refuse"))
    error = caught.value
    assert error.code == "photo_check_failed" and error.status == 422
    assert "sharpness check" in error.message and "needed >= 0.25" in error.message


def test_refuse_stores_nothing_warn_stores_and_carries_the_results(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERPHOTO_POLICY_CHECK_SHARPNESS", "refuse")
    app = App(Settings.load(home))
    try:
        assert app.settings.check_policy.sharpness == "refuse"
        app.store.add_user(User(id="u1", address="eileen@example.org", display_name="Eileen"))
        with pytest.raises(PhotoCheckFailed):
            app.photos.set("eileen@example.org", jpeg(blurred()))
        assert app.store.get_photo("u1") is None
        photo = app.photos.set("eileen@example.org", jpeg(astronaut()))
        assert [r.outcome for r in photo.checks] == ["pass"] * len(checks.CHECKS)
        # A warned check stores the photo and says why.
        dark = jpeg(ImageEnhance.Brightness(astronaut()).enhance(0.25))
        photo = app.photos.set("eileen@example.org", dark, preview=True)
        assert app.store.get_photo("u1", PhotoState.PREVIEW) is not None
        assert {r.id: r.outcome for r in photo.checks}["exposure"] == "warn"
    finally:
        app.close()


def test_set_preview_prints_the_checks(run_cli: RunCli, tmp_path: Path) -> None:
    run_cli("init")
    run_cli("user", "add", "eileen@contoso.example", "--name", "Eileen Collins")
    good, bad = tmp_path / "good.jpg", tmp_path / "blurred.jpg"
    good.write_bytes(jpeg(astronaut()))
    bad.write_bytes(jpeg(blurred()))
    out = run_cli("set", "eileen@contoso.example", str(good), "--preview").stdout.decode()
    assert "check one_face: pass: one face found" in out
    assert "check sharpness: pass: the face is sharp" in out
    out = run_cli("set", "eileen@contoso.example", str(bad), "--preview").stdout.decode()
    assert "check sharpness: warn: the face is blurred or out of focus" in out
    refused = run_cli(
        "set",
        "eileen@contoso.example",
        str(bad),
        check=False,
        env={"USERPHOTO_POLICY_CHECK_SHARPNESS": "refuse"},
    )
    assert refused.returncode != 0
    assert "failed the sharpness check" in refused.stderr.decode()


def test_api_answers_carry_the_checks_and_refuse_with_422(tmp_path: Path) -> None:
    env = {"USERPHOTO_POLICY_CHECK_SHARPNESS": "refuse"}
    with serving(tmp_path / "served", env) as served:
        good = jpeg(astronaut(), 75)  # under the server's 64 KB head limit in one read
        native = served.request("PUT", f"/v1/users/{addr('kim')}/photo", "admin", content=good)
        assert native.status_code == 200, native.text
        by_id = {c["id"]: c for c in native.json()["checks"]}
        assert set(by_id) == set(checks.CHECKS)
        assert by_id["sharpness"]["outcome"] == "pass" and by_id["sharpness"]["action"] == "refuse"
        assert by_id["one_face"]["value"] == 1
        refused = served.request(
            "PUT", f"/v1/users/{addr('kim')}/photo", "admin", content=jpeg(blurred(), 75)
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "photo_check_failed"
        assert "sharpness" in error["message"] and ">= 0.25" in error["message"]
        graph = served.request(
            "PUT",
            f"/v1.0/users/{addr('kim')}/photo/$value",
            "admin",
            content=jpeg(Image.fromarray(data.coffee()), 75),
            headers={"Content-Type": "image/jpeg"},
        )
        assert graph.status_code == 200 and graph.content == b""  # Graph's shape kept
        assert "one_face=warn" in graph.headers["x-photo-checks"]


def test_web_preview_shows_the_checks_in_plain_words(page: Any, web: Web) -> None:
    sign_in(page, web, "kim")
    page.get_by_text("choose a file").wait_for()
    page.set_input_files(
        "#file", files=[{"name": "me.jpg", "mimeType": "image/jpeg", "buffer": jpeg(blurred())}]
    )
    page.locator("#checks").wait_for(state="visible")
    sharp = page.locator('#checks-list li[data-check="sharpness"]')
    assert sharp.inner_text() == "Warning: the face is blurred or out of focus."
    assert "check-warn" in (sharp.get_attribute("class") or "")
    face = page.locator('#checks-list li[data-check="one_face"]')
    assert face.inner_text() == "OK: one face found."
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Preview discarded").wait_for()


def test_import_report_lists_the_checks_that_did_not_pass(
    run_cli: RunCli, app: App, tmp_path: Path
) -> None:
    import json

    for i in range(2):
        app.store.add_user(User(id=f"u{i}", address=f"p{i}@example.org", display_name=f"P {i}"))
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "p0@example.org.jpg").write_bytes(jpeg(astronaut()))
    (folder / "p1@example.org.jpg").write_bytes(jpeg(blurred()))
    report = tmp_path / "report.json"
    out = run_cli("import", str(folder), "--jobs", "1", "--report", str(report)).stdout.decode()
    assert "photo checks  p1@example.org.jpg -> p1@example.org" in out, out
    rows = {r["file"]: r for r in json.loads(report.read_text())}
    assert rows["p0@example.org.jpg"]["checks"] == ""
    assert "sharpness=warn: the face is blurred" in rows["p1@example.org.jpg"]["checks"]
