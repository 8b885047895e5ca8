"""What every HTTP surface shares: the request value, the services, parameter parsing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from ..app import App
from ..auth import Authenticator, Unauthorized
from ..errors import Forbidden, InvalidArgument
from ..model import ClientProfile, Viewer, ViewerKind, parse_size
from .lookup import Lookup


@dataclass
class Services:
    """Built once per server process; handed to every surface and to the site's routes."""

    app: App
    auth: Authenticator
    lookup: Lookup
    # Credential checks a site request may need before its handler runs (a session cookie's
    # viewer): each gets the Starlette request and returns None when memory sufficed, or a
    # blocking job (store reads, hashing) that the site runs off the event loop.
    prepare: list[Callable[[Any], Callable[[], None] | None]] = field(default_factory=list)


@dataclass(slots=True)
class Req:
    method: str
    path: str
    query_string: bytes
    headers: dict[bytes, bytes]  # lower-cased names; the last value wins
    viewer: Viewer
    body: bytes = b""
    _query: dict[str, str] | None = field(default=None, repr=False)

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            try:
                text = self.query_string.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument("The query string is not valid UTF-8.") from None
            query: dict[str, str] = {}
            for name, value in parse_qsl(text, keep_blank_values=True):
                query.setdefault(name.lower(), value)
            self._query = query
        return self._query

    def parsed(self, params: tuple[tuple[str, str], ...]) -> None:
        """Parameters already parsed as `query` parses them (the server's route key, for an
        ASCII query string): a miss is spared a second parse."""
        self._query = dict(params)

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None


def client_param(req: Req) -> ClientProfile:
    raw = req.query.get("client", "hd").strip().lower()
    try:
        return ClientProfile(raw)
    except ValueError:
        valid = ", ".join(c.value for c in ClientProfile)
        raise InvalidArgument(f"unknown client {raw[:40]!r}; valid: {valid}") from None


def size_param(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise InvalidArgument(str(exc)[:300]) from None


def may_write(viewer: Viewer, user_id: str | None, self_service: bool) -> None:
    """Writes: admins any photo; members their own unless self-service is off; nobody else.

    Raises Unauthorized for anonymous callers and Forbidden otherwise. Called before the
    target is looked up, so a refusal says nothing about who exists.
    """
    if viewer.kind is ViewerKind.ANONYMOUS:
        raise Unauthorized("Changing a photo needs a bearer token.")
    if viewer.kind is ViewerKind.PARTNER:
        raise Forbidden("Federated viewers cannot change photos.")
    if viewer.admin:
        return
    if user_id is None or viewer.user_id != user_id:
        raise Forbidden("Members may change only their own photo.")
    if not self_service:
        raise Forbidden(
            "Self-service photo changes are disabled by policy ([policy] self_service = "
            "false); ask an administrator."
        )
