"""Browser sessions: one encrypted, signed cookie, and a CSRF synchronizer token inside it.

- The cookie is Fernet (AES-128-CBC + HMAC-SHA256, with a timestamp) over a small JSON
  session, sealed with the store's session keys (`SessionKeys`), so every node that shares
  the database opens every node's cookies. The newest key seals; a key rotates after
  `[web] session_lifetime` and opens cookies for one lifetime more, then is dropped. An old
  `web-session.key` file (before keys moved to the store) is adopted once, open-only.
- A signed-in session is also a row in the store (`sid`): sign-out deletes it, revoking its
  token deletes it (foreign key), a user who left the directory no longer has it, and it
  ends after `[web] session_idle` unused or `session_lifetime` in all. Each process trusts
  its last look at a session for `[web] session_recheck` seconds, so a check is not one SQL
  per request, and records use at most once a minute.
- Flags: HttpOnly, SameSite=Lax, Path=/, Max-Age the session lifetime; Secure whenever the
  request came over https (or `[web] secure_cookies = true` behind a TLS-terminating proxy).
- Every visitor gets a session, signed in or not, so even the sign-in form carries a CSRF
  token (no login CSRF). Signing in or out issues a brand-new session (no fixation).
- CSRF: each write must carry the session's token, as the `csrf` form field or the
  `X-CSRF-Token` header, compared in constant time; a present `Origin` must be this site:
  `[server] public_url` or the address the request was made to (`same_site`). Anything else
  is refused with 403.
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
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from starlette.requests import Request
from starlette.responses import Response

from ..api.common import Services
from ..errors import Forbidden, StoreReadOnly, UserPhotoError
from ..model import ANONYMOUS, Viewer
from ..oidc import viewer_of_session
from ..store import Store, WebSession

COOKIE = "userphoto_session"
KEY_FILE = "web-session.key"  # where keys lived before the store kept them (adopted once)
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
TOUCH_EVERY = 60.0  # seconds between writes of a session's last use
DEFAULT_PORTS = {"http": 80, "https": 443}
KEYS_RECHECK = 5.0  # seconds between key-set reads on a cookie no known key opens


@dataclass(frozen=True)
class Session:
    csrf: str
    method: str = ""  # "" signed out; "token" or "oidc"
    credential: str = ""  # what the method needs to name the viewer again
    sid: str = ""  # the store's record of this sign-in (`WebSession.id`)
    pending: str = ""  # an OIDC sign-in under way (oidc.Pending as JSON)
    flash: str = ""  # one message for the next page ("Saved.")
    flash_kind: str = ""  # "ok" | "error"

    @property
    def signed_in(self) -> bool:
        return bool(self.method)


def fresh(method: str = "", credential: str = "", sid: str = "") -> Session:
    return Session(csrf=secrets.token_urlsafe(32), method=method, credential=credential, sid=sid)


# Sign-in methods: how a session's credential becomes a viewer (raises on a bad one).
Identify = Callable[[Services, str], Viewer]
IDENTIFY: dict[str, Identify] = {
    "token": lambda services, token: services.auth.from_token(token),
    "oidc": lambda services, credential: viewer_of_session(credential, services.app.store),
}


class SessionKeys:
    """The store's session keys as one `MultiFernet`: the newest seals, the others open."""

    def __init__(self, store: Store, lifetime: float, home: Path):
        self.store = store
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._adopt(home)
        self.refresh()

    def _adopt(self, home: Path) -> None:
        """Before keys were in the store each node had `web-session.key`: the first node to
        start with an empty key table brings its file's key along, open-only, for one
        lifetime, so the cookies it issued keep working over the upgrade."""
        try:
            old = (home / KEY_FILE).read_bytes().strip()
            Fernet(old)
        except (OSError, ValueError):
            return
        if not self.store.session_keys():
            self.store.add_session_key("adopted", old.decode("ascii"), time.time() - self.lifetime)

    def refresh(self) -> None:
        """Read the keys; add a new sealing key when the newest is a lifetime old."""
        with self._lock:
            now = time.time()
            keys = self.store.session_keys()
            if not keys or now - keys[0][2] >= self.lifetime:
                key = Fernet.generate_key().decode("ascii")
                try:
                    self.store.add_session_key(secrets.token_hex(8), key, now)
                    self.store.drop_session_keys(now - 2 * self.lifetime)
                    keys = self.store.session_keys()
                except StoreReadOnly:
                    # A read-only data folder still serves; sign-in (which records a
                    # session) is refused there anyway, so a key of this process's own
                    # is enough until the store can be written again.
                    keys = [("process", key, now), *keys]
            # A key opens what it sealed during its lifetime, for up to one lifetime more.
            usable = [k for k in keys if now - k[2] < 2 * self.lifetime]
            self._fernet = MultiFernet([Fernet(k[1].encode()) for k in usable])
            self._newest = keys[0][2]
            self._read = time.monotonic()

    @property
    def due(self) -> bool:
        """The sealing key is a lifetime old: time to read the keys (and perhaps rotate)."""
        return time.time() - self._newest >= self.lifetime

    @property
    def may_refresh(self) -> bool:
        """A cookie no key opens may be from a node that rotated: read again, but rarely."""
        return time.monotonic() - self._read >= KEYS_RECHECK

    def seal(self, data: bytes) -> str:
        return self._fernet.encrypt(data).decode("ascii")

    def open(self, token: str) -> bytes:
        return self._fernet.decrypt(token.encode("ascii"), ttl=int(self.lifetime))


class Sessions:
    """Reads and writes the session cookie; checks CSRF; names the session's viewer."""

    def __init__(self, services: Services):
        self.services = services
        settings = services.app.settings
        self.public_url = settings.public_url  # checked here, at start: a bad one stops us
        self.lifetime = float(settings.get("web", "session_lifetime"))
        self.idle = float(settings.get("web", "session_idle"))
        self.recheck = float(settings.get("web", "session_recheck"))
        self.keys = SessionKeys(services.app.store, self.lifetime, settings.home)
        self._force_secure: bool = bool(settings.get("web", "secure_cookies", False))
        # sid -> (monotonic time of the look, alive then): the last look at each session.
        self._looked: dict[str, tuple[float, bool]] = {}
        services.prepare.append(self.prepare)

    @property
    def _store(self) -> Store:
        return self.services.app.store

    # --- the store's record of a sign-in ---------------------------------------------------
    def begin(self, viewer: Viewer, method: str, credential: str) -> Session:
        """A brand-new signed-in session, recorded in the store (blocking: off the loop)."""
        now = time.time()
        token_id = self.services.auth.token_id(credential) if method == "token" else None
        record = WebSession(
            secrets.token_urlsafe(24),
            viewer.address or "",
            viewer.user_id,
            token_id,
            now,
            now,
            now + self.lifetime,
        )
        self._store.start_session(record)
        self._remember(record.id, True)
        return fresh(method, credential, record.id)

    def end(self, session: Session) -> None:
        """End a sign-in on every node (blocking: off the loop)."""
        if session.sid:
            self._store.end_session(session.sid)
            self._remember(session.sid, False)

    def _remember(self, sid: str, alive: bool) -> None:
        looked = self._looked
        if len(looked) >= 50_000:  # bounded: the oldest look goes
            del looked[next(iter(looked))]
        looked[sid] = (time.monotonic(), alive)

    def _alive_in_memory(self, sid: str) -> bool | None:
        hit = self._looked.get(sid)
        if hit is not None and time.monotonic() - hit[0] < self.recheck:
            return hit[1]
        return None

    def _alive(self, sid: str) -> bool:
        """Look at the session in the store (and record its use, at most once a minute)."""
        record = self._store.get_session(sid)
        now = time.time()
        alive = record is not None and now - record.seen < self.idle
        if alive and record is not None and now - record.seen >= TOUCH_EVERY:
            self._store.touch_session(sid, now)
        self._remember(sid, alive)
        return alive

    # --- cookie ----------------------------------------------------------------------------
    def load(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = json.loads(self.keys.open(raw))
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
        token = self.keys.seal(json.dumps(asdict(session)).encode())
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(self.lifetime),
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
        raw = request.cookies.get(COOKIE)
        if raw is None:
            return None
        session = self.load(request)
        if self.keys.due or (session is None and self.keys.may_refresh):
            return lambda: self._prepare_slowly(request, read_keys=True)
        if session is None:
            return None
        request.state.session = session
        if not session.signed_in:
            return None
        if not session.sid or not self._alive_in_memory(session.sid):
            return lambda: self._prepare_slowly(request)
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
        return lambda: self._prepare_slowly(request)

    def _prepare_slowly(self, request: Request, read_keys: bool = False) -> None:
        if read_keys:
            self.keys.refresh()
            request.state.session = None
        session = self.current(request)
        if session.signed_in:
            if not session.sid:
                session = self._upgrade(session)
            elif not self._alive(session.sid):
                session = fresh()  # ended here or on another node: signed out
            request.state.session = session
        request.state.prepared = (session, self._identify(session))

    def _upgrade(self, session: Session) -> Session:
        """A signed-in cookie from before sessions were in the store (sealed with an adopted
        key): recorded now, so from here on it ends like any other."""
        viewer = self._identify(session)
        if viewer is ANONYMOUS:
            return fresh()
        return replace(self.begin(viewer, session.method, session.credential), csrf=session.csrf)

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
    def same_site(self, origin: str, request: Request) -> bool:
        """Whether a browser's `Origin` is this site: `[server] public_url` (the address
        browsers use behind a proxy, whatever port it has) or the address the request itself
        was made to (scheme and host as `[server] trusted_proxies` forwarded them), so a node
        reached directly works too. Scheme, host and port must all match."""
        sent = origin_of(origin)
        if sent is None:
            return False
        if self.public_url and sent == origin_of(self.public_url):
            return True
        url = request.url
        return sent == origin_of(f"{url.scheme}://{url.netloc}")

    def check_csrf(self, request: Request, form: dict[str, str] | None = None) -> None:
        """Refuse (403) a write whose token is missing or wrong, or that came from elsewhere."""
        origin = request.headers.get("origin")
        if origin and origin != "null" and not self.same_site(origin, request):
            raise Forbidden("This request came from another site.", code="csrf")
        session = self.load(request)
        sent = request.headers.get(CSRF_HEADER) or (form or {}).get(CSRF_FIELD, "")
        if session is None or not sent or not hmac.compare_digest(sent, session.csrf):
            raise Forbidden(
                "The form expired or did not come from this site; reload the page and try again.",
                code="csrf",
            )
        request.state.session = session


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL or `Origin`, the port filled in when it is the
    scheme's default (a browser leaves 443 out of `Origin`); None when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


_FIELDS = set(Session.__dataclass_fields__)
