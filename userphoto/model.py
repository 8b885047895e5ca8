"""The domain: users, photos, viewers and clients as plain values. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Account(StrEnum):
    """State of a user's photo-store account (the modeled system's Exchange mailbox)."""

    HD = "hd"  # holds HD photos, every size
    SD_ONLY = "sd_only"  # legacy store: sizes <= 96 only
    DISABLED = "disabled"  # exists but cannot serve or take photos
    ABSENT = "absent"  # no photo store at all


class Picture(StrEnum):
    """What the user chose to show (Lync 2010 options + Lync 2013 show/hide)."""

    PHOTO = "photo"
    DEFAULT = "default"  # generated initials
    HIDDEN = "hidden"
    URL = "url"  # a picture from a web address


class Visibility(StrEnum):
    """Who may see the user's photo at all."""

    EVERYONE = "everyone"  # anonymous and federated viewers too
    ORGANIZATION = "organization"  # members of this org only
    NOBODY = "nobody"


class ViewerKind(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    PARTNER = "partner"  # a federated partner org's user
    ANONYMOUS = "anonymous"

    @property
    def internal(self) -> bool:
        return self in (ViewerKind.MEMBER, ViewerKind.ADMIN)


class ClientProfile(StrEnum):
    LEGACY = "legacy"  # Lync 2010: SD only, at most 96 px
    HD = "hd"  # Lync 2013 / Skype for Business
    WEB = "web"


class PhotoState(StrEnum):
    PREVIEW = "preview"  # uploaded, not yet saved
    SAVED = "saved"  # the current photo
    SUPERSEDED = "superseded"  # replaced by a later save
    CANCELLED = "cancelled"  # a preview that was discarded
    REMOVED = "removed"  # deleted by remove


# The modeled system's HD sizes; sd_only accounts and legacy clients stop at SD_MAX.
HD_SIZES: tuple[int, ...] = (48, 64, 96, 120, 240, 360, 432, 504, 648)
SD_MAX = 96
MEETING_SIZE = 240  # what an HD client shows in a meeting or contact card
# Generated default pictures for anonymous and partner viewers are drawn at most this large
# (the client scales up): the work one outside request can cause stays bounded.
OUTSIDE_GENERATED_MAX = 512
MASTER_MAX = 648
# The generated initials' size when the request names none (the native API and the web pages).
GENERATED_SIZE = SD_MAX
# The sizes the APIs answer when a request names none (diagnose predicts with the same ones).
AVATAR_DEFAULT_SIZE = 80  # Libravatar/Gravatar's s= default
EWS_DEFAULT_SIZE = SD_MAX  # GetUserPhoto's HR96x96

_SIZE_CODE = re.compile(r"^hr(\d+)x(\d+)$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Parse `96`, `"96"` or an EWS size code like `HR96x96` (any case) into a pixel size.

    Only the HD sizes are accepted; anything else raises ValueError naming the valid ones.
    """
    if isinstance(text, int):
        value = text
    else:
        raw = text.strip()
        match = _SIZE_CODE.match(raw)
        if match:
            width, height = int(match[1]), int(match[2])
            if width != height:
                raise ValueError(f"size code {raw!r} is not square; valid: {valid_sizes_text()}")
            value = width
        elif raw.isdigit():
            value = int(raw)
        else:
            raise ValueError(f"unknown size {raw!r}; valid: {valid_sizes_text()}")
    if value not in HD_SIZES:
        raise ValueError(f"unknown size {value!r}; valid: {valid_sizes_text()}")
    return value


def valid_sizes_text() -> str:
    return ", ".join(str(s) for s in HD_SIZES) + " (or HR<n>x<n>)"


def size_code(size: int) -> str:
    return f"HR{size}x{size}"


@dataclass(frozen=True)
class CropBox:
    """A square in the upright source image's pixel coordinates."""

    x: int
    y: int
    size: int

    @classmethod
    def parse(cls, text: str) -> CropBox:
        parts = text.replace(" ", "").split(",")
        if len(parts) != 3 or not all(p.lstrip("-").isdigit() for p in parts):
            raise ValueError(f"crop box must be X,Y,SIZE in pixels (got {text!r})")
        x, y, size = (int(p) for p in parts)
        if x < 0 or y < 0 or size <= 0:
            raise ValueError(f"crop box must have X,Y >= 0 and SIZE > 0 (got {text!r})")
        return cls(x, y, size)

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.size}"


class CropReason(StrEnum):
    """Why a photo is cut where it is."""

    FACE = "face"  # one clear face, framed by the portrait rule
    SEVERAL = "several faces"  # the main one of several faces was framed (note says which)
    DOUBTFUL = "doubtful face: centre"  # a detection we did not trust; centre-top crop
    CENTRE = "no face: centre"  # nothing found; centre-top crop
    MANUAL = "manual"  # a person chose the box


# The reasons that are guesses: an admin should look at these crops.
GUESSES = (CropReason.SEVERAL, CropReason.DOUBTFUL, CropReason.CENTRE)


@dataclass(frozen=True)
class CropDecision:
    """How a crop box was chosen: reason, confidence (0..1) and a short human note."""

    reason: CropReason
    confidence: float = 1.0
    note: str = ""

    @property
    def guess(self) -> bool:
        return self.reason in GUESSES

    def __str__(self) -> str:
        score = f" {self.confidence:.2f}" if self.reason is not CropReason.MANUAL else ""
        note = f" ({self.note})" if self.note else ""
        flag = " [check]" if self.guess else ""
        return f"{self.reason.value}{score}{note}{flag}"

    def as_json(self) -> dict[str, object]:
        return {
            "reason": self.reason.value,
            "confidence": round(self.confidence, 3),
            "note": self.note,
            "guess": self.guess,
        }


MANUAL_CROP = CropDecision(CropReason.MANUAL, 1.0)


# --- image values: what the imaging pipeline takes and gives (imaging.py does the work) -------

DIRECTORY_LIMIT = 102_400  # AD thumbnailPhoto rangeUpper, bytes


@dataclass(frozen=True)
class Limits:
    """What an upload may be: the `[limits]` settings, checked by imaging from the header."""

    max_bytes: int = 4 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 48
    # One image job's budget (enforced by the worker pool; estimated here from the header).
    job_memory: int = 256 * 1024 * 1024  # bytes of decoded pixels and their copies
    job_cpu_seconds: float = 10.0


@dataclass(frozen=True)
class SourceInfo:
    """The uploaded image as decoded: its format and upright size, and a hash of its bytes."""

    format: str  # one of imaging.FORMATS
    width: int  # upright (after EXIF orientation)
    height: int
    sha256: str


# --- photo checks: what the automatic checks measured (checks.py measures, config sets) --------

CHECK_ACTIONS = ("refuse", "review", "warn", "off")
CHECK_NAMES = ("one_face", "face_size", "sharpness", "exposure", "resolution")


@dataclass(frozen=True)
class CheckPolicy:
    """The `[policy]` check settings: each check's action and the thresholds an admin tunes.

    Defaults were chosen by measuring real photos (bench/checks.py, docs/checks.md). Until
    approval exists, `review` behaves as `warn` (shown, not enforced).
    """

    one_face: str = "warn"
    face_size: str = "warn"
    sharpness: str = "warn"
    exposure: str = "warn"
    resolution: str = "warn"
    face_size_min: float = 0.08  # face width / the picture's short side
    face_size_max: float = 0.55
    sharpness_min: float = 0.25  # Laplacian energy / intensity variance of the face, at 32 px
    exposure_min: float = 60.0  # mean face luminance, 0-255
    exposure_max: float = 200.0
    clipped_max: float = 0.15  # share of face pixels at black or white
    resolution_min: int = 320  # the source's short side, px

    def action(self, check: str) -> str:
        value: str = getattr(self, check)
        return value


@dataclass(frozen=True)
class CheckResult:
    """One automatic check of one photo: what it measured, against what, and what follows."""

    id: str
    value: float
    threshold: str  # as people read it: "= 1", ">= 0.10", "60-200"
    passed: bool
    action: str  # one of CHECK_ACTIONS: what a failure does
    words: str  # plain words for people ("the face is blurred")

    @property
    def outcome(self) -> str:
        """pass, or the action a failure takes (`review` counts as `warn` until approval)."""
        if self.passed or self.action == "off":
            return "pass"
        return self.action

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "value": round(self.value, 3),
            "threshold": self.threshold,
            "outcome": self.outcome,
            "action": self.action,
            "words": self.words,
        }


@dataclass(frozen=True)
class Rendered:
    """Everything stored for one photo version."""

    source: SourceInfo
    crop: CropBox  # in upright source pixels
    renditions: dict[int, bytes]  # HD size -> JPEG, only sizes <= the cropped side
    thumbnail: bytes  # the directory thumbnail, <= DIRECTORY_LIMIT
    decision: CropDecision = MANUAL_CROP  # how `crop` was chosen
    checks: tuple[CheckResult, ...] = ()  # the automatic checks (none for a manual crop)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted(self.renditions))


@dataclass
class User:
    id: str
    address: str
    display_name: str
    aliases: list[str] = field(default_factory=list)
    account: Account = Account.HD
    picture: Picture = Picture.PHOTO
    picture_url: str | None = None
    visibility: Visibility = Visibility.ORGANIZATION
    # Set by Remove-UserPhoto semantics: blocks the directory fallback until cleared.
    removal_record: datetime | None = None
    # Directory-sourced users: gone from the directory (marked, never deleted).
    directory_gone: bool = False
    source: str = "local"  # "local" or "directory"
    attributes: dict[str, str] = field(default_factory=dict)  # extra directory attributes
    created: datetime | None = None
    updated: datetime | None = None

    @property
    def addresses(self) -> list[str]:
        return [self.address, *self.aliases]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass
class Photo:
    """One version of a user's photo: its renditions live beside it in the store."""

    id: int
    user_id: str
    version: int
    state: PhotoState
    crop: CropBox
    source_hash: str  # sha256 of the uploaded bytes (idempotent imports compare it)
    source_format: str
    source_width: int
    source_height: int
    sizes: tuple[int, ...]  # HD sizes rendered, ascending
    created: datetime
    actor: str
    via: str
    # How the crop was chosen (older rows and stores that do not record it: manual).
    crop_decision: CropDecision = MANUAL_CROP
    # The automatic checks of this upload, carried with its answer (not stored yet).
    checks: tuple[CheckResult, ...] = ()

    @property
    def largest(self) -> int:
        return self.sizes[-1]


@dataclass
class DirectoryThumbnail:
    """The user's directory photo (AD thumbnailPhoto / jpegPhoto), as last read by sync."""

    user_id: str
    jpeg: bytes | None  # re-encoded, servable; None when the directory value was unusable
    raw_hash: str  # sha256 of the directory's raw bytes (change detection)
    raw_size: int
    width: int
    height: int
    problem: str | None  # why the raw value could not be used, for the troubleshooter
    seen: datetime
    written_by_us: bool = False  # our own write-back, so sync does not loop

    @property
    def facts(self) -> DirectoryFacts:
        return DirectoryFacts(self.jpeg is not None, self.problem, self.width, self.height)


@dataclass(frozen=True)
class DirectoryFacts:
    """What the resolution rule needs of a directory photo: whether it can be served (and why
    not), and its size when known. A status row has these without the photo's bytes."""

    usable: bool
    problem: str | None = None  # why it cannot be used (when not usable)
    width: int | None = None
    height: int | None = None


class AuditAction(StrEnum):
    """What an audit line records (`AuditEntry.action`), each name spelled here only."""

    USER_ADD = "user.add"
    USER_UPDATE = "user.update"
    PHOTO_SET = "photo.set"
    PHOTO_PREVIEW = "photo.preview"
    PHOTO_SAVE = "photo.save"
    PHOTO_CANCEL = "photo.cancel"
    PHOTO_REMOVE = "photo.remove"
    PHOTO_CLEAR_RECORD = "photo.clear_record"
    PHOTO_REJECTED = "photo.rejected"  # an upload that failed validation


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    user_id: str
    action: str  # an AuditAction's value
    via: str
    detail: str = ""


def normalize_address(address: str) -> str:
    """Addresses compare trimmed and lower-cased (as Libravatar hashes them)."""
    return address.strip().lower()


_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_address(text: str) -> bool:
    return bool(_ADDRESS.match(text.strip()))


@dataclass(frozen=True)
class Viewer:
    """Who is asking: resolved from a request's credentials by the auth adapter."""

    kind: ViewerKind
    address: str | None = None  # the viewer's address (None when anonymous)
    user_id: str | None = None  # their user in this org (members and admins only)
    partner: str | None = None  # the federated partner domain that vouched for them

    @property
    def internal(self) -> bool:
        return self.kind.internal

    @property
    def admin(self) -> bool:
        return self.kind is ViewerKind.ADMIN

    def __str__(self) -> str:
        if self.kind is ViewerKind.ANONYMOUS:
            return "anonymous"
        return f"{self.kind.value} {self.address}"


ANONYMOUS = Viewer(ViewerKind.ANONYMOUS)


@dataclass(frozen=True)
class ApiToken:
    """A member's or admin's bearer token; only its SHA-256 digest is ever stored."""

    id: str  # short public handle, for listing and revoking
    digest: str  # sha256 hex of the token
    address: str
    admin: bool
    created: datetime
    expires: datetime | None = None  # None: never (tokens made before expiry existed)
    last_used: datetime | None = None  # recorded at most once a minute per process

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


@dataclass(frozen=True)
class Partner:
    """A federated partner organization whose users present JWTs signed by it."""

    domain: str  # the JWT `iss`
    algorithm: str  # HS256 (shared secret) | RS256 | ES256 (partner's public key)
    key: str  # the shared secret, or the PEM public key
    created: datetime
