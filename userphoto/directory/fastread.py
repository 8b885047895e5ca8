"""A full read's paged search through libldap (python-ldap): the reader process's fast path.

Decoding BER in Python (ldap3) costs more CPU per entry than anything sync does with the
entry; libldap decodes in C. This path is only the happy one: `DirectoryClient` (ldap3)
stays the one place for failover, retry with backoff and error wording, and the reader falls
back to it on any error here (see `sync.pages.read_pages`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import ldap
import ldap.ldapobject
from ldap.controls import SimplePagedResultsControl

from .client import Entry
from .config import DirectoryConfig
from .syncrepl import configure, describe


def paged_search(
    config: DirectoryConfig, search_filter: str, attributes: list[str]
) -> Iterator[list[Entry]]:
    """Pages of (dn, lower-cased attributes) under base_dn; raises ldap.LDAPError."""
    conn = _connect(config)
    try:
        control = SimplePagedResultsControl(True, size=config.page_size, cookie=b"")
        while True:
            msgid = conn.search_ext(
                config.base_dn,
                ldap.SCOPE_SUBTREE,
                search_filter,
                attributes,
                serverctrls=[control],
            )
            _type, found, _msgid, controls = conn.result3(msgid)
            yield [
                (dn, {k.lower(): v for k, v in attrs.items()})
                for dn, attrs in found
                if dn is not None  # search references (AD) carry no entry
            ]
            cookie = next((c.cookie for c in controls if c.controlType == control.controlType), b"")
            if not cookie:
                return
            control.cookie = cookie
    finally:
        with contextlib.suppress(ldap.LDAPError):
            conn.unbind_s()


def _connect(config: DirectoryConfig) -> ldap.ldapobject.SimpleLDAPObject:
    errors: list[str] = []
    for uri in config.uris:
        conn = ldap.ldapobject.SimpleLDAPObject(uri)
        try:
            configure(conn, config, uri)
            conn.simple_bind_s(config.bind_dn or "", config.bind_password or "")
            return conn
        except ldap.LDAPError as exc:
            errors.append(f"{uri}: {describe(exc)}")
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()
    raise ldap.SERVER_DOWN("; ".join(errors))
