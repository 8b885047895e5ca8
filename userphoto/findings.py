"""The catalogue of findings: every cause the troubleshooter can name, declared once.

Each finding has a code, a level, a short title (the doctor's and admin listing's line), an
explanation and a fix (templates filled from facts), advice when no command fixes it, and
whether it is the user's own choice rather than a fault. `diagnose`, `doctor`, the admin
listing's "Problems" filter and the web troubleshooter all read it, so changing a level or a
fix here changes it everywhere.

The per-user rule (`user_findings`) is here too, over a small facts value (`UserFacts`): the
doctor applies it once per distinct facts value the store counts, the admin listing's
"Problems" filter is derived from it (store/facts_sql.py), and each listing row shows it.

Pure: no I/O. Templates use `str.format` fields; `{address}` is the user's address (the
doctor prints ADDRESS), FILE stands for a photo to upload and URL for a web address.
Over ~400 lines only because the catalogue itself is long: one entry per finding, as data.

Long on purpose: most of it is the catalogue itself, one declaration per finding.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from .model import MEETING_SIZE, Account, Picture

FILE = "FILE"  # placeholder in fix commands: the photo to upload
URL = "URL"  # placeholder in fix commands: a web address the administrator chooses
ADDRESS = "ADDRESS"  # the doctor's placeholder for each user's address


class Level(StrEnum):
    ERROR = "error"  # a fault someone must repair (diagnose and doctor exit non-zero)
    WARNING = "warning"  # something stands between the viewer and the photo
    INFO = "info"  # worth knowing; includes the users' own choices


LEVEL_ORDER = {Level.ERROR: 0, Level.WARNING: 1, Level.INFO: 2}


@dataclass(frozen=True)
class Finding:
    code: str
    level: Level
    title: str  # one line, no address: the doctor's and the admin listing's wording
    explanation: str  # template: the diagnose message
    fix: tuple[str, ...] = ()  # command templates, run in order
    advice: str = ""  # template: what to do when no command fixes it (or on top of it)
    choice: bool = False  # the user's own choice, not a fault: a fix overrides it
    problem: bool = False  # listed under the admin listing's "Problems" filter

    def fixes(self, **values: Any) -> tuple[str, ...]:
        return tuple(_fill(t, values) for t in self.fix)

    def message(self, **values: Any) -> str:
        return _fill(self.explanation, values)

    def advise(self, **values: Any) -> str:
        text = _fill(self.advice, values)
        if self.choice:
            note = _fill(CHOICE_NOTE, values)
            text = f"{note} {text}".strip()
        return text


CHOICE_NOTE = (
    "This is {address}'s own choice: the fix overrides it, so change it only with their agreement."
)


class _Keep(dict[str, Any]):
    """Leaves unknown fields as written, so a template may be filled in stages."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, values: dict[str, Any]) -> str:
    return template.format_map(_Keep(values))


@dataclass(frozen=True)
class Cause:
    """One finding about one user (or the organization), its text filled in."""

    code: str
    level: Level
    message: str
    fix: tuple[str, ...] = ()  # exact commands, in order
    advice: str = ""  # what to do when no command fixes it
    choice: bool = False  # the user's own choice: the fix overrides it

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "level": self.level.value,
            "message": self.message,
            "fix": list(self.fix),
            "advice": self.advice,
            "choice": self.choice,
        }


def cause(code: str, **values: Any) -> Cause:
    """The catalogue's finding `code`, filled with `values` (address, and its own fields)."""
    finding = CATALOGUE[code]
    return Cause(
        code,
        finding.level,
        finding.message(**values),
        finding.fixes(**values),
        finding.advise(**values),
        finding.choice,
    )


def fix_text(code: str, address: str = ADDRESS) -> tuple[str, ...]:
    """The fix commands of `code` for one user (ADDRESS in the doctor's listing)."""
    return CATALOGUE[code].fixes(address=address)


_UPLOAD = f"userphoto set {{address}} {FILE}"

CATALOGUE: dict[str, Finding] = {
    f.code: f
    for f in [
        # --- who is asking ------------------------------------------------------------------
        Finding(
            "partner_not_configured",
            Level.ERROR,
            "viewer's organization is not a federation partner",
            "{domain} is not a federation partner: a token its users present is refused (401), "
            "and without one they are answered as anonymous viewers are (photos with "
            "visibility 'everyone' only).",
            ("userphoto partner add {domain}",),
            "Send the printed secret to the partner's administrator; their users then present "
            "JWTs signed with it.",
        ),
        Finding(
            "token_invalid",
            Level.ERROR,
            "the caller's token is refused (401)",
            "The token is refused (401): {reason}",
            advice="{advice}",
        ),
        Finding(
            "user_not_found",
            Level.ERROR,
            "no such user",
            "No user {target!r} exists (by address, alias or id).{hint}",
            ("userphoto user list --search {search}",),
        ),
        # --- the user's own choices ------------------------------------------------------------
        Finding(
            "picture_hidden",
            Level.INFO,
            "picture hidden by the user's choice",
            "{address} chose to hide their picture (picture option 'hidden').",
            ("userphoto user set {address} --picture photo",),
            choice=True,
        ),
        Finding(
            "visibility_nobody",
            Level.INFO,
            "photo visible to nobody, by the user's choice",
            "{address} chose visibility 'nobody': no one else sees their photo.",
            ("userphoto user set {address} --visibility {wanted}",),
            choice=True,
        ),
        Finding(
            "picture_default",
            Level.INFO,
            "default picture chosen by the user",
            "{address} chose the default (initials) picture instead of a photo.",
            ("userphoto user set {address} --picture photo",),
            choice=True,
        ),
        # --- visibility and picture settings -----------------------------------------------------
        Finding(
            "visibility",
            Level.WARNING,
            "photo visible inside the organization only",
            "{address}'s photo is visible to members of the organization only; this viewer is "
            "external.",
            ("userphoto user set {address} --visibility everyone",),
        ),
        Finding(
            "url_missing",
            Level.ERROR,
            "picture option 'url' without a usable web address",
            "{address} chose a picture from a web address, but none usable is set (it must be "
            "an http or https address{current}).",
            (f"userphoto user set {{address}} --picture url --url {URL}",),
            problem=True,
        ),
        # --- the photo store -------------------------------------------------------------------
        Finding(
            "account_unavailable",
            Level.WARNING,
            "photo-store account disabled or absent (user still in the directory)",
            "{address}'s photo-store account is {account} (the modeled system's 'mailbox "
            "unavailable'), so no HD photo can be stored or served.",
            ("userphoto user set {address} --account hd",),
            problem=True,
        ),
        Finding(
            "no_photo",
            Level.WARNING,
            "no photo anywhere: everyone sees the default picture",
            "No photo is stored for {address}{removed}.",
            (_UPLOAD,),
        ),
        Finding(
            "preview_not_saved",
            Level.WARNING,
            "preview uploaded but never saved",
            "{address} uploaded a preview on {when} but never saved it.",
            ("userphoto set {address} --save",),
        ),
        Finding(
            "upload_rejected",
            Level.ERROR,
            "the last upload was refused",
            "The last upload for {address} ({when}, via {via}) was refused: {detail}",
            (_UPLOAD,),
            "Upload a photo within the limits named above.",
        ),
        Finding(
            "self_service_disabled",
            Level.WARNING,
            "self-service photo changes are disabled by policy",
            "Self-service photo changes are disabled by policy ([policy] self_service = false, "
            "the modeled SetPhotoEnabled), so users cannot upload their own.",
            (_UPLOAD,),
            "An administrator uploads it, or sets [policy] self_service = true in userphoto.toml.",
        ),
        # --- sizes -------------------------------------------------------------------------------
        Finding(
            "sd_only",
            Level.WARNING,
            "sd_only account: no HD sizes",
            "{address}'s photo-store account is sd_only: it keeps sizes up to {sd_max} only.",
            ("userphoto user set {address} --account hd", _UPLOAD),
        ),
        Finding(
            "source_too_small",
            Level.WARNING,
            f"photo smaller than {MEETING_SIZE} px: blurry or small in meetings",
            "{address}'s photo was cropped to {crop}px, so its largest size is {largest}; "
            "{wanted} would need an upscale (never done).",
            (_UPLOAD,),
            "Upload a photo of at least {wanted}×{wanted}.",
        ),
        Finding(
            "crop_guess",
            Level.INFO,
            "photos whose crop was a guess (no face, a doubtful one, or several): review them",
            "{address}'s crop ({crop}) was a guess: {reason}.",
            (_UPLOAD + " --crop X,Y,SIZE",),
            "Look at the photo; if the square misses the face, give the box yourself "
            "(or use the crop tool on the web page).",
        ),
        Finding(
            "legacy_client",
            Level.WARNING,
            "legacy client: standard definition only",
            "The viewer's client is legacy (Lync 2010 class): it shows standard definition only, "
            "at most {sd_max}×{sd_max}.",
            advice="Use an HD client (Lync 2013 / Skype for Business or the web app); "
            "`userphoto diagnose {address} --client hd` shows what it gets.",
        ),
        # --- the directory -----------------------------------------------------------------------
        Finding(
            "directory_only",
            Level.WARNING,
            "only a directory photo: external contacts see none, HD views get 96 px",
            "{address}'s only photo is the {width}px directory thumbnail: it is served inside "
            "the organization only and is too small for HD views; external viewers and large "
            "views need an HD photo.",
            (_UPLOAD,),
        ),
        Finding(
            "removal_record",
            Level.WARNING,
            "removal record blocks a usable directory photo",
            "{address}'s HD photo was removed on {when}; the removal record blocks the "
            "directory photo that would otherwise show.",
            ("userphoto remove {address} --clear-record",),
            problem=True,
        ),
        Finding(
            "directory_thumbnail_problem",
            Level.ERROR,
            "directory photo unusable (not an image, over 100 KB, base64 text, ...)",
            "The directory photo of {address} is unusable: {detail}",
            (f"userphoto directory upload {{address}} {FILE}", "userphoto sync"),
            problem=True,
        ),
        Finding(
            "directory_disagrees",
            Level.WARNING,
            "HD and directory photos differ (not written back by userphoto)",
            "{address} has an HD photo and a different directory photo; HD clients show the HD "
            "one, directory readers (Outlook, address books) the other.",
            ("userphoto directory push {address}",),
        ),
        Finding(
            "directory_gone",
            Level.INFO,
            "gone from the directory (kept, marked)",
            "{address} is gone from the directory; userphoto keeps the user, marked.",
        ),
        Finding(
            "sync_lag",
            Level.ERROR,
            "a directory change has not arrived yet",
            "The directory entry of {address} changed at {live} UTC, after the last sync saw it "
            "({seen}); the change has not arrived yet.",
            ("userphoto sync",),
            "Run `userphoto sync --watch` as a service so changes arrive within seconds.",
        ),
        Finding(
            "directory_unreachable",
            Level.INFO,
            "the directory could not be asked",
            "Could not ask the directory whether {address} changed: {detail}",
        ),
        # --- the organization (doctor) -----------------------------------------------------------
        Finding(
            "sync_failed",
            Level.ERROR,
            "the last directory sync failed",
            "The last directory {mode} sync failed: {detail}",
            ("userphoto sync --status", "userphoto sync"),
        ),
        Finding(
            "no_partners",
            Level.INFO,
            "no federation partners",
            "No federation partners: external contacts see only photos with visibility "
            "'everyone', anonymously.",
            ("userphoto partner add DOMAIN",),
        ),
    ]
}

# The admin listing's "Problems" filter: the findings that need an administrator's repair.
PROBLEM_CODES: tuple[str, ...] = tuple(c for c, f in CATALOGUE.items() if f.problem)


@dataclass(frozen=True)
class UserFacts:
    """What the per-user rule reads about one user, and nothing more: a few flags and two
    choices, so an organization of a million users has at most a few hundred distinct values
    (the doctor counts users per value in SQL and applies the rule once per value)."""

    directory_gone: bool = False
    directory_problem: bool = False  # the directory thumbnail has a problem noted
    picture: Picture = Picture.PHOTO
    url_usable: bool = True  # picture 'url' only: its web address is usable (else True)
    account: Account = Account.HD
    has_preview: bool = False  # an uploaded preview waits to be saved
    has_sizes: bool = False  # a saved photo with its sizes
    below_meeting_size: bool = False  # the saved photo's largest size is < MEETING_SIZE
    crop_guess: bool = False  # the saved photo's crop reason is one of model.GUESSES
    directory_usable: bool = False  # a usable directory thumbnail
    directory_ours: bool = False  # the directory thumbnail was written back by userphoto
    removal_record: bool = False


UNAVAILABLE = (Account.ABSENT, Account.DISABLED)


def user_findings(f: UserFacts) -> tuple[str, ...]:
    """The org-wide per-user rule: codes into CATALOGUE, in the order the doctor lists them."""
    if f.directory_gone:
        return ("directory_gone",)
    found: list[str] = []
    if f.directory_problem:
        found.append("directory_thumbnail_problem")
    if f.picture is Picture.URL and not f.url_usable:
        found.append("url_missing")
    if f.picture is Picture.HIDDEN:
        found.append("picture_hidden")
    elif f.picture is Picture.DEFAULT:
        found.append("picture_default")
    if f.account in UNAVAILABLE:
        found.append("account_unavailable")
        return tuple(found)
    if f.account is Account.SD_ONLY:
        found.append("sd_only")
    if f.has_preview:
        found.append("preview_not_saved")
    if f.has_sizes:
        if f.below_meeting_size and f.account is Account.HD:
            found.append("source_too_small")
        if f.crop_guess:
            found.append("crop_guess")
        if f.directory_usable and not f.directory_ours:
            found.append("directory_disagrees")
    elif f.directory_usable:
        found.append("removal_record" if f.removal_record else "directory_only")
    elif f.picture is Picture.PHOTO:
        found.append("no_photo")
    return tuple(found)


def is_problem(f: UserFacts) -> bool:
    """Listed under the admin listing's "Problems" filter: a finding marked `problem`."""
    return any(CATALOGUE[code].problem for code in user_findings(f))


@functools.cache
def fact_values(name: str) -> tuple[Any, ...]:
    """Every value the UserFacts field `name` can take (the flags, or the enum's members)."""
    default = {f.name: f.default for f in fields(UserFacts)}[name]
    if isinstance(default, StrEnum):
        return tuple(type(default))
    return (False, True)


def every_user_facts() -> Iterator[UserFacts]:
    """Every possible UserFacts value (a few thousand): rules over them are checked whole."""
    names = [f.name for f in fields(UserFacts)]
    for combo in itertools.product(*(fact_values(n) for n in names)):
        yield UserFacts(**dict(zip(names, combo, strict=True)))
