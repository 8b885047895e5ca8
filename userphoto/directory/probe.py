"""The live probe: ask the directory whether an entry changed after the last sync saw it.

The troubleshooter (`diagnose`) imports no directory code: the CLI and the web page build this
check from the settings and hand it in (`diagnose(..., directory_check=...)`)."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..config import Settings
from ..findings import Cause, cause
from ..model import User

_TIME = re.compile(r"^(\d{14})")

DirectoryCheck = Callable[[User], Cause | None]


def live_directory_check(settings: Settings) -> DirectoryCheck | None:
    """Compare the directory's own change time of the entry with what the last sync saw
    (None when no directory is configured)."""
    try:
        from .client import DirectoryClient
        from .config import DirectoryConfig
    except ImportError:
        return None
    try:
        config = DirectoryConfig.from_settings(settings)
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
            return cause("directory_unreachable", address=user.address, detail=exc)
        if not attrs:
            return None
        raw = attrs.get("modifytimestamp") or attrs.get("whenchanged") or []
        live = _TIME.match(raw[0].decode() if raw else "")
        seen = _TIME.match(user.attributes.get("directory_changed", ""))
        if live and (not seen or live[1] > seen[1]):
            return cause(
                "sync_lag",
                address=user.address,
                live=_fmt(live[1]),
                seen=_fmt(seen[1]) if seen else "never",
            )
        return None

    return check


def _fmt(stamp: str) -> str:
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[8:10]}:{stamp[10:12]}:{stamp[12:14]}"
