"""Secrets out of text that is printed: the one redaction of URLs and connection strings.

Every message, log line or command output that shows a store URL, a DSN or another URL from
the settings goes through `redact`. It never parses strictly (a value it does not understand
must not crash a message about that very value), so it works on text, not on `urlsplit`,
which raises on multi-host URLs like `postgresql://a:5432,b:5432/db`.
"""

from __future__ import annotations

import re

HIDDEN = "********"
# Parameter names whose values are secret, in a URL query or a keyword DSN (libpq's
# password/sslpassword and the usual spellings of tokens and secrets).
_SECRET_NAME = r"[A-Za-z_\-]*(?:password|passwd|pwd|pass|secret|token|key|credential)[A-Za-z_\-]*"
_QUERY_SECRET = re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)[^&#;]*")
# host=db password='it''s secret' or password=plain: quoted values may hold spaces.
_DSN_SECRET = re.compile(rf"(?i)(\b{_SECRET_NAME}\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def redact(text: str) -> str:
    """`text` with every password in it replaced by ***: a URL's user-info password, secret
    query parameters (`?password=`, `sslpassword`, `token`...), and `password=` in a keyword
    DSN. Other text is returned as it is."""
    if not isinstance(text, str):  # a wrong-typed setting: nothing of it is shown
        return HIDDEN
    if _SCHEME.match(text):
        return _redact_url(text)
    return _DSN_SECRET.sub(lambda m: m.group(1) + HIDDEN, text)


def _redact_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    # The authority ends at the first / ? or #; a password may hold '@' (the last one ends it).
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hosts = authority.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":" + HIDDEN
    tail = _QUERY_SECRET.sub(lambda m: m.group(1) + HIDDEN, tail)
    return f"{scheme}://{userinfo}{at}{hosts}{tail}"
