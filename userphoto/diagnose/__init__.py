"""The troubleshooter: why a photo does or does not show, for one viewer and client, and the fix.

`diagnose` runs the same resolution rule the APIs serve from, predicts what each API answers
(native, Graph, EWS, /avatar/), names the modeled system's symptom and every cause in the
way, with the commands that fix each, in the order to apply them. It only reads; it never
changes anything. (`doctor.py` runs the org-wide checks.)

Parts: `facts` (what is read, once), `rules` (pure: facts → causes), `surfaces` (pure: the
answer of each API), `viewer` (who looks), `render`. The live directory check
(`directory/probe.py`) is handed in by the caller (`directory_check`): this package imports no
adapter.
The causes come from the one catalogue in `userphoto.findings`.

Fix commands are exact `userphoto` command lines; `FILE` stands for a photo to upload (a JPEG
or PNG, 648×648 or larger) and `URL` for a web address the administrator chooses.
"""

from __future__ import annotations

from collections.abc import Callable

from ..context import Context
from ..findings import FILE, LEVEL_ORDER, Cause, Level
from ..model import SD_MAX, ClientProfile, DirectoryThumbnail, User, Viewer
from ..resolve import Resolution, Source, resolve
from .facts import MEETING_SIZE, Facts, gather
from .render import Diagnosis, Sees, Symptom
from .rules import causes as rule_causes
from .surfaces import Answer, predict
from .viewer import not_found, viewer_of

# The live directory probe: the directory's own change time of the user's entry, compared
# with what the last sync saw (`directory.probe.live_directory_check` builds one).
DirectoryCheck = Callable[[User], Cause | None]

__all__ = [
    "FILE",
    "LEVEL_ORDER",
    "MEETING_SIZE",
    "Answer",
    "Cause",
    "Diagnosis",
    "DirectoryCheck",
    "Facts",
    "Level",
    "Sees",
    "Symptom",
    "diagnose",
]


def diagnose(
    app: Context,
    target: str,
    *,
    viewer: str | None = None,
    external: str | None = None,
    anonymous: bool = False,
    token: str | None = None,
    client: ClientProfile | str = ClientProfile.HD,
    size: int | None = None,
    directory_check: DirectoryCheck | None = None,
) -> Diagnosis:
    """Explain what `viewer` (default: a member of the organization) sees of `target`.

    `directory_check` looks up the live directory for sync lag (the CLI and the web page pass
    `directory.probe.live_directory_check(settings)`); None: no live check.
    """
    client = ClientProfile(client)
    causes: list[Cause] = []
    who, who_text = viewer_of(app, viewer, external, anonymous, token, causes)
    # Only a presented token that is refused gets a 401; a request without one is anonymous
    # (an unknown partner's users get a 401 when they send their token, and say so).
    refused = any(c.code == "token_invalid" for c in causes)

    user = app.store.find_user(target)
    if user is None:
        causes.append(not_found(app, target))
        answers = predict(None, who, client, size, refused=refused, address=target.strip())
        sees = Sees("none", None, "nothing: no such user")
        return Diagnosis(target, who_text, client, size, sees, [], causes, Symptom.OTHERS, answers)

    facts = gather(app, user, who, client, size, refused)
    res = resolve(user, who, client, size, photo_sizes=facts.photo_sizes, directory=facts.thumb)
    causes += rule_causes(facts)
    lag = directory_check(user) if directory_check else None
    if lag:
        causes.append(lag)

    answers = predict(
        user,
        who,
        client,
        size,
        photo_sizes=facts.photo_sizes,
        directory=facts.thumb,
        refused=refused,
    )
    steps = [
        {"step": e.step.value, "verdict": e.verdict.value, "reason": e.reason} for e in res.trace
    ]
    return Diagnosis(
        user.address,
        who_text,
        client,
        size,
        _sees(res, facts.thumb, who, refused),
        steps,
        causes,
        _symptom(facts, res, refused),
        answers,
    )


def _symptom(f: Facts, res: Resolution, refused: bool) -> Symptom | None:
    if refused or not res.photo:
        return Symptom.OWN_PHOTO if f.self_view else Symptom.OTHERS
    if f.wanted > SD_MAX and (res.source is not Source.HD or (res.size or 0) < f.wanted):
        return Symptom.NO_HD if res.source is not Source.URL else None
    return None


def _sees(res: Resolution, thumb: DirectoryThumbnail | None, viewer: Viewer, refused: bool) -> Sees:
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
        case Source.DEFAULT if viewer.internal:
            return Sees("default", None, "the generated initials picture (no photo)")
        case Source.DEFAULT:
            # The generated default is for members only: outsiders get the answer an
            # unknown address gets (404; /avatar/ draws its anonymous default).
            return Sees(
                "default",
                None,
                "no photo: the APIs answer 404 (as for an unknown address) and /avatar/ its "
                "anonymous default (the mp silhouette)",
            )
    return Sees("none", None, "no photo at all (the same answer as for an unknown user)")
