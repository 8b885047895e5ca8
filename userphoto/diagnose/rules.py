"""The rules: from the facts of one viewer looking at one user to every cause in the way.

Pure. The rules walk the path the answer takes (who may see it → the picture option → a
photo at all → the size asked for) and name every obstacle on it in one run, in the order
their fixes must be applied: applying all printed fixes, in order, makes the photo show as
asked. A user's own choice (picture hidden or default, visibility 'nobody') is reported as
a choice; its fix says that it overrides the user. Nothing is reported that does not stand
between this viewer and the answer (beyond the directory's own data faults, which are
reported whenever they exist).
"""

from __future__ import annotations

from ..findings import UNAVAILABLE, Cause, cause
from ..model import SD_MAX, Account, ClientProfile, Picture, Visibility
from ..resolve import usable_url
from .facts import Facts


def causes(f: Facts) -> list[Cause]:
    """Every cause between the viewer and the photo they asked for, fixes in order."""
    out: list[Cause] = []
    addr = f.address
    picture = _may_see(f, out)
    if picture is Picture.URL:
        if not usable_url(f.user.picture_url):
            current = f", not {f.user.picture_url!r}" if f.user.picture_url else ""
            out.append(cause("url_missing", address=addr, current=current))
    else:
        _photo_path(f, out)
    out += directory_faults(f)
    if f.photo is not None and f.photo.crop_decision.guess:
        decision = f.photo.crop_decision
        reason = decision.reason.value + (f" ({decision.note})" if decision.note else "")
        out.append(cause("crop_guess", address=addr, crop=f.photo.crop, reason=reason))
    if f.user.directory_gone:
        out.append(cause("directory_gone", address=addr))
    return _unique(out)


def _may_see(f: Facts, out: list[Cause]) -> Picture:
    """Visibility and the picture option; returns the option once every choice is overridden."""
    u, addr = f.user, f.address
    picture = u.picture
    if not f.self_view:  # people always see their own photo, hidden or not
        if picture is Picture.HIDDEN:
            out.append(cause("picture_hidden", address=addr))
            picture = Picture.PHOTO
        if u.visibility is Visibility.NOBODY:
            wanted = Visibility.ORGANIZATION if f.internal else Visibility.EVERYONE
            out.append(cause("visibility_nobody", address=addr, wanted=wanted.value))
        elif u.visibility is Visibility.ORGANIZATION and not f.internal:
            out.append(cause("visibility", address=addr))
    if picture is Picture.DEFAULT:
        out.append(cause("picture_default", address=addr))
        picture = Picture.PHOTO
    return picture


def _photo_path(f: Facts, out: list[Cause]) -> None:
    """The `photo` option: first any photo for this viewer, then the size asked for."""
    u, addr = f.user, f.address
    account_ok = u.account not in UNAVAILABLE
    has_hd = account_ok and f.photo is not None
    directory_here = f.thumb_usable and f.internal and not u.removal_record
    want_hd = f.wanted > SD_MAX
    if not has_hd and usable_url(u.picture_url):
        return  # the web address answers when no HD photo does (a photo shows)

    # 1. A photo at all.
    stored_reported = False
    if not has_hd and not directory_here:
        if f.thumb_usable and f.internal and u.removal_record:
            when = f"{u.removal_record:%Y-%m-%d}"
            out.append(cause("removal_record", address=addr, when=when))
        else:
            if not account_ok:
                out.append(cause("account_unavailable", address=addr, account=u.account.value))
            if f.photo is None:
                out += _no_photo(f)
                stored_reported = True

    # 2. The size asked for (a directory thumbnail or SD rendition is not HD).
    if not want_hd:
        return
    if f.client is ClientProfile.LEGACY:
        out.append(cause("legacy_client", address=addr, sd_max=SD_MAX))
    if not account_ok:
        out.append(cause("account_unavailable", address=addr, account=u.account.value))
    if u.account is Account.SD_ONLY:
        out.append(cause("sd_only", address=addr, sd_max=SD_MAX))
    if f.photo is None:
        if not stored_reported:
            out += _no_photo(f)
    elif f.photo.largest < f.wanted and u.account is Account.HD:
        out.append(
            cause(
                "source_too_small",
                address=addr,
                crop=f.photo.crop.size,
                largest=f.photo.largest,
                wanted=f.wanted,
            )
        )


def _no_photo(f: Facts) -> list[Cause]:
    """Why no photo is stored, most specific first; `no_photo` when nothing else explains it."""
    u, addr, out = f.user, f.address, []
    if f.preview is not None:
        when = f"{f.preview.created:%Y-%m-%d %H:%M}"
        out.append(cause("preview_not_saved", address=addr, when=when))
    if f.rejection is not None:
        r = f.rejection
        out.append(
            cause(
                "upload_rejected",
                address=addr,
                when=f"{r.at:%Y-%m-%d %H:%M}",
                via=r.via,
                detail=r.detail,
            )
        )
    if f.self_view and not f.self_service:
        out.append(cause("self_service_disabled", address=addr))
    if out:
        return out
    if f.thumb_usable and f.thumb is not None:
        return [cause("directory_only", address=addr, width=f.thumb.width)]
    removed = " (it was removed and no new one uploaded)" if u.removal_record else ""
    return [cause("no_photo", address=addr, removed=removed)]


def directory_faults(f: Facts) -> list[Cause]:
    """The directory's own data faults: reported whenever they exist."""
    thumb = f.thumb
    out: list[Cause] = []
    if thumb is None:
        return out
    if thumb.problem:
        detail = thumb.problem.rstrip(".") + (
            " (the last good one is still served)." if thumb.jpeg else "."
        )
        out.append(cause("directory_thumbnail_problem", address=f.address, detail=detail))
    if f.photo is not None and thumb.jpeg is not None and not thumb.written_by_us:
        out.append(cause("directory_disagrees", address=f.address))
    return out


def _unique(causes: list[Cause]) -> list[Cause]:
    seen: set[str] = set()
    out = []
    for c in causes:
        if c.code not in seen:
            seen.add(c.code)
            out.append(c)
    return out
