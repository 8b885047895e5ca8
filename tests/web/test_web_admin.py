"""The admin directory view and the troubleshooter in a real browser."""

from __future__ import annotations

from typing import Any

from tests.support.browser import BROKEN, Web, shot, sign_in


def names(page: Any) -> list[str]:
    return [a.inner_text() for a in page.locator("table.users th.name a").all()]


def test_directory_search_and_filters(page: Any, web: Web) -> None:
    sign_in(page, web, "admin")
    assert page.url.endswith("/admin")
    rows = names(page)
    assert "Ada Lovelace" in rows and "Cy Directory" in rows
    # Every thumbnail loaded through the session (no bearer token in the browser).
    page.wait_for_function(
        "() => [...document.querySelectorAll('td.thumb img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    page.locator("#doctor .doctor-body, #doctor .notice").first.wait_for()
    shot(page, "web-admin-directory")
    # The Doctor box says whom its counts are about, and how many people Problems lists.
    box = page.locator("#doctor .doctor-people")
    assert "errors and warnings are about" in box.inner_text()
    flagged = int(box.locator(".people-count").inner_text().replace(",", ""))
    problem_people = int(box.locator(".problem-count").inner_text().replace(",", ""))
    # ... as many people as the listing shows an error or warning for.
    findings = page.locator("table.users tbody tr").evaluate_all(
        "rows => rows.filter(r => r.querySelector('span.finding')).length"
    )
    assert findings == flagged, (findings, flagged)

    page.get_by_label("Search by name or address").fill("lovelace")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/admin?q=lovelace")
    assert names(page) == ["Ada Lovelace"]
    assert "HD" in page.locator("table.users tbody tr").first.inner_text()

    # An alias finds its user too.
    page.goto(f"{web.base}/admin?q=contoso-alias")
    assert names(page) == ["Ada Lovelace"]

    page.goto(f"{web.base}/admin")
    page.get_by_role("link", name="Directory only").click()
    page.wait_for_url("**filter=directory_only")
    rows = names(page)
    assert "Cy Directory" in rows and "Ada Lovelace" not in rows
    for row in page.locator("table.users tbody tr").all():
        assert "Directory" in row.inner_text()

    page.get_by_role("link", name="Problems", exact=True).first.click()
    page.wait_for_url("**filter=problems")
    rows = names(page)
    assert len(rows) == problem_people > 0  # the box and the filter count the same people
    assert "Mia Broken" in rows and "Jon Disabled" in rows and "Ada Lovelace" not in rows
    broken = page.locator("tr", has_text="Mia Broken")
    assert "over the 100 KB" in broken.inner_text() or "unusable" in broken.inner_text()
    shot(page, "web-admin-problems")

    page.get_by_role("link", name="No photo").click()
    page.wait_for_url("**filter=no_photo")
    rows = names(page)
    assert "Max Public Nophoto" in rows and "Cy Directory" not in rows
    # Search and filter combine.
    page.get_by_label("Search by name or address").fill("max")
    page.get_by_role("button", name="Search").click()
    assert names(page) == ["Max Public Nophoto"]
    assert page.url.endswith("filter=no_photo") or "filter=no_photo" in page.url


def test_admin_removes_any_users_photo(page: Any, web: Web) -> None:
    sign_in(page, web, "admin")
    assert web.api_photo("ned").headers["x-photo-source"] == "hd"
    page.goto(f"{web.base}/admin?q=ned")
    page.get_by_role("link", name="Change the photo of Ned Both").click()
    page.get_by_role("heading", name="Ned Both").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove photo").click()
    page.get_by_text("Photo removed.").wait_for()
    shot(page, "web-admin-user-removed")
    for _ in range(100):
        if web.api_photo("ned").headers.get("x-photo-source") != "hd":
            break
        page.wait_for_timeout(50)
    assert web.api_photo("ned").headers.get("x-photo-source") == "default"
    # The removal record blocks Ned's directory photo until it is cleared.
    page.get_by_role("button", name="Show the directory photo").click()
    page.get_by_text("Removal record cleared").wait_for()
    for _ in range(100):
        if web.api_photo("ned").headers.get("x-photo-source") == "directory":
            break
        page.wait_for_timeout(50)
    assert web.api_photo("ned").headers.get("x-photo-source") == "directory"


def test_members_cannot_open_the_admin_pages(page: Any, web: Web) -> None:
    sign_in(page, web, "ada")
    response = page.goto(f"{web.base}/admin")
    assert response is not None and response.status == 403
    assert "administrators" in page.inner_text("main")


def test_troubleshooter_verdict(page: Any, web: Web) -> None:
    from userphoto.diagnose import diagnose

    app = web.app()
    try:
        expected = diagnose(app, "cy@contoso.test", external="partner.example").to_dict()
    finally:
        app.close()
    sign_in(page, web, "admin")
    page.get_by_role("link", name="Troubleshooter").first.click()
    page.get_by_label("Person (address or id)").fill("cy@contoso.test")
    page.get_by_label("An external partner's user").check()
    page.get_by_label("Partner domain").fill("partner.example")
    page.get_by_label("Client").select_option("hd")
    page.get_by_role("button", name="Diagnose").click()
    verdict = page.locator("#verdict")
    verdict.wait_for(state="visible")
    text = verdict.inner_text()
    assert expected["sees"]["text"] in text
    assert expected["causes"], expected
    for cause in expected["causes"]:
        assert cause["message"] in text
        for command in cause["fix"]:
            assert command in text
    if expected["symptom"]:
        assert expected["symptom"]["title"] in text
    shot(page, "web-troubleshooter")


def test_broken_directory_photo_is_explained(page: Any, web: Web) -> None:
    sign_in(page, web, "admin")
    page.goto(f"{web.base}/admin/troubleshoot?target={BROKEN}@contoso.test&kind=member")
    text = page.locator("#verdict").inner_text()
    assert "100 KB" in text


def test_sign_in_page_and_phone_width(browser: Any, web: Web) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(f"{web.base}/admin")
        assert "/signin?next=" in page.url  # pages send you to sign in, then back
        page.get_by_label("Token").fill("upt_wrong")
        page.get_by_role("button", name="Sign in").click()
        assert "not valid" in page.get_by_role("alert").inner_text()
        shot(page, "web-signin-error")
        page.get_by_label("Token").fill(web.tokens["admin"])
        assert page.locator("input[name=next]").input_value() == "/admin"
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/admin")
        page.locator("#doctor .doctor-body, #doctor .notice").first.wait_for()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the directory scrolls sideways at phone width ({width}px)"
        shot(page, "web-admin-phone")
    finally:
        context.close()
