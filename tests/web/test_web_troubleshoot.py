"""The troubleshooter page at phone width and the site's 404 page, in real Chromium and over
real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.browser import BROKEN, Web, shot, sign_in

PHONE = {"width": 390, "height": 844}
# Verdicts with long unbreakable text: fix commands, web addresses, step reasons, surfaces.
QUERIES = [
    "target=cy@contoso.test&kind=external&external=partner.example&client=hd",
    "target=fay@contoso.test&kind=anonymous&client=web&size=648",
    f"target={BROKEN}@contoso.test&kind=member&client=legacy&size=240",
    "target=hal@contoso.test&kind=member&viewer=hal@contoso.test&size=648",
    "target=adaa@contoso.test&kind=member",
]


@pytest.fixture
def phone(browser: Any) -> Any:
    context = browser.new_context(viewport=PHONE, is_mobile=True)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_troubleshooter_with_a_result_fits_a_phone(phone: Any, web: Web) -> None:
    sign_in(phone, web, "admin")
    for n, query in enumerate(QUERIES):
        phone.goto(f"{web.base}/admin/troubleshoot?{query}")
        phone.locator("#verdict .causes, #verdict .good, #verdict .verdict").first.wait_for()
        width = phone.evaluate("document.documentElement.scrollWidth")
        body = phone.evaluate("document.body.scrollWidth")
        assert width <= PHONE["width"] and body <= PHONE["width"], (query, width, body)
        shot(phone, f"web-troubleshooter-phone-{n}")


def test_404_page_fits_the_site(phone: Any, web: Web) -> None:
    response = phone.goto(f"{web.base}/no/such/page")
    assert response is not None and response.status == 404
    assert phone.locator("header.topbar .brand").inner_text() == "userphoto"
    assert "no page" in phone.locator("main h1").inner_text().lower()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # The stylesheet applied: the card is styled like every other page.
    radius = phone.evaluate(
        "getComputedStyle(document.querySelector('main .card')).borderTopLeftRadius"
    )
    assert radius not in ("", "0px")
    shot(phone, "web-404-phone")


def test_404_over_http(web: Web) -> None:
    with httpx.Client(base_url=web.base, timeout=10) as http:
        page = http.get("/nothing-here", headers={"Accept": "text/html,*/*;q=0.8"})
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "/web/static/site.css" in page.text and 'class="topbar"' in page.text
        assert page.text.strip() != "Not Found"
        assert 'href="/"' in page.text  # a way back
        # API clients get the API's JSON error shape, not a page.
        api = http.get("/v1/nothing-here", headers={"Accept": "application/json"})
        assert api.status_code == 404
        assert api.json()["error"]["code"] == "not_found"
