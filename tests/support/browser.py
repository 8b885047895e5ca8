"""Browser tests: a real `userphoto serve` of their own and Debian's Chromium via Playwright.

`web` (session) seeds a data folder with the serving tests' people (tests.support.server)
plus a directory photo that sync could not use, and serves it on a loopback port.
`browser` (session) is one headless Chromium; `page` is a fresh context per test (its own
cookies). `shot(page, name)` saves a full-page screenshot under tests/artifacts/.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support import missing
from tests.support.server import seed, start_server, stop_server
from userphoto.app import App
from userphoto.config import Settings
from userphoto.model import DirectoryThumbnail, User

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
BROKEN = "mia"  # a user whose directory photo sync could not use


@dataclass
class Web:
    base: str
    home: Path
    tokens: dict[str, str]
    ids: dict[str, str]

    def app(self) -> App:
        return App(Settings.load(self.home))

    def api_photo(self, who: str, size: int = 240) -> httpx.Response:
        """The bytes the native API serves for `who`, as an internal colleague (admin)."""
        return httpx.get(
            f"{self.base}/v1/users/{self.ids[who]}/photo?size={size}",
            headers={"Authorization": f"Bearer {self.tokens['admin']}"},
            timeout=10,
        )


def astronaut_png() -> bytes:
    """A real face (scikit-image's astronaut, 512×512) as PNG bytes."""
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    home = tmp_path_factory.mktemp("web-home")
    tokens, _secret, _rsa, _ec, ids = seed(home)
    app = App(Settings.load(home))
    try:
        user = app.store.add_user(
            User(id=f"id-{BROKEN}", address=f"{BROKEN}@contoso.test", display_name="Mia Broken")
        )
        app.store.put_directory_thumbnail(
            DirectoryThumbnail(
                user_id=user.id,
                jpeg=None,
                raw_hash="raw-broken",
                raw_size=140_000,
                width=0,
                height=0,
                problem="thumbnailPhoto is 137 KB, over the 100 KB attribute limit",
                seen=datetime.now(UTC),
            )
        )
        ids[BROKEN] = user.id
    finally:
        app.close()
    proc, base = start_server(home)
    try:
        yield Web(base, home, tokens, ids)
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing(f"Debian's chromium is not installed ({CHROMIUM})")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, web: Web, who: str, then: str = "") -> None:
    page.goto(f"{web.base}/signin" + (f"?next={then}" if then else ""))
    page.get_by_label("Token").fill(web.tokens[who])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def csrf_of(html: str) -> str:
    """The CSRF token a web page carries (its `csrf-token` meta tag)."""
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def provider_login(page: Any, login: str) -> None:
    """The provider's own login and consent pages, as a person would use them (the login
    is skipped when the browser is still signed in at the provider)."""
    page.locator("input[name=login], button:has-text('Continue')").first.wait_for()
    if page.locator("input[name=login]").count():
        page.locator("input[name=login]").fill(login)
        page.locator("input[name=password]").fill("any password")
        page.get_by_role("button", name="Sign-in").click()
    consent = page.get_by_role("button", name="Continue")
    consent.wait_for()
    consent.click()
