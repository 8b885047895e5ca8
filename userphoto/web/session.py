"""Browser sessions: one encrypted, signed cookie, and a CSRF synchronizer token inside it.

- The cookie is Fernet (AES-128-CBC + HMAC-SHA256, with a timestamp) over a small JSON
  session, keyed by `web-session.key` in the data folder: generated on first use (mode 0600),
  never logged. Deleting the file signs everybody out.
- Flags: HttpOnly, SameSite=Lax, Path=/, Max-Age 12 h; Secure whenever the request came over
  https (or `[web] secure_cookies = true` behind a TLS-terminating proxy).
- Every visitor gets a session, signed in or not, so even the sign-in form carries a CSRF
  token (no login CSRF). Signing in or out issues a brand-new session (no fixation).
- CSRF: each write must carry the session's token, as the `csrf` form field or the
  `X-CSRF-Token` header, compared in constant time; a present `Origin` must be this host.
  Anything else is refused with 403.
- How a session names its viewer is a *method* (see `IDENTIFY`): `token` (a member/admin
  bearer token, checked again by `Authenticator` on every request, so revoking the token ends
  the session) or `oidc` (the person the identity provider vouched for at sign-in, looked up
  again on every request; the id_token is kept only as the hint for signing out there).
- Between the redirect to the identity provider and its callback, `pending` holds the
  sign-in's state, nonce and PKCE verifier (`oidc.Pending`), never visible to the page.
- Naming the viewer may read the store (a token's first check, every OIDC session): that
  never happens on the event loop. `prepare` (registered in `Services.prepare`, run by the
  site before any handler) answers from memory when it can and otherwise hands the site a
  job that it runs in a thread; `viewer` then finds the result in the request's state.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from starlette.requests import Request
from starlette.responses import Response

from ..api.common import Services
from ..errors import Forbidden, UserPhotoError
from ..model import ANONYMOUS, Viewer
from ..oidc import viewer_of_session

COOKIE = "userphoto_session"
MAX_AGE = 12 * 3600
KEY_FILE = "web-session.key"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    csrf: str
    method: str = ""  # "" signed out; "token" or "oidc"
    credential: str = ""  # what the method needs to name the viewer again
    pending: str = ""  # an OIDC sign-in under way (oidc.Pending as JSON)
    flash: str = ""  # one message for the next page ("Saved.")
    flash_kind: str = ""  # "ok" | "error"

    @property
    def signed_in(self) -> bool:
        return bool(self.method)


def fresh(method: str = "", credential: str = "") -> Session:
    return Session(csrf=secrets.token_urlsafe(32), method=method, credential=credential)


# Sign-in methods: how a session's credential becomes a viewer (raises on a bad one).
Identify = Callable[[Services, str], Viewer]
IDENTIFY: dict[str, Identify] = {
    "token": lambda services, token: services.auth.from_token(token),
    "oidc": lambda services, credential: viewer_of_session(credential, services.app.store),
}


def load_key(home: Path) -> bytes:
    """The data folder's session key, created (0600, exclusive) on first use."""
    path = home / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker won the race
        return path.read_bytes().strip()
    except OSError:  # a read-only data folder: serve anyway; sign-ins last until a restart
        return key
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class Sessions:
    """Reads and writes the session cookie; checks CSRF; names the session's viewer."""

    def __init__(self, services: Services):
        self.services = services
        settings = services.app.settings
        self._fernet = Fernet(load_key(settings.home))
        self._force_secure: bool = bool(settings.get("web", "secure_cookies", False))
        services.prepare.append(self.prepare)

    # --- cookie ----------------------------------------------------------------------------
    def load(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = json.loads(self._fernet.decrypt(raw.encode("ascii"), ttl=MAX_AGE))
            return Session(**{k: str(v) for k, v in data.items() if k in _FIELDS})
        except (InvalidToken, ValueError, TypeError, UnicodeEncodeError):
            return None

    def current(self, request: Request) -> Session:
        """The request's session, or a new signed-out one (remembered for `store`)."""
        session = getattr(request.state, "session", None)
        if session is None:
            session = self.load(request) or fresh()
            request.state.session = session
        return session

    def store(self, response: Response, request: Request, session: Session) -> None:
        token = self._fernet.encrypt(json.dumps(asdict(session)).encode()).decode("ascii")
        response.set_cookie(
            COOKIE,
            token,
            max_age=MAX_AGE,
            path="/",
            secure=self._force_secure or request.url.scheme == "https",
            httponly=True,
            samesite="lax",
        )

    def flash(self, request: Request, message: str, kind: str = "ok") -> Session:
        session = replace(self.current(request), flash=message, flash_kind=kind)
        request.state.session = session
        return session

    # --- identity ----------------------------------------------------------------------------
    def prepare(self, request: Request) -> Callable[[], None] | None:
        """Before the handler, on the event loop: name the session's viewer from memory, or
        return the blocking job that names it (the site runs it in a thread)."""
        if request.cookies.get(COOKIE) is None:
            return None
        session = self.current(request)
        if session.method == "token":
            try:
                known = self.services.auth.peek("Bearer " + session.credential)
            except UserPhotoError:
                known = ANONYMOUS  # refused from memory: the session no longer signs in
            if known is not None:
                request.state.prepared = (session, known)
                return None
        elif session.method not in IDENTIFY:
            return None
        return lambda: self._prepare_slowly(request, session)

    def _prepare_slowly(self, request: Request, session: Session) -> None:
        request.state.prepared = (session, self._identify(session))

    def viewer(self, request: Request) -> Viewer:
        """The signed-in viewer, or anonymous (also when the credential stopped working)."""
        cached = getattr(request.state, "viewer", None)
        if cached is not None:
            return cached
        session = self.current(request)
        prepared = getattr(request.state, "prepared", None)
        if prepared is not None and prepared[0] is session:  # named off the event loop
            viewer = prepared[1]
        else:  # a session the handler replaced (sign-in, sign-out): from memory, or fresh
            viewer = self._identify(session)
        request.state.viewer = viewer
        return viewer

    def _identify(self, session: Session) -> Viewer:
        identify = IDENTIFY.get(session.method)
        if identify is None:
            return ANONYMOUS
        try:
            return identify(self.services, session.credential)
        except UserPhotoError:
            return ANONYMOUS

    # --- CSRF --------------------------------------------------------------------------------
    def check_csrf(self, request: Request, form: dict[str, str] | None = None) -> None:
        """Refuse (403) a write whose token is missing or wrong, or that came from elsewhere."""
        origin = request.headers.get("origin")
        if origin and origin != "null":
            host = urlsplit(origin).netloc
            if host != request.headers.get("host", ""):
                raise Forbidden("This request came from another site.", code="csrf")
        session = self.load(request)
        sent = request.headers.get(CSRF_HEADER) or (form or {}).get(CSRF_FIELD, "")
        if session is None or not sent or not hmac.compare_digest(sent, session.csrf):
            raise Forbidden(
                "The form expired or did not come from this site; reload the page and try again.",
                code="csrf",
            )
        request.state.session = session


_FIELDS = set(Session.__dataclass_fields__)
