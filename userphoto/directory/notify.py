"""AD change notification: the server pushes a message for every change under base_dn.

`sync --watch` polls every `watch_interval` seconds everywhere; on Active Directory (and
Samba) it also holds one LDAP_SERVER_NOTIFICATION search open, and each pushed change wakes
the loop at once, so a change arrives in tens of milliseconds instead of up to one interval.
Polling stays as the safety net (a notification connection can drop silently).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import ldap3

from .client import DirectoryClient
from .config import DirectoryConfig

log = logging.getLogger(__name__)

NOTIFICATION_OID = "1.2.840.113556.1.4.528"  # LDAP_SERVER_NOTIFICATION_OID


class ChangeNotifier:
    def __init__(self, config: DirectoryConfig, uri: str, wake: threading.Event):
        self.config = config
        self.uri = uri
        self.wake = wake
        self._conn: ldap3.Connection | None = None
        self._search: Any = None

    @property
    def alive(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def start(self) -> bool:
        """Open the notification search; False (and polling only) if the server says no."""
        self.stop()
        client = DirectoryClient(self.config)
        try:
            conn = ldap3.Connection(
                client.server(self.uri),
                user=self.config.bind_dn,
                password=self.config.bind_password,
                client_strategy=ldap3.ASYNC_STREAM,
                raise_exceptions=False,
            )
            conn.open()
            if self.config.starttls and not self.uri.lower().startswith("ldaps://"):
                conn.start_tls()
            if not conn.bind():
                log.warning("change notification: bind refused; polling only")
                return False
            self._search = conn.extend.standard.persistent_search(
                self.config.base_dn,
                "(objectClass=*)",  # the notification control allows no other filter
                attributes=["objectGUID"],
                controls=[(NOTIFICATION_OID, True, None)],
                changes_only=False,  # no Persistent Search control: AD's own instead
                callback=self._changed,
            )
            self._conn = conn
            return True
        except Exception as exc:  # the server may not offer it: polling carries on
            log.warning("change notification unavailable (%s); polling only", exc)
            return False

    def _changed(self, _item: object) -> None:
        self.wake.set()

    def stop(self) -> None:
        if self._search is not None:
            with contextlib.suppress(Exception):  # the connection is already gone
                self._search.stop()
        self._search = None
        self._conn = None
