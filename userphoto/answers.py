"""Each HTTP surface's answer to the resolution rule: native, Graph, EWS and /avatar/.

Pure: `resolve` picks the source; this module says what every surface makes of it — the
status, the rendition or size served, the generated default, `X-Photo-Source`, the caching
header — and how each surface calls `resolve` (its client profile, size, EWS's HR48x48 rule).
The API handlers, the web pictures and the troubleshooter's predictions all run these
functions, so what is served and what is predicted cannot drift apart.

The privacy rules every surface keeps: external viewers (partners, anonymous) get one
identical `HIDDEN` answer for an unknown user, a hidden one and one with nothing they may
see, and never the generated default of a real person (it would confirm they exist);
internal viewers learn why (`REFUSED`, 403, with the visibility step's reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from .model import (
    GENERATED_SIZE,
    OUTSIDE_GENERATED_MAX,
    Account,
    ClientProfile,
    DirectoryFacts,
    DirectoryThumbnail,
    User,
    Viewer,
)
from .resolve import Resolution, Source, Verdict, allowed_sizes, resolve

EWS_DIRECTORY_SIZE = 48  # EWS's HR48x48 asks for the directory thumbnail first
PUBLIC_MAX_AGE = 300  # anonymous answers: Libravatar's own value; ETags make revalidation cheap
PRIVATE_MAX_AGE = 60
_PUBLIC = f"public, max-age={PUBLIC_MAX_AGE}".encode()
_PRIVATE = f"private, max-age={PRIVATE_MAX_AGE}".encode()


class Kind(StrEnum):
    IMAGE = "image"  # 200: the HD rendition `size`, the directory JPEG, or a default drawn
    REDIRECT = "redirect"  # 302 to `url` (a web-address picture, or /avatar/'s d=URL)
    REFUSED = "refused"  # 403: not visible; internal viewers learn why (`reason`)
    HIDDEN = "hidden"  # 404: the one answer outsiders get (no enumeration)
    UNKNOWN = "unknown"  # 404: no such user (internal viewers only; outsiders get HIDDEN)
    NO_ACCOUNT = "no_account"  # 404: Graph's account that cannot hold photos (`reason`)
    NO_PHOTO = "no_photo"  # 404: nothing to show (`reason` says why)


_STATUS = {
    Kind.IMAGE: 200,
    Kind.REDIRECT: 302,
    Kind.REFUSED: 403,
    Kind.HIDDEN: 404,
    Kind.UNKNOWN: 404,
    Kind.NO_ACCOUNT: 404,
    Kind.NO_PHOTO: 404,
}


@dataclass(frozen=True, slots=True)
class Plan:
    """One surface's answer, before any bytes are read."""

    kind: Kind
    source: Source | None = None  # X-Photo-Source of an IMAGE or REDIRECT
    size: int | None = None  # the HD rendition to read, or the side of a default to draw
    url: str | None = None  # of a REDIRECT
    reason: str = ""  # of a REFUSED or NO_PHOTO, for internal viewers
    picture: str | None = None  # a drawn default: initials, mp, identicon, blank
    sizes: tuple[int, ...] = ()  # Graph: the sizes this viewer may list

    @property
    def status(self) -> int:
        return _STATUS[self.kind]


HIDDEN = Plan(Kind.HIDDEN)
UNKNOWN = Plan(Kind.UNKNOWN)
NO_PHOTO = Plan(Kind.NO_PHOTO)


def cache_control(viewer: Viewer) -> bytes:
    """Anonymous answers may be shared by caches; anyone else's are the viewer's own."""
    return _PUBLIC if viewer.address is None else _PRIVATE


def refusals(res: Resolution) -> str:
    """Why nothing better answered: the skipped and blocked steps' reasons."""
    return "; ".join(e.reason for e in res.trace if e.verdict in (Verdict.SKIPPED, Verdict.BLOCKED))


def _unseen(viewer: Viewer, res: Resolution | None) -> Plan | None:
    """No user, or one this viewer may not see: the answer every surface but EWS gives."""
    if res is None:
        return UNKNOWN if viewer.internal else HIDDEN
    if res.source is Source.NONE:
        return Plan(Kind.REFUSED, reason=res.trace[0].reason) if viewer.internal else HIDDEN
    return None


def _picture(res: Resolution) -> Plan | None:
    """HD, directory and web-address pictures, the same on every surface."""
    if res.source is Source.HD:
        return Plan(Kind.IMAGE, Source.HD, res.size)
    if res.source is Source.DIRECTORY:
        return Plan(Kind.IMAGE, Source.DIRECTORY)
    if res.source is Source.URL:
        return Plan(Kind.REDIRECT, Source.URL, url=res.url)
    return None


Thumb = DirectoryThumbnail | DirectoryFacts | None


def native(
    user: User | None,
    viewer: Viewer,
    client: ClientProfile,
    size: int | None,
    *,
    photo_sizes: Sequence[int] = (),
    directory: Thumb = None,
    no_default: bool = False,
) -> tuple[Resolution | None, Plan]:
    """`/v1/users/{key}/photo` (and the web pages' pictures). `no_default`: `default=404`."""
    res = None if user is None else _resolve(user, viewer, client, size, photo_sizes, directory)
    unseen = _unseen(viewer, res)
    if unseen is not None or res is None:
        return res, unseen or UNKNOWN
    if res.source is Source.DEFAULT:
        if not viewer.internal:
            return res, HIDDEN  # the generated default would confirm the person exists
        if no_default:
            return res, Plan(Kind.NO_PHOTO, reason=f"No photo: {refusals(res)}.")
        side = size or GENERATED_SIZE
        return res, Plan(Kind.IMAGE, Source.DEFAULT, side, picture="initials")
    return res, _picture(res) or NO_PHOTO


def graph(
    user: User | None,
    viewer: Viewer,
    size: int | None,
    *,
    photo_sizes: Sequence[int] = (),
    directory: Thumb = None,
) -> tuple[Resolution | None, Plan]:
    """Graph's `/photo` and `/photos/{size}` (always an HD client): a photo or a 404; a size
    this viewer may not have is a 404 naming the ones it may."""
    res = None
    if user is not None:
        res = _resolve(user, viewer, ClientProfile.HD, size, photo_sizes, directory)
    unseen = _unseen(viewer, res)
    if unseen is not None or res is None or user is None:
        return res, unseen or UNKNOWN
    if not res.photo:
        if not viewer.internal:
            return res, HIDDEN
        if user.account in (Account.ABSENT, Account.DISABLED) and not photo_sizes:
            why = f"The user's photo-store account is {user.account.value}."
            return res, Plan(Kind.NO_ACCOUNT, reason=why)
        return res, Plan(Kind.NO_PHOTO, reason=f"The photo wasn't found: {refusals(res)}.")
    if res.source is Source.URL:
        return res, Plan(Kind.REDIRECT, Source.URL, url=res.url)
    if res.source is Source.DIRECTORY:  # one size, its own (not necessarily square)
        assert directory is not None
        width = directory.width
        available: tuple[int, ...] = (width,) if width and width == directory.height else ()
    else:
        available = tuple(allowed_sizes(photo_sizes, res.cap))
    if size is not None and size not in available:
        listed = ", ".join(f"{s}x{s}" for s in available)
        return res, Plan(Kind.NO_PHOTO, reason=f"No {size}x{size} photo; available: {listed}")
    chosen = size if size is not None else res.size
    if res.source is Source.DIRECTORY:
        return res, Plan(Kind.IMAGE, Source.DIRECTORY, sizes=available)
    return res, Plan(Kind.IMAGE, Source.HD, chosen, sizes=available)


def ews(
    user: User | None,
    viewer: Viewer,
    size: int,
    *,
    photo_sizes: Sequence[int] = (),
    directory: Thumb = None,
) -> tuple[Resolution | None, Plan]:
    """EWS GetUserPhoto: HR48x48 prefers the directory thumbnail; no photo is a plain 404
    (for an unknown user too, whoever asks)."""
    if user is None:
        return None, NO_PHOTO
    res = resolve(
        user,
        viewer,
        ClientProfile.HD,
        size,
        photo_sizes=photo_sizes,
        directory=directory,
        prefer_directory=size == EWS_DIRECTORY_SIZE,
    )
    if res.source is Source.NONE and viewer.internal:
        return res, Plan(Kind.REFUSED, reason=res.trace[0].reason)
    return res, _picture(res) or NO_PHOTO


def avatar(
    user: User | None,
    viewer: Viewer,
    size: int,
    *,
    photo_sizes: Sequence[int] = (),
    directory: Thumb = None,
    default: str | None = None,
) -> tuple[Resolution | None, Plan]:
    """/avatar/ (a web client): the photo, never upscaled (above the master's size the master
    itself, which the client scales); else the `d=` default. `user` None: unknown or `f=y`."""
    res = None
    if user is not None:
        res = resolve(
            user, viewer, ClientProfile.WEB, None, photo_sizes=photo_sizes, directory=directory
        )
        if res.source is Source.HD and photo_sizes:
            return res, Plan(Kind.IMAGE, Source.HD, min(size, max(photo_sizes)))
        found = _picture(res)
        if found is not None and res.source is not Source.HD:
            return res, found
    return res, avatar_default(viewer, size, default, res)


def avatar_default(
    viewer: Viewer, size: int, default: str | None, res: Resolution | None = None
) -> Plan:
    """/avatar/'s default picture. Without `d=`: initials when an internal viewer may see the
    user and they chose the default picture, else mp. Outsiders' defaults depend on the
    request alone, and are drawn at most OUTSIDE_GENERATED_MAX px (the client scales up)."""
    if default is None:
        default = "initials" if knows_user(viewer, res) else "mp"
    if default == "404":
        return NO_PHOTO
    if default.startswith(("http://", "https://")):
        return Plan(Kind.REDIRECT, Source.DEFAULT, url=default)
    side = size if viewer.internal else min(size, OUTSIDE_GENERATED_MAX)
    return Plan(Kind.IMAGE, Source.DEFAULT, side, picture=default)


def knows_user(viewer: Viewer, res: Resolution | None) -> bool:
    """Whether /avatar/'s initials may be drawn from the user (not from the request)."""
    return res is not None and viewer.internal and res.source is Source.DEFAULT


def _resolve(
    user: User,
    viewer: Viewer,
    client: ClientProfile,
    size: int | None,
    photo_sizes: Sequence[int],
    directory: Thumb,
) -> Resolution:
    return resolve(user, viewer, client, size, photo_sizes=photo_sizes, directory=directory)
