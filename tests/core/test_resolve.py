"""The resolution rule over its whole input matrix, against an independent statement of it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from userphoto.model import (
    HD_SIZES,
    SD_MAX,
    Account,
    ClientProfile,
    DirectoryFacts,
    DirectoryThumbnail,
    Picture,
    User,
    Viewer,
    ViewerKind,
    Visibility,
)
from userphoto.resolve import (
    Source,
    Step,
    Verdict,
    allowed_sizes,
    choose_size,
    resolve,
    viewer_class,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)

VIEWERS = {
    "self": Viewer(ViewerKind.MEMBER, "t@org.test", "target"),
    "member": Viewer(ViewerKind.MEMBER, "m@org.test", "someone"),
    "admin": Viewer(ViewerKind.ADMIN, "a@org.test", None),
    "partner": Viewer(ViewerKind.PARTNER, "p@partner.test", None, "partner.test"),
    "anonymous": Viewer(ViewerKind.ANONYMOUS),
}
PHOTOS = {
    "none": (),
    "full": HD_SIZES,
    "small": (48, 64, 96, 120, 240),
    "sd": (48, 64, 96),
}
DIRECTORY = {
    "none": None,
    "unusable": DirectoryThumbnail("target", None, "h", 200_000, 0, 0, "over 100 KB", NOW),
    "usable": DirectoryThumbnail("target", b"\xff\xd8jpeg", "h", 4000, 80, 100, None, NOW),
}
URLS = {"none": None, "https": "https://pics.example/t.jpg", "bad": "javascript:alert(1)"}
SIZES = (None, 96, 648)  # below, at and above SD; the fallback cases are in the photo sets


def expected(
    user: User,
    viewer_name: str,
    client: ClientProfile,
    size: int | None,
    photo: tuple[int, ...],
    directory: str,
) -> tuple[Source, int | None]:
    """The rule of docs/model.md written out plainly, independently of the implementation."""
    viewer = VIEWERS[viewer_name]
    internal = viewer_name in ("self", "member", "admin")
    if viewer_name != "self":
        if user.picture is Picture.HIDDEN or user.visibility is Visibility.NOBODY:
            return Source.NONE, None
        if user.visibility is Visibility.ORGANIZATION and not internal:
            return Source.NONE, None
    assert viewer is not None
    if user.picture is Picture.DEFAULT:
        return Source.DEFAULT, None
    # Past visibility a hidden picture is its owner looking: they see what they would show.
    if user.picture in (Picture.PHOTO, Picture.HIDDEN):
        if photo and user.account in (Account.HD, Account.SD_ONLY):
            limit = (
                SD_MAX
                if (client is ClientProfile.LEGACY or user.account is Account.SD_ONLY)
                else 10_000
            )
            allowed = [s for s in photo if s <= limit]
            want = size if size is not None else max(allowed)
            fits = [s for s in allowed if s <= want]
            return Source.HD, (max(fits) if fits else min(allowed))
        if internal and user.removal_record is None and directory == "usable":
            return Source.DIRECTORY, None
    url_ok = bool(user.picture_url) and user.picture_url.startswith("https://")  # type: ignore[union-attr]
    if url_ok:
        return Source.URL, None
    return Source.DEFAULT, None


def cases():
    yield from itertools.product(
        Picture, Visibility, Account, VIEWERS, ClientProfile, PHOTOS, DIRECTORY, (False, True), URLS
    )


def test_whole_matrix_matches_the_rule_and_its_invariants() -> None:
    checked = 0
    for (
        picture,
        visibility,
        account,
        viewer_name,
        client,
        photo,
        directory,
        removed,
        url,
    ) in cases():
        user = User(
            id="target",
            address="t@org.test",
            display_name="T",
            account=account,
            picture=picture,
            picture_url=URLS[url],
            visibility=visibility,
            removal_record=NOW if removed else None,
        )
        viewer = VIEWERS[viewer_name]
        for size in SIZES:
            res = resolve(
                user,
                viewer,
                client,
                size,
                photo_sizes=PHOTOS[photo],
                directory=DIRECTORY[directory],
            )
            want = expected(user, viewer_name, client, size, PHOTOS[photo], directory)
            assert (res.source, res.size) == want, (
                picture,
                visibility,
                account,
                viewer_name,
                client,
                photo,
                directory,
                removed,
                url,
                size,
                res.trace,
            )
            # Invariants the API relies on.
            if not viewer.internal:
                assert res.source is not Source.DIRECTORY
            if removed:
                assert res.source is not Source.DIRECTORY
            if res.source is Source.HD:
                assert res.size in PHOTOS[photo]
                if client is ClientProfile.LEGACY or account is Account.SD_ONLY:
                    assert res.size <= SD_MAX
            assert [e.step for e in res.trace] == list(Step)
            used = [e for e in res.trace if e.verdict is Verdict.USED]
            if res.source is Source.NONE:
                assert res.trace[0].verdict is Verdict.BLOCKED
                assert all(e.verdict is Verdict.NOT_REACHED for e in res.trace[1:])
            else:
                assert used[0].step is Step.VISIBILITY and len(used) == 2
                assert used[1].step.value == res.source.value
                answered = list(Step).index(used[1].step)
                assert all(e.verdict is Verdict.NOT_REACHED for e in res.trace[answered + 1 :])
                assert all(
                    e.verdict in (Verdict.SKIPPED, Verdict.BLOCKED)
                    for e in res.trace[1:answered]
                    if e.step is not Step.VISIBILITY
                )
            assert all(e.reason for e in res.trace)
            checked += 1
    assert checked == 4 * 3 * 4 * 5 * 3 * 4 * 3 * 2 * 3 * len(SIZES)


def user(**kw) -> User:
    return User(id="target", address="t@org.test", display_name="T", **kw)


def test_directory_only_photo_is_blocked_for_partners_with_the_reason() -> None:
    res = resolve(
        user(visibility=Visibility.EVERYONE), VIEWERS["partner"], directory=DIRECTORY["usable"]
    )
    assert res.source is Source.DEFAULT
    entry = res.trace[2]
    assert entry.step is Step.DIRECTORY and entry.verdict is Verdict.BLOCKED
    assert "members of the organization only" in entry.reason


def test_removal_record_blocks_directory_and_names_the_fix() -> None:
    res = resolve(user(removal_record=NOW), VIEWERS["member"], directory=DIRECTORY["usable"])
    assert res.source is Source.DEFAULT
    assert res.trace[1].reason == "the HD photo was removed"
    assert "--clear-record" in res.trace[2].reason


def test_small_source_falls_back_to_largest_below_and_says_why() -> None:
    res = resolve(user(), VIEWERS["member"], ClientProfile.HD, 648, photo_sizes=PHOTOS["small"])
    assert (res.source, res.size) == (Source.HD, 240)
    assert "648 was never rendered" in res.trace[1].reason


def test_legacy_client_gets_sd_and_the_trace_says_so() -> None:
    res = resolve(user(), VIEWERS["member"], ClientProfile.LEGACY, 648, photo_sizes=HD_SIZES)
    assert res.size == 96 and res.cap == 96
    assert "legacy client" in res.trace[1].reason


@pytest.mark.parametrize("account", [Account.ABSENT, Account.DISABLED])
def test_unavailable_account_skips_hd_then_directory_answers_inside(account: Account) -> None:
    res = resolve(
        user(account=account),
        VIEWERS["member"],
        photo_sizes=HD_SIZES,
        directory=DIRECTORY["usable"],
    )
    assert res.source is Source.DIRECTORY
    assert account.value in res.trace[1].reason


def test_ews_48_prefers_directory_but_only_inside() -> None:
    u = user(visibility=Visibility.EVERYONE)
    inside = resolve(
        u,
        VIEWERS["member"],
        size=48,
        photo_sizes=HD_SIZES,
        directory=DIRECTORY["usable"],
        prefer_directory=True,
    )
    outside = resolve(
        u,
        VIEWERS["anonymous"],
        size=48,
        photo_sizes=HD_SIZES,
        directory=DIRECTORY["usable"],
        prefer_directory=True,
    )
    assert inside.source is Source.DIRECTORY
    assert (outside.source, outside.size) == (Source.HD, 48)


def test_self_sees_own_hidden_photo_others_do_not() -> None:
    u = user(picture=Picture.HIDDEN)
    assert resolve(u, VIEWERS["self"], photo_sizes=HD_SIZES).source is Source.HD
    hidden = resolve(u, VIEWERS["admin"], photo_sizes=HD_SIZES)
    assert hidden.source is Source.NONE and "hide" in hidden.trace[0].reason


@pytest.mark.parametrize(
    "url",
    [
        "https://x.example/a b.jpg",
        "https://x.example/\r\nSet-Cookie: a=b",
        "ftp://x/y",
        "https://bücher.example/a.jpg",
        "https://x.example/" + "a" * 2100,
    ],
)
def test_only_plain_http_addresses_are_redirected_to(url: str) -> None:
    res = resolve(user(picture=Picture.URL, picture_url=url), VIEWERS["member"])
    assert res.source is Source.DEFAULT
    assert "not a usable http(s) address" in res.trace[3].reason


def test_choose_size_never_upscales() -> None:
    assert choose_size((48, 64, 96), 648, None) == 96
    assert choose_size(HD_SIZES, 100, None) == 96
    assert choose_size(HD_SIZES, None, 96) == 96
    assert choose_size((240,), 48, None) == 240  # only a larger one exists: the smallest


def test_allowed_sizes_are_those_under_the_cap_else_the_smallest() -> None:
    assert allowed_sizes(HD_SIZES, None) == list(HD_SIZES)
    assert allowed_sizes((240, 48, 96), SD_MAX) == [48, 96]
    assert allowed_sizes((120, 240), SD_MAX) == [120]  # nothing under the cap: the smallest


@pytest.mark.parametrize("state", ["unusable", "usable"])
def test_directory_facts_decide_as_the_thumbnail_does(state: str) -> None:
    """A status row gives resolve only the facts (no bytes): every source and verdict is the
    same as with the thumbnail itself, for every viewer and picture option."""
    thumb = DIRECTORY[state]
    assert thumb is not None
    facts = DirectoryFacts(thumb.jpeg is not None, thumb.problem)
    assert thumb.facts == DirectoryFacts(
        thumb.jpeg is not None, thumb.problem, thumb.width, thumb.height
    )
    for viewer, picture, removed in itertools.product(VIEWERS.values(), Picture, (False, True)):
        target = user(picture=picture, removal_record=NOW if removed else None)
        for sizes in PHOTOS.values():
            a = resolve(target, viewer, photo_sizes=sizes, directory=thumb)
            b = resolve(target, viewer, photo_sizes=sizes, directory=facts)
            assert (a.source, a.size) == (b.source, b.size)
            assert [e.verdict for e in a.trace] == [e.verdict for e in b.trace]


def test_viewers_of_one_class_get_the_same_resolution_and_classes_differ() -> None:
    """The answer cache shares answers within `viewer_class`: resolve must not tell those
    viewers apart, and it does tell an admin from a member (its trace names the kind)."""
    other_member = Viewer(ViewerKind.MEMBER, "n@org.test", "another")
    other_self = Viewer(ViewerKind.ADMIN, "t2@org.test", "target")
    twins = [(VIEWERS["member"], other_member), (VIEWERS["self"], other_self)]
    for picture, visibility in itertools.product(Picture, Visibility):
        target = User(
            id="target",
            address="t@org.test",
            display_name="T",
            picture=picture,
            visibility=visibility,
            picture_url="https://pics.example/t.jpg",
        )
        for one, two in twins:
            assert viewer_class(one, target.id) == viewer_class(two, target.id)
            first = resolve(target, one, photo_sizes=HD_SIZES)
            assert first == resolve(target, two, photo_sizes=HD_SIZES)
        member, admin = VIEWERS["member"], VIEWERS["admin"]
        assert viewer_class(member, target.id) != viewer_class(admin, target.id)
        if resolve(target, member).visible:
            assert resolve(target, member).trace != resolve(target, admin).trace
