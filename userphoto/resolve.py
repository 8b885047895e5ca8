"""The resolution rule: which source answers a photo request, and why the others did not.

Pure: inputs are model values (the target user, which renditions its saved photo has, its
directory thumbnail, the viewer, the client profile, the requested size); the output is the
chosen source and rendition plus a trace of every step with its verdict. The HTTP APIs serve
what this decides and the troubleshooter prints the trace, so both always agree.

Order (docs/model.md): visibility → HD photo store → directory thumbnail (internal viewers only,
blocked by a removal record) → web-address photo → default.

Choices where the design is silent:
- The user always sees their own photo (even when hidden), so "my photo does not show" is
  never caused by the privacy setting. Admins are ordinary internal viewers here.
- The picture option selects the source: `photo` uses the HD store then the directory, and
  falls back to a web address when one is set; `url` skips the stored photos (the user chose
  the web address); `default` goes straight to the generated picture.
- Only http(s) web addresses are ever used (they are redirected to, never fetched).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .model import (
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


class Source(StrEnum):
    HD = "hd"
    DIRECTORY = "directory"
    URL = "url"
    DEFAULT = "default"
    NONE = "none"  # nothing may be shown to this viewer (not visible)


class Verdict(StrEnum):
    USED = "used"
    SKIPPED = "skipped"  # the source does not apply or has nothing
    BLOCKED = "blocked"  # a rule forbids it for this viewer
    NOT_REACHED = "not_reached"  # an earlier step answered


class Step(StrEnum):
    VISIBILITY = "visibility"
    HD = "hd"
    DIRECTORY = "directory"
    URL = "url"
    DEFAULT = "default"


@dataclass(frozen=True)
class TraceEntry:
    step: Step
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class Resolution:
    source: Source
    size: int | None  # the HD rendition chosen (HD only); None for other sources
    trace: tuple[TraceEntry, ...]
    url: str | None = None  # the web address (URL only)
    cap: int | None = None  # the largest size this viewer/client may get (HD only)

    @property
    def visible(self) -> bool:
        return self.source is not Source.NONE

    @property
    def photo(self) -> bool:
        """A real photo (not the generated default, not nothing)."""
        return self.source in (Source.HD, Source.DIRECTORY, Source.URL)

    def reason(self, step: Step) -> str:
        for entry in self.trace:
            if entry.step is step:
                return entry.reason
        return ""


_ORDER = list(Step)
# The trace entries after a step that answered, and after a visibility refusal.
_NOT_REACHED = {
    step: tuple(
        TraceEntry(later, Verdict.NOT_REACHED, "an earlier step answered")
        for later in _ORDER[_ORDER.index(step) + 1 :]
    )
    for step in _ORDER
}
_HIDDEN_REST = tuple(
    TraceEntry(step, Verdict.NOT_REACHED, "not visible to this viewer") for step in _ORDER[1:]
)


URL_MAX = 2048  # characters of a web-address picture's address
# The rule below in words, for the refusals that quote it.
URL_RULE = (
    "The web address must start with https:// (or http://), without spaces, "
    f"and be at most {URL_MAX:,} characters."
)


def usable_url(url: str | None) -> bool:
    """An http(s) address of printable ASCII only: it goes out verbatim in a Location header."""
    if not url or len(url) > URL_MAX or not url.lower().startswith(("https://", "http://")):
        return False
    return all(0x21 <= ord(c) < 0x7F for c in url)


def visibility(user: User, viewer: Viewer) -> tuple[bool, str]:
    """Whether this viewer may see any photo of `user`, and why."""
    if viewer.user_id is not None and viewer.user_id == user.id:
        return True, "the viewer is the user themself (people always see their own photo)"
    if user.picture is Picture.HIDDEN:
        return False, "the user chose to hide their picture (picture option: hidden)"
    if user.visibility is Visibility.NOBODY:
        return False, "the user's visibility is 'nobody'"
    if user.visibility is Visibility.ORGANIZATION and not viewer.internal:
        return False, (
            f"visibility is 'organization' and the viewer is {with_article(viewer.kind.value)} "
            "(external viewers need visibility 'everyone')"
        )
    kind = with_article(viewer.kind.value)
    return True, f"visibility '{user.visibility.value}' admits {kind} viewer"


def with_article(word: str) -> str:
    """'a partner', 'an anonymous', 'an admin': for sentences that name a kind of viewer."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


SELF = "self"  # the viewer class of people looking at their own photo


def viewer_class(viewer: Viewer, user_id: str | None) -> str:
    """The viewers `resolve` cannot tell apart when it decides about user `user_id`: the
    user themself, else one class per viewer kind. Its source, size and every word of its
    trace depend on the viewer through this alone (the trace names the kind), so answers
    built from a resolution may be shared within a class and never across classes."""
    if user_id is not None and viewer.user_id == user_id:
        return SELF
    return viewer.kind  # a StrEnum: equal to its value, and read without `.value`'s cost


VIEWER_CLASSES: tuple[str, ...] = (SELF, *ViewerKind)


def allowed_sizes(sizes: Sequence[int], cap: int | None) -> list[int]:
    """The renditions a viewer may have, ascending: those up to `cap` (SD clients and
    accounts), else the smallest there is. Graph lists these; `choose_size` picks among them."""
    ordered = sorted(sizes)
    return [s for s in ordered if cap is None or s <= cap] or ordered[:1]


def choose_size(sizes: Sequence[int], requested: int | None, cap: int | None) -> int:
    """The rendition for `requested`: exact, else the largest below (never an upscale),
    else the smallest there is. `cap` bounds it (SD clients and accounts)."""
    allowed = allowed_sizes(sizes, cap)
    want = requested if requested is not None else allowed[-1]
    below = [s for s in allowed if s <= want]
    return below[-1] if below else allowed[0]


def resolve(
    user: User,
    viewer: Viewer,
    client: ClientProfile = ClientProfile.HD,
    size: int | None = None,
    *,
    photo_sizes: Sequence[int] = (),
    directory: DirectoryThumbnail | DirectoryFacts | None = None,
    prefer_directory: bool = False,
) -> Resolution:
    """Decide the source. `photo_sizes`: renditions of the saved photo (empty: none saved).
    `directory`: the synced directory photo, or only its facts (a status row has no bytes).

    `prefer_directory` is EWS's HR48x48 rule: the directory thumbnail answers first when
    this viewer may have it.
    """
    trace: list[TraceEntry] = []
    thumb = directory.facts if isinstance(directory, DirectoryThumbnail) else directory

    def done(source: Source, step: Step, reason: str, **kw: Any) -> Resolution:
        trace.append(TraceEntry(step, Verdict.USED, reason))
        trace.extend(_NOT_REACHED[step])
        return Resolution(source, kw.get("size"), tuple(trace), kw.get("url"), kw.get("cap"))

    # 1. Visibility
    ok, why = visibility(user, viewer)
    if not ok:
        trace.append(TraceEntry(Step.VISIBILITY, Verdict.BLOCKED, why))
        trace.extend(_HIDDEN_REST)
        return Resolution(Source.NONE, None, tuple(trace))
    trace.append(TraceEntry(Step.VISIBILITY, Verdict.USED, why))

    # The directory thumbnail's own verdict, needed by steps 2 and 3.
    def directory_verdict() -> tuple[Verdict, str]:
        if not viewer.internal:
            return Verdict.BLOCKED, (
                "directory photos are served to members of the organization only "
                f"(the viewer is {viewer.kind.value})"
            )
        if user.removal_record is not None:
            return Verdict.BLOCKED, (
                "the HD photo was removed and its removal record blocks the directory "
                f"fallback (clear it with `userphoto remove {user.address} --clear-record`)"
            )
        if thumb is None:
            return Verdict.SKIPPED, "no directory thumbnail (thumbnailPhoto) was synced"
        if not thumb.usable:
            return Verdict.SKIPPED, (
                f"the directory thumbnail is unusable: {thumb.problem or 'unknown problem'}"
            )
        if thumb.width is None:
            return Verdict.USED, "the directory thumbnail answers"
        return Verdict.USED, f"the directory thumbnail ({thumb.width}×{thumb.height}) answers"

    if user.picture is Picture.DEFAULT:
        trace.append(TraceEntry(Step.HD, Verdict.SKIPPED, "picture option is 'default'"))
        trace.append(TraceEntry(Step.DIRECTORY, Verdict.SKIPPED, "picture option is 'default'"))
        trace.append(TraceEntry(Step.URL, Verdict.SKIPPED, "picture option is 'default'"))
        return done(Source.DEFAULT, Step.DEFAULT, "the user chose the generated default picture")

    if user.picture is Picture.URL:
        why_url = "picture option is 'url' (the user chose a picture from a web address)"
        trace.append(TraceEntry(Step.HD, Verdict.SKIPPED, why_url))
        trace.append(TraceEntry(Step.DIRECTORY, Verdict.SKIPPED, why_url))
    else:
        if prefer_directory:
            verdict, reason = directory_verdict()
            if verdict is Verdict.USED:
                trace.append(
                    TraceEntry(
                        Step.HD, Verdict.SKIPPED, "HR48x48 asks for the directory thumbnail first"
                    )
                )
                return done(Source.DIRECTORY, Step.DIRECTORY, reason)

        # 2. HD photo store
        hd_reason = ""
        if user.account in (Account.ABSENT, Account.DISABLED):
            hd_reason = f"the photo-store account is {user.account.value}, so it holds no photos"
        elif not photo_sizes:
            hd_reason = (
                "the HD photo was removed" if user.removal_record else "no photo was uploaded"
            )
        if hd_reason:
            trace.append(TraceEntry(Step.HD, Verdict.SKIPPED, hd_reason))
        else:
            sizes = sorted(photo_sizes)
            cap: int | None = None
            notes: list[str] = []
            if client is ClientProfile.LEGACY:
                cap = SD_MAX
                notes.append(f"legacy client: standard definition only (≤ {SD_MAX})")
            if user.account is Account.SD_ONLY:
                cap = SD_MAX
                notes.append(f"sd_only account: sizes ≤ {SD_MAX} only")
            chosen = choose_size(sizes, size, cap)
            if size is not None and chosen < size and (cap is None or size <= cap):
                notes.append(
                    f"{size} was never rendered (source too small); largest below is {chosen}"
                )
            elif size is not None and chosen > size:
                notes.append(f"smallest rendition is {chosen}")
            detail = f"HD photo, {chosen}×{chosen}"
            if notes:
                detail += " (" + "; ".join(notes) + ")"
            return done(Source.HD, Step.HD, detail, size=chosen, cap=cap)

        # 3. Directory thumbnail
        verdict, reason = directory_verdict()
        if verdict is Verdict.USED:
            return done(Source.DIRECTORY, Step.DIRECTORY, reason)
        trace.append(TraceEntry(Step.DIRECTORY, verdict, reason))

    # 4. Web-address photo
    if usable_url(user.picture_url):  # (a hidden picture only gets here for its owner)
        return done(
            Source.URL,
            Step.URL,
            f"picture from a web address: {user.picture_url}",
            url=user.picture_url,
        )
    if user.picture is Picture.URL:
        url_reason = (
            f"the web address {user.picture_url!r} is not a usable http(s) address"
            if user.picture_url
            else "picture option is 'url' but no web address is set"
        )
    else:
        url_reason = "no web address is set"
    trace.append(TraceEntry(Step.URL, Verdict.SKIPPED, url_reason))

    # 5. Default
    return done(Source.DEFAULT, Step.DEFAULT, "nothing else answered: the generated default")
