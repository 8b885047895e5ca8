"""Helpers of the directory sync tests (OpenLDAP, Samba, syncrepl, diagnose, orphans, README):
a data folder's `[directory]` table, an App and a sync engine on it, the slapd seed's
addresses, and waiting for `sync --watch`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import ldap3

from tests.support.slapd import Slapd, uid, user_dn
from userphoto.app import App
from userphoto.config import Settings
from userphoto.directory import status
from userphoto.directory.sync import SyncEngine


def write_config(home: Path, table: dict[str, object]) -> None:
    """Write `home`'s userphoto.toml with this `[directory]` table (and nothing else)."""
    lines = ["[directory]"]
    for key, value in table.items():
        if isinstance(value, dict):  # an inline table
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    (home / "userphoto.toml").write_text("\n".join(lines) + "\n")


def make_app(home: Path, server: Slapd, **extra: object) -> App:
    write_config(home, server.directory_settings(**extra))
    return App(Settings.load(home))


def engine_for(app: App, **hooks: object) -> SyncEngine:
    assert app.directory is not None
    return SyncEngine(app.store, app.directory, **hooks)  # type: ignore[arg-type]


def address(i: int) -> str:
    """The mail address of the slapd seed's user number i."""
    return f"{uid(i)}@example.org"


def set_photo_in_ldap(server: Slapd, i: int, data: bytes | None) -> None:
    conn = server.connection()
    conn.modify(user_dn(i), {"thumbnailPhoto": [(ldap3.MODIFY_REPLACE, [data] if data else [])]})
    conn.unbind()


def wait_for_watch(app: App, timeout: float = 30) -> dict[str, object]:
    """The watch's status once it follows the directory (syncrepl: its refresh is done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        watch = status.load(app.store).get("watch") or {}
        if watch.get("state") == "running" and (
            watch.get("mode") == "polling" or watch.get("refresh")
        ):
            return watch
        time.sleep(0.05)
    raise AssertionError(f"the watch did not get ready: {status.load(app.store).get('watch')}")
