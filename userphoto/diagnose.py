"""The troubleshooter: why a photo does or does not show, for one viewer and client, and the fix.

`diagnose` runs the same resolution rule the APIs serve from, then names the modeled system's
symptom, every cause that applies and the commands that fix each. It only reads; it never
changes anything. (`doctor.py` runs the org-wide checks.)

Fix commands are exact `userphoto` command lines; `FILE` stands for a photo to upload (a JPEG
or PNG, 648×648 or larger) and `URL` for a web address the administrator chooses.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from .app import App
from .auth import Authenticator, Unauthorized
from .model import (
    ANONYMOUS,
    SD_MAX,
    Account,
    AuditEntry,
    ClientProfile,
    DirectoryThumbnail,
    Photo,
    PhotoState,
    Picture,
    User,
    Viewer,
    ViewerKind,
    Visibility,
)
from .photos import REJECTED
from .resolve import Resolution, Source, resolve
from .store import UserQuery

FILE = "FILE"  # placeholder in fix commands: the photo to upload


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


LEVEL_ORDER = {Level.ERROR: 0, Level.WARNING: 1, Level.INFO: 2}


class Symptom(StrEnum):
    """The three symptoms of the modeled system's support article."""

    OWN_PHOTO = "own_photo_not_shown"
    OTHERS = "others_cannot_see"
    NO_HD = "no_hd_photo"

    @property
    def title(self) -> str:
        return {
            Symptom.OWN_PHOTO: "The user can't see their own photo",
            Symptom.OTHERS: "Other contacts (especially external ones) can't see the photo",
            Symptom.NO_HD: "No high-resolution photo in meetings or large views",
        }[self]


@dataclass(frozen=True)
class Cause:
    code: str
    level: Level
    message: str
    fix: tuple[str, ...] = ()  # exact commands, in order
    advice: str = ""  # what to do when no command fixes it


@dataclass(frozen=True)
class Sees:
    source: str  # hd | directory | url | default | none
    size: int | None
    text: str


@dataclass
class Diagnosis:
    target: str
    viewer: str
    client: ClientProfile
    size: int | None
    sees: Sees
    steps: list[dict[str, str]] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)
    symptom: Symptom | None = None

    @property
    def shows_photo(self) -> bool:
        return self.sees.source in (Source.HD, Source.DIRECTORY, Source.URL)

    @property
    def fixes(self) -> list[str]:
        return [command for cause in self.causes for command in cause.fix]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "viewer": self.viewer,
            "client": self.client.value,
            "size": self.size,
            "sees": asdict(self.sees),
            "steps": self.steps,
            "symptom": {"code": self.symptom.value, "title": self.symptom.title}
            if self.symptom
            else None,
            "causes": [
                {**asdict(c), "level": c.level.value, "fix": list(c.fix)} for c in self.causes
            ],
            "summary": self.summary,
        }

    @property
    def summary(self) -> str:
        head = f"{self.viewer} sees {self.sees.text}."
        if self.symptom is None and not self.causes:
            return head + " Nothing to fix."
        if self.symptom is None:
            return head + f" {len(self.causes)} note(s) below."
        return head + f" Symptom: {self.symptom.title.lower()}."

    def text(self) -> str:
        lines = [
            f"target:  {self.target}",
            f"viewer:  {self.viewer}",
            f"client:  {self.client.value}" + (f", size {self.size}" if self.size else ""),
            "",
            f"Sees: {self.sees.text}",
        ]
        if self.steps:
            lines += ["", "How the photo was chosen:"]
            for step in self.steps:
                lines.append(f"  {step['step']:<10} {step['verdict']:<11} {step['reason']}")
        if self.symptom:
            lines += ["", f"Symptom: {self.symptom.title}"]
        if self.causes:
            lines += ["", "Causes:" if self.symptom else "Notes:"]
            for cause in self.causes:
                lines.append(f"  [{cause.level.value}] {cause.message}")
                for command in cause.fix:
                    lines.append(f"      fix: {command}")
                if cause.advice:
                    lines.append(f"      what to do: {cause.advice}")
            if any(FILE in c for c in self.fixes):
                lines += ["", f"({FILE}: a JPEG or PNG photo, 648×648 or larger.)"]
        elif not self.symptom:
            lines += ["", "Nothing to fix."]
        return "\n".join(lines)


# --- diagnose --------------------------------------------------------------------------------
def diagnose(
    app: App,
    target: str,
    *,
    viewer: str | None = None,
    external: str | None = None,
    anonymous: bool = False,
    token: str | None = None,
    client: ClientProfile | str = ClientProfile.HD,
    size: int | None = None,
    directory_check: Callable[[User], Cause | None] | None = None,
) -> Diagnosis:
    """Explain what `viewer` (default: a member of the organization) sees of `target`.

    `directory_check` looks up the live directory for sync lag; by default the configured
    directory is asked when the target came from it.
    """
    client = ClientProfile(client)
    store = app.store
    causes: list[Cause] = []
    who, who_text = _viewer(app, viewer, external, anonymous, token, causes)

    user = store.find_user(target)
    if user is None:
        causes.append(_not_found(app, target))
        symptom = Symptom.OTHERS
        return Diagnosis(
            target,
            who_text,
            client,
            size,
            Sees("none", None, "nothing: no such user"),
            causes=causes,
            symptom=symptom,
        )

    photo = store.get_photo(user.id)
    thumb = store.get_directory_thumbnail(user.id)
    res = resolve(
        user, who, client, size, photo_sizes=photo.sizes if photo else (), directory=thumb
    )
    # An unknown partner's users present tokens this server refuses: they get a 401.
    credentials_failed = any(c.code in ("token_invalid", "partner_not_configured") for c in causes)
    sees = _sees(res, thumb, credentials_failed)
    self_view = who.user_id == user.id
    wanted = _wanted(client, size)

    facts = _Facts(app, user, who, client, wanted, photo, thumb, res, self_view)
    causes += facts.causes()
    check = directory_check or _live_directory_check(app)
    lag = check(user) if check else None
    if lag:
        causes.append(lag)

    if credentials_failed or not res.photo:
        symptom: Symptom | None = Symptom.OWN_PHOTO if self_view else Symptom.OTHERS
    elif wanted > SD_MAX and (res.source is not Source.HD or (res.size or 0) < wanted):
        symptom = Symptom.NO_HD if res.source is not Source.URL else None
    else:
        symptom = None
    causes.sort(key=lambda c: LEVEL_ORDER[c.level])
    steps = [
        {"step": e.step.value, "verdict": e.verdict.value, "reason": e.reason} for e in res.trace
    ]
    return Diagnosis(user.address, who_text, client, size, sees, steps, _unique(causes), symptom)


def _unique(causes: list[Cause]) -> list[Cause]:
    seen: set[str] = set()
    out = []
    for cause in causes:
        if cause.code not in seen:
            seen.add(cause.code)
            out.append(cause)
    return out


MEETING_SIZE = 240  # what an HD client shows in a meeting or contact card


def _wanted(client: ClientProfile, size: int | None) -> int:
    """The size the viewer's client actually wants to show."""
    if size is not None:
        return size
    return SD_MAX if client is ClientProfile.LEGACY else MEETING_SIZE


def _viewer(
    app: App,
    address: str | None,
    external: str | None,
    anonymous: bool,
    token: str | None,
    causes: list[Cause],
) -> tuple[Viewer, str]:
    store = app.store
    partners = {p.domain for p in store.list_partners()}
    if token:
        try:
            who = Authenticator(store).from_token(token)
        except Unauthorized as exc:
            causes.append(_token_cause(exc.message, external))
            return ANONYMOUS, "a caller whose token is refused"
        return who, f"{who.kind.value} {who.address}"
    if anonymous:
        return ANONYMOUS, "an anonymous viewer"
    if external:
        domain = external.strip().lower().lstrip("@")
        if domain not in partners:
            causes.append(_partner_missing(domain))
            return ANONYMOUS, f"a user of {domain} (not a federation partner)"
        return Viewer(ViewerKind.PARTNER, f"someone@{domain}", None, domain), (
            f"a user of partner {domain}"
        )
    if address:
        found = store.find_user(address)
        if found is not None:
            return Viewer(ViewerKind.MEMBER, found.address, found.id), f"member {found.address}"
        domain = address.rpartition("@")[2].lower()
        if domain in partners:
            return Viewer(ViewerKind.PARTNER, address.lower(), None, domain), (
                f"{address} (user of partner {domain})"
            )
        if domain not in store.domains():
            causes.append(_partner_missing(domain))
            return ANONYMOUS, f"{address} (not a federation partner)"
        return Viewer(ViewerKind.MEMBER, address.lower(), None), f"member {address}"
    return Viewer(ViewerKind.MEMBER), "a member of the organization"


def _partner_missing(domain: str) -> Cause:
    return Cause(
        "partner_not_configured",
        Level.ERROR,
        f"{domain} is not a federation partner, so its users' tokens are refused and they "
        "see only what anonymous viewers see (photos with visibility 'everyone').",
        (f"userphoto partner add {domain}",),
        "Send the printed secret to the partner's administrator; their users then present "
        "JWTs signed with it.",
    )


def _token_cause(message: str, external: str | None) -> Cause:
    fix: tuple[str, ...] = ()
    advice = "Ask the partner to issue a fresh token."
    if "issuer" in message and external:
        fix = (f"userphoto partner add {external}",)
        advice = "Register the partner; tokens must carry iss = its domain."
    elif "audience" in message:
        advice = "The token's aud must be one of this organization's mail domains."
    elif "expired" in message:
        advice = "The token's exp has passed: the partner's client must fetch a new token."
    return Cause(
        "token_invalid", Level.ERROR, f"The token is refused (401): {message}", fix, advice
    )


def _not_found(app: App, target: str) -> Cause:
    key = target.strip().lower()
    local = key.partition("@")[0]
    pool: list[str] = []
    for probe in {local[:3], local[-3:], key.rpartition("@")[2][:4]}:
        if probe:
            pool += [u.address for u in _search(app, probe)]
    close = difflib.get_close_matches(key, sorted(set(pool)), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return Cause(
        "user_not_found",
        Level.ERROR,
        f"No user {target!r} exists (by address, alias or id).{hint}",
        (f"userphoto user list --search {local or key}",),
    )


def _search(app: App, text: str) -> Iterable[User]:
    return app.store.list_users(UserQuery(search=text, limit=200))


def _sees(res: Resolution, thumb: DirectoryThumbnail | None, refused: bool) -> Sees:
    if refused:
        return Sees("none", None, "nothing: the request is refused with 401")
    match res.source:
        case Source.HD:
            return Sees("hd", res.size, f"the HD photo at {res.size}×{res.size}")
        case Source.DIRECTORY:
            assert thumb is not None
            return Sees(
                "directory", thumb.width, f"the directory thumbnail ({thumb.width}×{thumb.height})"
            )
        case Source.URL:
            return Sees("url", None, f"the picture at {res.url}")
        case Source.DEFAULT:
            return Sees("default", None, "the generated initials picture (no photo)")
    return Sees("none", None, "no photo at all (the same answer as for an unknown user)")


@dataclass
class _Facts:
    app: App
    user: User
    viewer: Viewer
    client: ClientProfile
    wanted: int
    photo: Photo | None
    thumb: DirectoryThumbnail | None
    res: Resolution
    self_view: bool

    def causes(self) -> list[Cause]:
        out: list[Cause] = []
        for check in (
            self._visibility,
            self._picture,
            self._account,
            self._stored,
            self._size,
            self._crop,
            self._directory,
        ):
            out += check()
        return out

    def _crop(self) -> list[Cause]:
        """A saved photo whose crop was a guess (no face, a doubtful one, several faces)."""
        if self.photo is None or not self.photo.crop_decision.guess:
            return []
        decision = self.photo.crop_decision
        return [
            Cause(
                "crop_guess",
                Level.INFO,
                f"{self.addr}'s crop ({self.photo.crop}) was a guess: {decision.reason.value}"
                + (f" ({decision.note})" if decision.note else "")
                + ".",
                (f"userphoto set {self.addr} {FILE} --crop X,Y,SIZE",),
                "Look at the photo; if the square misses the face, give the box yourself "
                "(or use the crop tool on the web page).",
            )
        ]

    @property
    def addr(self) -> str:
        return self.user.address

    def _visibility(self) -> list[Cause]:
        u, v = self.user, self.viewer
        if self.self_view or self.res.source is not Source.NONE:
            return []
        if u.picture is Picture.HIDDEN:
            return [
                Cause(
                    "picture_hidden",
                    Level.ERROR,
                    f"{self.addr} chose to hide their picture (picture option 'hidden').",
                    (f"userphoto user set {self.addr} --picture photo",),
                )
            ]
        wanted = Visibility.ORGANIZATION if v.internal else Visibility.EVERYONE
        if u.visibility is Visibility.NOBODY or (
            u.visibility is Visibility.ORGANIZATION and not v.internal
        ):
            who = "nobody" if u.visibility is Visibility.NOBODY else "members of the organization"
            return [
                Cause(
                    "visibility",
                    Level.ERROR,
                    f"{self.addr}'s photo is visible to {who} only; this viewer is "
                    f"{'internal' if v.internal else 'external'}.",
                    (f"userphoto user set {self.addr} --visibility {wanted.value}",),
                )
            ]
        return []

    def _picture(self) -> list[Cause]:
        u = self.user
        if u.picture is Picture.DEFAULT:
            return [
                Cause(
                    "picture_default",
                    Level.ERROR,
                    f"{self.addr} chose the default (initials) picture instead of a photo.",
                    (f"userphoto user set {self.addr} --picture photo",),
                )
            ]
        if u.picture is Picture.URL and self.res.source is not Source.URL:
            return [
                Cause(
                    "url_missing",
                    Level.ERROR,
                    f"{self.addr} chose a picture from a web address, but none usable is "
                    "set (it must be http or https).",
                    (f"userphoto user set {self.addr} --picture url --url URL",),
                )
            ]
        return []

    def _account(self) -> list[Cause]:
        u = self.user
        if u.account in (Account.ABSENT, Account.DISABLED):
            fix = [f"userphoto user set {self.addr} --account hd"]
            if self.photo is None:
                fix.append(f"userphoto set {self.addr} {FILE}")
            return [
                Cause(
                    "account_unavailable",
                    Level.ERROR,
                    f"{self.addr}'s photo-store account is {u.account.value} (the modeled "
                    "system's 'mailbox unavailable'), so no HD photo can be stored or served.",
                    tuple(fix),
                )
            ]
        return []

    def _stored(self) -> list[Cause]:
        """Why there is no HD photo, when there is none (and the account could hold one)."""
        u, store = self.user, self.app.store
        if self.photo is not None or u.account in (Account.ABSENT, Account.DISABLED):
            return []
        if u.picture not in (Picture.PHOTO,) and not self.self_view:
            return []
        out: list[Cause] = []
        usable_thumb = self.thumb is not None and self.thumb.jpeg is not None
        if u.removal_record and usable_thumb and self.viewer.internal:
            out.append(
                Cause(
                    "removal_record",
                    Level.ERROR,
                    f"{self.addr}'s HD photo was removed on {u.removal_record:%Y-%m-%d}; "
                    "the removal "
                    "record blocks the directory photo that would otherwise show.",
                    (f"userphoto remove {self.addr} --clear-record",),
                )
            )
        if usable_thumb and not self.viewer.internal:
            out.append(
                Cause(
                    "directory_only",
                    Level.ERROR,
                    f"{self.addr}'s only photo is the directory thumbnail, which is served inside "
                    "the organization only; external viewers need an HD photo.",
                    (f"userphoto set {self.addr} {FILE}",),
                )
            )
        preview = store.get_photo(u.id, PhotoState.PREVIEW)
        if preview is not None:
            out.append(
                Cause(
                    "preview_not_saved",
                    Level.ERROR,
                    f"{self.addr} uploaded a preview on {preview.created:%Y-%m-%d %H:%M} but never "
                    "saved it.",
                    (f"userphoto set {self.addr} --save",),
                )
            )
        rejected = _last_rejection(self.app, u)
        if rejected:
            out.append(
                Cause(
                    "upload_rejected",
                    Level.ERROR,
                    f"The last upload for {self.addr} ({rejected.at:%Y-%m-%d %H:%M}, via "
                    f"{rejected.via}) was refused: {rejected.detail}",
                    (f"userphoto set {self.addr} {FILE}",),
                    "Upload a photo within the limits named above.",
                )
            )
        if self.self_view and not self.app.settings.self_service:
            out.append(
                Cause(
                    "self_service_disabled",
                    Level.ERROR,
                    "Self-service photo changes are disabled by policy ([policy] self_service = "
                    "false, the modeled SetPhotoEnabled), so the user cannot upload their own.",
                    (f"userphoto set {self.addr} {FILE}",),
                    "An administrator uploads it, or sets [policy] self_service = true in "
                    "userphoto.toml.",
                )
            )
        if not out and not (usable_thumb and self.viewer.internal and not u.removal_record):
            out.append(
                Cause(
                    "no_photo",
                    Level.ERROR,
                    f"No photo was ever uploaded for {self.addr}."
                    if not u.removal_record
                    else f"{self.addr}'s photo was removed and no new one uploaded.",
                    (f"userphoto set {self.addr} {FILE}",),
                )
            )
        return out

    def _size(self) -> list[Cause]:
        """Why a large view gets less than it wants."""
        if self.wanted <= SD_MAX or self.res.source not in (Source.HD, Source.DIRECTORY):
            return []
        got = (
            self.res.size
            if self.res.source is Source.HD
            else (self.thumb.width if self.thumb else 0)
        )
        if got and got >= self.wanted:
            return []
        out: list[Cause] = []
        if self.client is ClientProfile.LEGACY:
            out.append(
                Cause(
                    "legacy_client",
                    Level.WARNING,
                    "The viewer's client is legacy (Lync 2010 class): it shows standard definition "
                    f"only, at most {SD_MAX}×{SD_MAX}.",
                    advice="Use an HD client (Lync 2013 / Skype for Business or the web app); "
                    f"`userphoto diagnose {self.addr} --client hd` shows what it gets.",
                )
            )
        if self.user.account is Account.SD_ONLY:
            out.append(
                Cause(
                    "sd_only",
                    Level.WARNING,
                    f"{self.addr}'s photo-store account is sd_only: it keeps sizes up to "
                    f"{SD_MAX} only.",
                    (
                        f"userphoto user set {self.addr} --account hd",
                        f"userphoto set {self.addr} {FILE}",
                    ),
                )
            )
        if self.res.source is Source.DIRECTORY:
            out.append(
                Cause(
                    "directory_only",
                    Level.WARNING,
                    f"{self.addr} has no HD photo; only the {got}px directory thumbnail exists.",
                    (f"userphoto set {self.addr} {FILE}",),
                )
            )
        elif (
            self.photo
            and self.photo.largest < self.wanted
            and self.user.account is not Account.SD_ONLY
        ):
            out.append(
                Cause(
                    "source_too_small",
                    Level.WARNING,
                    f"{self.addr}'s photo was cropped to {self.photo.crop.size}px, so its largest "
                    f"size is {self.photo.largest}; {self.wanted} would need an upscale "
                    "(never done).",
                    (f"userphoto set {self.addr} {FILE}",),
                    f"Upload a photo of at least {self.wanted}×{self.wanted}.",
                )
            )
        return out

    def _directory(self) -> list[Cause]:
        thumb, out = self.thumb, []
        if thumb is None:
            return []
        if thumb.problem:
            out.append(
                Cause(
                    "directory_thumbnail_problem",
                    Level.ERROR if thumb.jpeg is None else Level.WARNING,
                    f"The directory photo of {self.addr} is unusable: {thumb.problem.rstrip('.')}"
                    + (" (the last good one is still served)." if thumb.jpeg else "."),
                    (f"userphoto directory upload {self.addr} {FILE}", "userphoto sync"),
                )
            )
        if self.photo is not None and thumb.jpeg is not None and not thumb.written_by_us:
            out.append(
                Cause(
                    "directory_disagrees",
                    Level.WARNING,
                    f"{self.addr} has an HD photo and a different directory photo; HD clients show "
                    "the HD one, directory readers (Outlook, address books) the other.",
                    (f"userphoto directory push {self.addr}",),
                )
            )
        return out


def _last_rejection(app: App, user: User) -> AuditEntry | None:
    """The newest refused upload, unless a photo was stored after it."""
    for entry in app.store.audit_log(user.id, limit=20):
        if entry.action == REJECTED:
            return entry
        if entry.action in ("photo.set", "photo.save", "photo.preview"):
            return None
    return None


_TIME = re.compile(r"^(\d{14})")


def _live_directory_check(app: App) -> Callable[[User], Cause | None] | None:
    """Compare the directory's own change time of the entry with what the last sync saw."""
    try:
        from .directory.client import DirectoryClient
        from .directory.config import DirectoryConfig
    except ImportError:
        return None
    try:
        config = DirectoryConfig.from_settings(app.settings)
    except Exception:
        return None
    if config is None:
        return None

    def check(user: User) -> Cause | None:
        dn = user.attributes.get("dn")
        if user.source != "directory" or not dn:
            return None
        try:
            with DirectoryClient(config, sleep=lambda _s: None) as client:
                attrs = client.read(dn, ["modifyTimestamp", "whenChanged"])
        except Exception as exc:
            return Cause(
                "directory_unreachable",
                Level.INFO,
                f"Could not ask the directory whether {user.address} changed: {exc}",
            )
        if not attrs:
            return None
        raw = attrs.get("modifytimestamp") or attrs.get("whenchanged") or []
        live = _TIME.match(raw[0].decode() if raw else "")
        seen = _TIME.match(user.attributes.get("directory_changed", ""))
        if live and (not seen or live[1] > seen[1]):
            stamp = live[1]
            return Cause(
                "sync_lag",
                Level.ERROR,
                f"The directory entry of {user.address} changed at {_fmt(stamp)} UTC, after the "
                f"last sync saw it ({_fmt(seen[1]) if seen else 'never'}); the change has not "
                "arrived yet.",
                ("userphoto sync",),
                "Run `userphoto sync --watch` as a service so changes arrive within seconds.",
            )
        return None

    return check


def _fmt(stamp: str) -> str:
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[8:10]}:{stamp[10:12]}:{stamp[12:14]}"
