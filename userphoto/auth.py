"""Who is asking: bearer tokens for members and admins, JWTs for federation partners.

- Member/admin tokens are random strings (`upt_…`); the store keeps only their SHA-256, so a
  leaked database reveals no usable token. `userphoto token create ADDRESS [--admin]
  [--expires 90d]`: a token expires (`[server] token_days` by default) and is then refused
  with 401 saying so. Its last use is recorded at most once a minute per process, by a
  background thread (never a write on the request's path).
- A partner organization is registered with `userphoto partner add DOMAIN` (a shared secret,
  HS256) or `--public-key FILE` (RS256/ES256). Its users present a JWT with `iss` = the
  partner domain, `sub` = their address (in that domain), `aud` = one of our domains and
  `exp`; they are external viewers. Partner secrets must be kept to verify signatures.
- An access token (a JWT) from the organization's OpenID provider (`[oidc]`), issued for
  `[oidc] api_audience`, names a member (or an admin, by the admin group/role claim): the same
  person the web sign-in would find (`oidc.py`). Clients that already hold one need no token
  of ours. It is told apart from a partner JWT by its `iss`.
- No credentials: the anonymous viewer, who sees only what visibility 'everyone' allows.

`Authenticator.from_header` is what every HTTP adapter calls (photo routes, admin API, web
pages); it answers from memory (token digests, verified JWTs) and is refreshed by `reload()`
whenever the store's change feed reports a credential change. Tokens and secrets are
never logged or put in errors.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .errors import InvalidArgument, UserPhotoError
from .model import (
    ANONYMOUS,
    ApiToken,
    Partner,
    Viewer,
    ViewerKind,
    is_address,
    normalize_address,
)
from .store import Store

if TYPE_CHECKING:
    from .oidc import OidcProvider

log = logging.getLogger(__name__)

TOKEN_PREFIX = "upt_"
USE_EVERY = 60.0  # seconds between writes of one token's last use (per process)
_CACHE_LIMIT = 20_000  # distinct credentials remembered between reloads
_CACHE_KEY_MAX = 4096  # longer credentials are verified every time, never remembered


class Unauthorized(UserPhotoError):
    """Credentials were given but are not valid (or are required and missing)."""

    code = "unauthorized"
    status = 401


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    store: Store, address: str, *, admin: bool = False, lifetime: timedelta | None = None
) -> tuple[ApiToken, str]:
    """A new token for ADDRESS, valid for `lifetime` (None: forever); returns the record and
    the token (shown once, never stored)."""
    address = normalize_address(address)
    if not is_address(address):
        raise InvalidArgument(f"{address!r} is not an address like name@example.org.")
    if not admin and store.find_user(address) is None:
        raise InvalidArgument(
            f"No user {address}: member tokens belong to users (`userphoto user add` first); "
            "admin tokens (--admin) may belong to any address."
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    created = datetime.now(UTC).replace(microsecond=0)
    record = ApiToken(
        id=secrets.token_hex(4),
        digest=token_digest(token),
        address=address,
        admin=admin,
        created=created,
        expires=created + lifetime if lifetime is not None else None,
    )
    store.add_token(record)
    return record, token


def partner_key(pem: bytes) -> tuple[str, str]:
    """(algorithm, PEM text) of a partner's public key: RSA → RS256, EC P-256 → ES256."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"Not a PEM public key: {exc}") from None
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256", pem.decode()
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", pem.decode()
    raise InvalidArgument("Only RSA (RS256) and EC P-256 (ES256) public keys are supported.")


def add_partner(
    store: Store, domain: str, public_key: bytes | None = None
) -> tuple[Partner, str | None]:
    """Register a partner; returns it and the new shared secret (None with a public key)."""
    domain = domain.strip().lower().rstrip(".")
    if not domain or "." not in domain or any(c in domain for c in "@/ :"):
        raise InvalidArgument(f"{domain!r} is not a domain like partner.example.")
    secret: str | None = None
    if public_key is not None:
        algorithm, key = partner_key(public_key)
    else:
        algorithm, key = "HS256", secrets.token_urlsafe(48)
        secret = key
    partner = Partner(domain, algorithm, key, datetime.now(UTC))
    store.put_partner(partner)
    return partner, secret


@dataclass
class _Loaded:
    tokens: dict[str, ApiToken]  # digest -> token record
    partners: dict[str, tuple[Partner, Any]]  # domain -> (partner, verification key)
    domains: list[str]


class Authenticator:
    """Resolves credentials to a `Viewer` from memory; `reload()` re-reads the store."""

    def __init__(
        self,
        store: Store,
        extra_domains: tuple[str, ...] = (),
        oidc: OidcProvider | None = None,
    ):
        self.store = store
        self.extra_domains = extra_domains
        self.oidc = oidc
        self._loaded = _Loaded({}, {}, [])
        # Normalized credential -> (viewer, valid-until, token id or ""); dropped on reload.
        self._seen: dict[str, tuple[Viewer, float, str]] = {}
        # Token id -> monotonic time its use was last noted; ids waiting to be written.
        self._noted: dict[str, float] = {}
        self._unwritten: dict[str, datetime] = {}
        self._wake = threading.Event()  # the one writer of last uses waits on it
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        partners: dict[str, tuple[Partner, Any]] = {}
        for p in self.store.list_partners():
            key: Any = p.key if p.algorithm == "HS256" else load_pem_public_key(p.key.encode())
            partners[p.domain] = (p, key)
        domains = sorted(self.store.domains() | set(self.extra_domains))
        self._loaded = _Loaded({t.digest: t for t in self.store.list_tokens()}, partners, domains)
        self._seen = {}

    # --- entry points ----------------------------------------------------------------------
    def from_header(self, header: bytes | str | None) -> Viewer:
        """The viewer for an `Authorization` header value; anonymous when absent.

        Raises Unauthorized for anything present but not valid (never falls back to
        anonymous, so a typo in a token is reported rather than silently downgraded).
        Verified credentials are remembered by their normalized value (the token alone,
        without scheme or padding), so padded copies of one token share one entry.
        """
        if not header:
            return ANONYMOUS
        credential = _credential(header)
        if (remembered := self._remembered(credential)) is not None:
            return remembered
        viewer, until = self._verify(credential)
        token_id = ""
        if credential.count(".") != 2 and (token_id := self.token_id(credential) or ""):
            self._note_use(token_id)
        if len(credential) <= _CACHE_KEY_MAX:
            seen = self._seen
            while len(seen) >= _CACHE_LIMIT:  # the oldest entry goes; never a wipe
                del seen[next(iter(seen))]
            seen[credential] = (viewer, until, token_id)
        return viewer

    def peek(self, header: bytes | str | None) -> Viewer | None:
        """From memory alone: the viewer, or None when verifying needs the store (a known
        token seen for the first time) or a signature check (a JWT) — then call
        `from_header` off the event loop. Raises Unauthorized when memory already shows the
        credential is not valid (so a flood of junk tokens costs one hash each)."""
        if not header:
            return ANONYMOUS
        credential = _credential(header)
        if (remembered := self._remembered(credential)) is not None:
            return remembered
        if credential.count(".") == 2:
            return None
        self._record(credential)  # raises for an unknown, revoked or expired token
        return None

    def _remembered(self, credential: str) -> Viewer | None:
        """The viewer a credential was verified as, while that still holds."""
        hit = self._seen.get(credential)
        if hit is not None and (hit[1] == _FOREVER or hit[1] > time.time()):
            if hit[2]:
                self._note_use(hit[2])
            return hit[0]
        return None

    def token_id(self, token: str) -> str | None:
        """The id of a member/admin token we hold (None for anything else)."""
        record = self._loaded.tokens.get(token_digest(token))
        return record.id if record is not None else None

    def _note_use(self, token_id: str) -> None:
        """Remember that a token was used; written by one thread, at most once a minute."""
        now = time.monotonic()
        if now - self._noted.get(token_id, -USE_EVERY) < USE_EVERY:
            return
        self._noted[token_id] = now
        self._unwritten[token_id] = datetime.now(UTC)
        with self._writer_lock:
            if self._writer is None:
                writer = threading.Thread(target=self._write_uses, name="token-use", daemon=True)
                try:
                    writer.start()
                except RuntimeError as exc:  # no thread to be had (a tight memory limit)
                    log.warning("cannot record tokens' last use: %s", exc)
                    self._unwritten.clear()
                    return
                self._writer = writer
        self._wake.set()

    def _write_uses(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._unwritten:
                token_id, at = self._unwritten.popitem()
                try:
                    self.store.touch_token(token_id, at)
                except Exception as exc:  # bookkeeping only: never fail a request for it
                    log.warning("could not record token %s's last use: %s", token_id, exc)

    def forget_user(self, user_id: str) -> None:
        """A change to one user: drop only the remembered credentials of that user."""
        seen = self._seen
        for key in [k for k, (viewer, _u, _t) in list(seen.items()) if viewer.user_id == user_id]:
            seen.pop(key, None)

    def knows_domains(self, user: Any) -> bool:
        """Whether every mail domain of `user` is already a JWT audience."""
        domains = self._loaded.domains
        return all(a.rpartition("@")[2] in domains for a in user.addresses)

    def from_token(self, token: str) -> Viewer:
        """The viewer for a bare token (e.g. from a session cookie)."""
        return self.from_header(b"Bearer " + token.encode("latin-1", "replace"))

    # --- verification ----------------------------------------------------------------------
    def _verify(self, token: str) -> tuple[Viewer, float]:
        if token.count(".") == 2:
            if self.oidc is not None and self.oidc.issued(token):
                return self._provider(token)
            return self._partner(token)
        record = self._record(token)
        until = record.expires.timestamp() if record.expires is not None else _FOREVER
        if record.admin:
            user = self.store.find_user(record.address)
            return Viewer(ViewerKind.ADMIN, record.address, user.id if user else None), until
        user = self.store.find_user(record.address)
        if user is None:
            raise Unauthorized("The bearer token's user no longer exists.")
        return Viewer(ViewerKind.MEMBER, record.address, user.id), until

    def _record(self, token: str) -> ApiToken:
        """The stored record of a member/admin token that is valid now, else Unauthorized."""
        digest = token_digest(token)
        record = self._loaded.tokens.get(digest)
        if record is None or not hmac.compare_digest(record.digest, digest):
            raise Unauthorized("The bearer token is not valid (unknown or revoked).")
        if record.expired(datetime.now(UTC)):
            assert record.expires is not None
            raise Unauthorized(
                f"The bearer token {record.id} expired on {record.expires:%Y-%m-%d %H:%M} UTC; "
                "ask for a new one (`userphoto token create`).",
                code="token_expired",
            )
        return record

    def _provider(self, token: str) -> tuple[Viewer, float]:
        from .oidc import NotInDirectory, OidcError

        assert self.oidc is not None
        try:
            claims = self.oidc.verify_access_token(token)
            identity = self.oidc.identify(claims, self.store)
        except NotInDirectory:
            # 401 without the address: the API does not say which people exist.
            raise Unauthorized("The access token names nobody who is a user here.") from None
        except OidcError as exc:
            if exc.status != 401:
                raise  # the provider is unreachable: 503, not the caller's fault
            raise Unauthorized(exc.message) from None
        return identity.viewer(), float(claims["exp"])

    def _partner(self, token: str) -> tuple[Viewer, float]:
        loaded = self._loaded
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("The bearer token is not a valid JWT.") from None
        issuer = unverified.get("iss")
        entry = loaded.partners.get(issuer) if isinstance(issuer, str) else None
        if entry is None:
            raise Unauthorized("The JWT's issuer is not a federation partner of this server.")
        partner, key = entry
        if not loaded.domains:
            raise Unauthorized("This server has no domains yet, so no JWT audience is valid.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[partner.algorithm],
                audience=loaded.domains,
                issuer=partner.domain,
                options={"require": ["exp", "iss", "sub", "aud"]},
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The JWT has expired.") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("The JWT's audience is not one of this server's domains.") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The JWT was refused: {type(exc).__name__}.") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not is_address(subject):
            raise Unauthorized("The JWT's sub must be the viewer's address.")
        subject = normalize_address(subject)
        domain = subject.rpartition("@")[2]
        if domain != partner.domain and not domain.endswith("." + partner.domain):
            raise Unauthorized("The JWT's sub is not an address of the issuing partner.")
        until = float(claims["exp"])
        return Viewer(ViewerKind.PARTNER, subject, None, partner.domain), until


_FOREVER = float("inf")


def _credential(header: bytes | str) -> str:
    """The credential of an Authorization header, normalized (scheme and padding removed)."""
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    scheme, _, credential = text.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthorized("Use 'Authorization: Bearer <token>'.")
    return credential
