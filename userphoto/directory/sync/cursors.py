"""Where the next delta starts: a cursor per server, stored only after a complete read.

Three kinds, by what the server offers: an AD DirSync cookie, AD's uSNChanged, or the
modifyTimestamp of the newest entry read (anywhere else). USNs and DirSync cookies are per
domain controller, so a cursor remembers which server it came from.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

from ...store import Store
from .. import status
from ..client import ServerInfo

Cursor = dict[str, Any]  # stored as JSON: kind, server, value

# modifyTimestamp has one-second resolution and commits can land out of order: re-read a
# little before the cursor (repeats are de-duplicated by content hashes).
TIMESTAMP_OVERLAP = timedelta(seconds=2)


def load(store: Store) -> Cursor | None:
    raw = store.get_state(status.CURSOR_KEY)
    if not raw:
        return None
    cursor = json.loads(raw)
    return cursor if cursor.get("value") is not None else None


def save(store: Store, cursor: Cursor) -> None:
    """Store `cursor` unless it is empty or already stored (an idle delta writes nothing)."""
    if cursor["value"] is not None and cursor != load(store):
        store.set_state(status.CURSOR_KEY, json.dumps(cursor))


def valid_on(cursor: Cursor | None, info: ServerInfo) -> bool:
    """False after a failover to another DC: its USNs and DirSync cookies mean nothing there."""
    return not (
        cursor is not None
        and cursor.get("server") not in (None, info.server_id)
        and cursor.get("kind") in ("usn", "dirsync")
    )


def following(info: ServerInfo, dirsync_cookie: bytes | None, newest: str | None) -> Cursor:
    """The cursor after a complete read (`newest`: the newest modifyTimestamp seen)."""
    if dirsync_cookie is not None:
        return {
            "kind": "dirsync",
            "server": info.server_id,
            "value": base64.b64encode(dirsync_cookie).decode(),
        }
    if info.is_ad and info.highest_usn is not None:
        return {"kind": "usn", "server": info.server_id, "value": info.highest_usn}
    return {"kind": "modifyTimestamp", "server": info.server_id, "value": newest}


def newest_stamp(cursor: Cursor | None) -> str | None:
    """Where the newest-modifyTimestamp tally starts for a read from `cursor`."""
    return cursor.get("value") if cursor and cursor.get("kind") == "modifyTimestamp" else None


def delta_clause(cursor: Cursor) -> str:
    """The filter clause selecting what changed since `cursor` (usn or modifyTimestamp)."""
    if cursor["kind"] == "usn":
        return f"(uSNChanged>={int(cursor['value']) + 1})"
    stamp = str(cursor["value"])
    try:
        at = datetime.strptime(stamp[:14], "%Y%m%d%H%M%S") - TIMESTAMP_OVERLAP
        stamp = at.strftime("%Y%m%d%H%M%S") + "Z"
    except ValueError:
        pass  # an unexpected format: use it as the server gave it
    return f"(modifyTimestamp>={stamp})"
