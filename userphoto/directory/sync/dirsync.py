"""Active Directory's DirSync control: what changed (and what was deleted) since a cookie.

Only the changed objects come back (deleted ones too, flagged); each is then read in full
through the user filter, so every mode applies entries the same way.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

from ..client import DirectoryClient, DirectoryRefused, Entry
from ..config import DirectoryConfig
from ..entry import Flavour, directory_id
from ..status import SyncReport

# DirSync looks at every user object (deleted ones lose objectCategory but keep objectClass);
# the configured user_filter is applied when each changed object is read.
DIRSYNC_FILTER = "(objectClass=user)"
CHANGE_STAMPS = ("modifyTimestamp", "whenChanged", "uSNChanged")


@dataclass
class Changes:
    changed: list[str]  # directory ids (GUIDs) to read in full
    deleted: list[str]  # directory ids reported deleted
    cookie: bytes | None  # the cookie after these changes


def start(client: DirectoryClient, flavour: Flavour, mail: str, report: SyncReport) -> bytes | None:
    """A DirSync cookie for "now", or None (then uSNChanged) if this account may not use
    DirSync (it needs the "Replicating Directory Changes" right)."""
    try:
        # Only the cookie matters here; a cheap attribute keeps the answer small.
        _entries, cookie = client.dirsync(DIRSYNC_FILTER, [flavour.id_attribute, mail], None)
    except DirectoryRefused as exc:
        report.problem(f"DirSync refused ({exc}); using uSNChanged for deltas instead")
        return None
    return cookie


def changes(
    client: DirectoryClient, config: DirectoryConfig, flavour: Flavour, cookie: str
) -> Changes:
    """What changed since `cookie` (base64, as stored in the cursor)."""
    # DirSync returns an object only when one of the requested attributes changed: ask for
    # the ones we use (not the change stamps, which move with anything).
    watched = [a for a in flavour.attributes(config) if a not in CHANGE_STAMPS]
    found, new_cookie = client.dirsync(
        DIRSYNC_FILTER, [*watched, "isDeleted"], base64.b64decode(cookie)
    )
    out = Changes([], [], new_cookie)
    for _dn, attrs in found:
        did = directory_id(attrs, flavour.id_attribute)
        if did is None:
            continue
        if (attrs.get("isdeleted") or [b""])[0].upper() == b"TRUE":
            out.deleted.append(did)
        else:
            out.changed.append(did)
    return out


def by_guid(
    client: DirectoryClient, config: DirectoryConfig, flavour: Flavour, guids: list[str]
) -> Iterator[list[Entry]]:
    """Full entries for changed objects, through the user filter (computers drop out)."""
    page: list[Entry] = []
    attributes = flavour.attributes(config)
    for guid in guids:
        for found in client.search(flavour.user_filter, attributes, base=f"<GUID={guid}>"):
            page.extend(found)
        if len(page) >= config.page_size:
            yield page
            page = []
    if page:
        yield page
