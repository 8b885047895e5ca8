"""The doctor as a set-based query: the store counts users per facts value, the rule runs once
per value. Its report must be exactly what the old walk gave (one Python rule per status row,
kept here verbatim as the reference), on both stores, over an organization that shows every
per-user finding of the catalogue; and the admin listing's "Problems" filter must select
exactly the users the same rule gives a problem finding.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from userphoto.app import App
from userphoto.doctor import CHECKS, DoctorReport, doctor, facts_of
from userphoto.findings import (
    CATALOGUE,
    UserFacts,
    every_user_facts,
    fact_values,
    is_problem,
    user_findings,
)
from userphoto.model import (
    GUESSES,
    MEETING_SIZE,
    Account,
    CropBox,
    CropDecision,
    CropReason,
    DirectoryThumbnail,
    PhotoState,
    Picture,
    Rendered,
    SourceInfo,
    User,
)
from userphoto.photos import put_photo, remove_photo
from userphoto.resolve import usable_url
from userphoto.store import PhotoStatus, StatusFilter, StatusQuery, Store
from userphoto.store.facts_sql import NAMES, facts_of_key, key_of

FULL = (48, 64, 96, 120, 240, 360, 432, 504, 648)


def old_user_findings(s: PhotoStatus) -> list[str]:
    """The doctor's per-row rule before the facts value (verbatim): the reference."""
    u, found = s.user, []
    if u.directory_gone:
        return ["directory_gone"]
    if s.directory_problem:
        found.append("directory_thumbnail_problem")
    if u.picture is Picture.URL and not usable_url(u.picture_url):
        found.append("url_missing")
    if u.picture is Picture.HIDDEN:
        found.append("picture_hidden")
    elif u.picture is Picture.DEFAULT:
        found.append("picture_default")
    if u.account in (Account.ABSENT, Account.DISABLED):
        found.append("account_unavailable")
        return found
    if u.account is Account.SD_ONLY:
        found.append("sd_only")
    if s.has_preview:
        found.append("preview_not_saved")
    if s.sizes:
        if max(s.sizes) < MEETING_SIZE and u.account is Account.HD:
            found.append("source_too_small")
        if s.crop_reason in GUESSES:
            found.append("crop_guess")
        if s.directory_usable and not s.directory_written_by_us:
            found.append("directory_disagrees")
    elif s.directory_usable:
        found.append("removal_record" if u.removal_record else "directory_only")
    elif u.picture is Picture.PHOTO:
        found.append("no_photo")
    return found


def old_doctor(store: Store) -> DoctorReport:
    """The old walk: every status row through the rule (counts, examples, worst offenders)."""
    report = DoctorReport()
    scored: list[tuple[int, str, list[str]]] = []
    for status in store.iter_photo_status(batch=7):  # small batches: the keyset walk too
        report.users += 1
        found = old_user_findings(status)
        report.flagged += any(CHECKS[c].level.value != "info" for c in found)
        report.problem_people += any(CATALOGUE[c].problem for c in found)
        for code in found:
            report.counts[code] += 1
            examples = report.examples.setdefault(code, [])
            if len(examples) < 5:
                examples.append(status.user.address)
        score = sum(
            3 if CHECKS[c].level.value == "error" else 1
            for c in found
            if CHECKS[c].level.value != "info"
        )
        if score:
            scored.append((score, status.user.address, found))
    scored.sort(key=lambda t: (-t[0], t[1]))
    report.worst = [(a, f) for _s, a, f in scored[:10]]
    return report


def rendered(sizes: tuple[int, ...], reason: CropReason) -> Rendered:
    """A photo version's rows (the doctor reads sizes and the crop reason, never the bytes)."""
    side = max(sizes)
    return Rendered(
        SourceInfo("JPEG", side, side, "0" * 64),
        CropBox(0, 0, side),
        {s: b"\xff\xd8jpeg" for s in sizes},
        b"\xff\xd8thumb",
        CropDecision(reason, 0.5, ""),
    )


def thumbnail(user_id: str, kind: str) -> DirectoryThumbnail:
    usable = kind in ("usable", "ours")
    return DirectoryThumbnail(
        user_id,
        b"\xff\xd8jpeg" if usable else None,
        "raw-" + user_id,
        10,
        96,
        96,
        "thumbnailPhoto is not an image" if kind == "broken" else None,
        datetime.now(UTC),
        written_by_us=kind == "ours",
    )


# Local parts whose byte order differs from a naive one (digits, '-', '.', '_', upper case
# is folded by the store): examples and worst offenders are the first by byte order.
LOCALS = ("a", "a-b", "a.b", "a_b", "a0", "a9", "b", "zz", "m-1", "m.1", "m_1", "m1")


def seed(store: Store, users: int = 160) -> None:
    """A varied organization: random facts, plus crowds of the commonest kinds (more users
    per kind than the doctor lists), so counts, examples and the top-10 cut all matter."""
    rng = random.Random(12)
    now = datetime.now(UTC)
    for i in range(users):
        local = f"{LOCALS[i % len(LOCALS)]}{i // len(LOCALS)}"
        crowd = i % 4 == 0  # a quarter are one common kind: an HD photo, nothing else
        picture = Picture.PHOTO if crowd else rng.choice(list(Picture))
        user = User(
            id=f"id{i:04d}",
            address=f"{local}@org{i % 3}.example",
            display_name=f"User {i}",
            account=Account.HD if crowd else rng.choice(list(Account)),
            picture=picture,
            picture_url=rng.choice([None, "https://ok.example/p.jpg", "ftp://x/p.jpg", ""])
            if picture is Picture.URL
            else rng.choice([None, "https://ok.example/p.jpg"]),
            directory_gone=not crowd and rng.random() < 0.1,
        )
        store.add_user(user)
        photo = "full" if crowd else rng.choice(["none", "none", "full", "small", "removed"])
        if photo != "none":
            sizes = FULL if photo != "small" else FULL[:4]
            reason = CropReason.FACE if crowd else rng.choice(list(CropReason))
            put_photo(store, user.id, rendered(sizes, reason), PhotoState.SAVED, actor="t", via="t")
        if photo == "removed":
            remove_photo(store, user.id, actor="t", via="t")
        if not crowd and rng.random() < 0.2:
            put_photo(
                store,
                user.id,
                rendered(FULL, CropReason.FACE),
                PhotoState.PREVIEW,
                actor="t",
                via="t",
            )
        kind = "none" if crowd else rng.choice(["none", "usable", "ours", "broken", "empty"])
        if kind != "none":
            store.put_directory_thumbnail(thumbnail(user.id, kind))
        if not crowd and photo == "none" and rng.random() < 0.2:  # a record, no photo left
            store.update_user(
                User(**{**user.__dict__, "removal_record": now, "aliases": []})  # type: ignore[arg-type]
            )


@pytest.fixture
def org(store_app: App) -> App:
    """Every test here runs on both stores."""
    seed(store_app.store)
    return store_app


def comparable(report: DoctorReport) -> dict[str, Any]:
    out = report.to_dict()
    out.pop("seconds")
    out.pop("organization")
    out.pop("errors")
    return out


def test_grouped_doctor_reports_what_the_row_walk_did(org: App) -> None:
    new, old = doctor(org), old_doctor(org.store)
    # Every per-user finding the rule can give is in this organization.
    possible = {code for f in every_user_facts() for code in user_findings(f)}
    assert set(new.counts) == possible, possible - set(new.counts)
    assert new.users == old.users == 160
    assert list(new.counts.items()) == list(old.counts.items())  # same order, for ties
    assert new.examples == old.examples
    assert new.worst == old.worst and len(new.worst) == 10
    assert comparable(new) == comparable(old)
    # The text is the same but for the time taken and the organization's own lines.
    new.org = old.org = []
    new.seconds = old.seconds
    assert new.text() == old.text()
    assert max(g.users for g in org.store.photo_facts()) > 10  # the top-10 cut was exercised


def test_progress_counts_every_user_by_phase(org: App) -> None:
    seen: list[int] = []
    phases: list[str] = []
    doctor(org, progress=seen.append, phase=phases.append)
    assert sum(seen) == 160 and len(seen) == len(org.store.photo_facts()) > 1
    assert phases[0] == "grouping users in the database"
    assert phases[1] == f"checking {len(seen)} kinds of user"
    assert phases[2:] == ["checking the organization"]


def test_each_group_is_its_users_facts(org: App) -> None:
    """The SQL facts of every user are what the Python reading of their status row says."""
    by_address = {s.user.address: s for s in org.store.iter_photo_status()}
    groups = org.store.photo_facts(first=1000)
    assert sum(g.users for g in groups) == len(by_address)
    assert len({g.facts for g in groups}) == len(groups)
    for group in groups:
        assert list(group.first) == sorted(group.first, key=str.encode)
        for address in group.first:
            assert old_user_findings(by_address[address]) == list(user_findings(group.facts))
            assert facts_of(by_address[address]) == group.facts  # SQL and Python read alike
    firsts = org.store.photo_facts(first=2)
    assert all(len(g.first) == min(2, g.users) for g in firsts)


def test_problems_filter_is_the_rule(org: App) -> None:
    """The admin listing's Problems filter lists exactly the users with a `problem` finding."""
    want = {
        s.user.address
        for s in org.store.iter_photo_status()
        if any(CATALOGUE[c].problem for c in old_user_findings(s))
    }
    query = StatusQuery(filter=StatusFilter.PROBLEMS, limit=1000)
    rows = org.store.list_photo_status(query)
    assert {r.user.address for r in rows} == want and want
    assert org.store.count_photo_status(query) == len(want)
    # The doctor says how many people that is, by the same rule (the admin page's box).
    report = doctor(org)
    assert report.problem_people == len(want)
    assert report.to_dict()["people_with_problems"] == len(want)
    flagged = sum(
        1
        for s in org.store.iter_photo_status()
        if any(CHECKS[c].level.value != "info" for c in old_user_findings(s))
    )
    assert len(want) < report.flagged == flagged < sum(report.counts.values())
    assert f"about {flagged:,} people; {len(want):,} of them" in report.text()


def test_facts_keys_round_trip() -> None:
    every = list(every_user_facts())
    assert len(every) == len({key_of(f) for f in every})
    assert all(facts_of_key(key_of(f)) == f for f in every)
    assert NAMES[0] == "directory_gone" and all(fact_values(n) for n in NAMES)


def test_a_catalogue_change_moves_the_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    """`problem` is read from the catalogue: flip it on one entry, the filter follows."""
    from dataclasses import replace

    from userphoto.store import facts_sql

    removed = UserFacts(directory_usable=True, removal_record=True)
    assert is_problem(removed)
    before = facts_sql.problems_sql()
    monkeypatch.setitem(
        CATALOGUE, "removal_record", replace(CATALOGUE["removal_record"], problem=False)
    )
    assert not is_problem(removed)
    assert facts_sql.problems_sql() != before
    assert Counter(user_findings(removed)) == Counter({"removal_record": 1})
