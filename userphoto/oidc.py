"""OpenID Connect: the organization's identity provider signs people in and vouches for API calls.

One `OidcProvider` per process (built by `App.oidc` from `[oidc]`), shared by the web sign-in
(`web/signin.py`: authorization code flow with PKCE) and the bearer check (`auth.py`: JWT
access tokens issued for `[oidc] api_audience`).

- Discovery: `<issuer>/.well-known/openid-configuration`, fetched on first use and kept; its
  `issuer` must equal the configured one exactly (OpenID Connect Discovery §4.3).
- Keys: the provider's JWKS, kept in memory for as long as its Cache-Control max-age (or
  Expires) allows, never longer than `jwks_max_age` seconds nor shorter than
  `jwks_min_refresh`; a key the provider stops listing stops verifying when the copy
  expires. A token signed with a key id we do not hold makes us fetch the JWKS again (the
  provider rotated its keys), and so does a signature that fails with a key id we hold (the
  provider reused a key id for new key material) — each at most once per `jwks_min_refresh`
  seconds, so a stream of forged tokens cannot make us hammer the provider. When the copy has
  expired and the provider cannot be reached, tokens are refused (503), not checked with
  keys that may have been withdrawn.
- JOSE is PyJWT's: signature, `iss`, `aud`, `exp`/`iat` (30 s leeway), required claims. We
  add the `nonce` check (constant time) and the `azp` rule for several audiences. Only
  asymmetric algorithms are accepted (never `none` or HS*, whose key would be public here).
- People are found by one claim (`user_claim`: email, preferred_username or upn) matched
  against users' addresses and aliases; admins by `admin_claim` containing one of
  `admin_values` (e.g. a group or app role).
Tokens, codes and secrets are never logged or put into error messages.

Long on purpose: one protocol (discovery, keys, the code flow, token checks) kept together so
that every check of a token is read in one place.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt

from .config import ConfigError, Settings
from .errors import UserPhotoError
from .model import ANONYMOUS, Viewer, ViewerKind, is_address, normalize_address
from .store import Store

# Asymmetric JWS algorithms only: the provider's public keys verify, nobody else can sign.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
USER_CLAIMS = ("email", "preferred_username", "upn")
log = logging.getLogger(__name__)
LEEWAY = 30  # seconds of clock difference tolerated on exp / iat / nbf


class OidcError(UserPhotoError):
    """Sign-in or a provider token was refused; the message says why, without the token."""

    code = "oidc"
    status = 401


class NotInDirectory(OidcError):
    """The provider vouched for someone this service has no user for."""

    code = "unknown_user"
    status = 403


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)  # never in logs or reprs
    scopes: str = "openid email profile"
    user_claim: str = "email"
    admin_claim: str = "groups"
    admin_values: tuple[str, ...] = ()
    api_audience: str = ""  # "" = provider access tokens are not accepted on the APIs
    redirect_uri: str = ""  # "" = this site's /signin/oidc/callback
    post_logout_redirect_uri: str = ""  # "" = this site's /signin
    jwks_min_refresh: float = 60.0
    jwks_max_age: float = 3600.0
    timeout: float = 5.0
    label: str = "Sign in with your organization account"

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """The `[oidc]` settings, or None when no issuer is configured."""
        typed = settings.oidc
        issuer = typed.issuer.strip().rstrip("/")
        if not issuer:
            return None
        where = f"[oidc] in {settings.config_path}"
        client_id = typed.client_id.strip()
        if not client_id:
            raise ConfigError(f"{where}: issuer is set but client_id is missing.")
        secret = typed.client_secret
        secret_file = typed.client_secret_file
        if secret_file and not secret:
            path = Path(secret_file).expanduser()
            path = path if path.is_absolute() else settings.home / path
            try:
                secret = path.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"{where}: cannot read client_secret_file {path}: {exc.strerror}."
                ) from None
        if not secret:
            raise ConfigError(
                f"{where}: no client secret; put it in a file named by client_secret_file "
                "or in the environment variable USERPHOTO_OIDC_CLIENT_SECRET."
            )
        user_claim = typed.user_claim
        if user_claim not in USER_CLAIMS:
            raise ConfigError(
                f"{where}: user_claim must be one of {', '.join(USER_CLAIMS)}, not {user_claim!r}."
            )
        admin_values: Any = typed.admin_values
        if isinstance(admin_values, str):
            admin_values = [admin_values]
        if not isinstance(admin_values, list | tuple):
            raise ConfigError(f"{where}: admin_values must be a list of group or role names.")
        return cls(
            issuer=issuer,
            client_id=client_id,
            client_secret=secret,
            scopes=typed.scopes,
            user_claim=user_claim,
            admin_claim=typed.admin_claim,
            admin_values=tuple(str(v) for v in admin_values),
            api_audience=typed.api_audience,
            redirect_uri=typed.redirect_uri,
            post_logout_redirect_uri=typed.post_logout_redirect_uri,
            jwks_min_refresh=_seconds("jwks_min_refresh", typed.jwks_min_refresh, where),
            jwks_max_age=_seconds("jwks_max_age", typed.jwks_max_age, where),
            timeout=_seconds("timeout", typed.timeout, where),
            label=typed.label,
        )


def _seconds(key: str, value: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: {key} must be a number of seconds, not {value!r}.")
    return float(value)


@dataclass(frozen=True)
class Pending:
    """What the browser's session remembers between the redirect and the callback."""

    state: str
    nonce: str
    verifier: str  # PKCE code_verifier (RFC 7636)
    next: str = ""

    def dumps(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def loads(cls, text: str) -> Pending | None:
        try:
            data = json.loads(text)
            return cls(**{k: str(data[k]) for k in ("state", "nonce", "verifier", "next")})
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Identity:
    """A verified person: who they are here and whether the provider says they are an admin."""

    address: str
    user_id: str | None
    admin: bool

    def viewer(self) -> Viewer:
        kind = ViewerKind.ADMIN if self.admin else ViewerKind.MEMBER
        return Viewer(kind, self.address, self.user_id)


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcProvider:
    """The configured provider: discovery, keys, the code exchange and token verification."""

    def __init__(self, config: OidcConfig, client: httpx.Client | None = None):
        self.config = config
        self._http = client or httpx.Client(timeout=config.timeout, follow_redirects=False)
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_fetched = 0.0  # monotonic time of the last JWKS fetch
        self._keys_expire = 0.0  # monotonic time the copy may no longer be used
        self.jwks_fetches = 0  # how often the JWKS was fetched (the rate limit is tested)

    # --- provider documents ----------------------------------------------------------------
    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        return self._get(url, what)[0]

    def _get(self, url: str, what: str) -> tuple[dict[str, Any], httpx.Headers]:
        try:
            response = self._http.get(url, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OidcError(
                f"The identity provider's {what} could not be fetched ({type(exc).__name__}); "
                "check [oidc] issuer and that the provider is reachable.",
                code="oidc_unavailable",
                status=503,
            ) from None
        if response.status_code != 200:
            raise OidcError(
                f"The identity provider answered {response.status_code} for its {what}.",
                code="oidc_unavailable",
                status=503,
            )
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise OidcError(
                f"The identity provider's {what} is not a JSON object.",
                code="oidc_unavailable",
                status=503,
            )
        return data, response.headers

    @property
    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = self.config.issuer + "/.well-known/openid-configuration"
            data = self._get_json(url, "discovery document")
            if data.get("issuer") != self.config.issuer:
                raise OidcError(
                    f"The discovery document names issuer {data.get('issuer')!r}, not "
                    f"{self.config.issuer!r}; set [oidc] issuer to exactly the provider's issuer.",
                    code="oidc_unavailable",
                    status=503,
                )
            for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(data.get(needed), str):
                    raise OidcError(
                        f"The discovery document has no {needed}.",
                        code="oidc_unavailable",
                        status=503,
                    )
            self._metadata = data
        return self._metadata

    @property
    def algorithms(self) -> list[str]:
        offered = self.metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        return [a for a in ALGORITHMS if a in offered] or ["RS256"]

    def _refresh_keys(self) -> None:
        data, headers = self._get(self.metadata["jwks_uri"], "key set (JWKS)")
        keys: dict[str, jwt.PyJWK] = {}
        try:
            for jwk in jwt.PyJWKSet.from_dict(data).keys:
                if jwk.public_key_use in (None, "sig"):
                    keys[jwk.key_id or ""] = jwk
        except jwt.PyJWKSetError:
            pass  # no usable key at all: every token is refused below
        self._keys = keys
        self._keys_fetched = time.monotonic()
        self._keys_expire = self._keys_fetched + self._keys_age(headers)
        self.jwks_fetches += 1

    def _keys_age(self, headers: httpx.Headers) -> float:
        """How long this copy of the key set may be used: the provider's caching headers,
        within [jwks_min_refresh, jwks_max_age] (max age wins if they cross)."""
        config = self.config
        said: float | None = None
        control = headers.get("cache-control", "").lower()
        if "no-store" in control or "no-cache" in control:
            said = 0.0
        elif match := re.search(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", control):
            said = float(match[1])
        elif expires := headers.get("expires"):
            try:
                at = email.utils.parsedate_to_datetime(expires).timestamp()
                date = headers.get("date")
                now = email.utils.parsedate_to_datetime(date).timestamp() if date else time.time()
                said = max(0.0, at - now)
            except (TypeError, ValueError, OverflowError):
                said = 0.0  # an invalid Expires means already expired (RFC 9111 §5.3)
        age = config.jwks_max_age if said is None else min(said, config.jwks_max_age)
        return max(age, min(config.jwks_min_refresh, config.jwks_max_age))

    def _may_refetch(self) -> bool:
        return (
            not self._keys_fetched
            or time.monotonic() - self._keys_fetched >= self.config.jwks_min_refresh
        )

    def signing_key(self, kid: str) -> jwt.PyJWK:
        """The key with this id; fetches the JWKS again when our copy expired, and on an
        unknown id (rate-limited)."""
        with self._lock:
            if not self._keys_fetched or time.monotonic() >= self._keys_expire:
                self._refresh_keys()
            key = self._keys.get(kid)
            if key is None and self._may_refetch():
                self._refresh_keys()
                key = self._keys.get(kid)
            if key is None and not kid and len(self._keys) == 1:
                key = next(iter(self._keys.values()))  # a token without kid, a one-key set
        if key is None:
            raise OidcError("The token is signed with a key the identity provider does not list.")
        return key

    def _refetched_key(self, kid: str, failed: jwt.PyJWK) -> jwt.PyJWK | None:
        """After a signature failure: the key set again (rate-limited), and the key now
        listed under `kid` if it is different material — a provider that reused a key id."""
        with self._lock:
            if self._keys.get(kid) is failed and self._may_refetch():
                self._refresh_keys()
            key = self._keys.get(kid)
        if key is None or key is failed:
            return None
        return key

    # --- the authorization code flow -------------------------------------------------------
    def start(self, redirect_uri: str, next_path: str = "") -> tuple[str, Pending]:
        """The provider's authorization URL to send the browser to, and what to remember."""
        pending = Pending(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),  # 64 characters, RFC 7636: 43..128
            next=next_path,
        )
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.config.scopes,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": s256(pending.verifier),
            "code_challenge_method": "S256",
        }
        endpoint: str = self.metadata["authorization_endpoint"]
        joiner = "&" if "?" in endpoint else "?"
        return endpoint + joiner + urlencode(params), pending

    def exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """Trade the authorization code for tokens at the token endpoint (client_secret_basic)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        # RFC 6749 §2.3.1: client id and secret are form-urlencoded before Basic encoding.
        auth = (quote(self.config.client_id, safe=""), quote(self.config.client_secret, safe=""))
        try:
            response = self._http.post(self.metadata["token_endpoint"], data=form, auth=auth)
        except httpx.HTTPError as exc:
            raise OidcError(
                f"The identity provider's token endpoint could not be reached "
                f"({type(exc).__name__}); try again.",
                code="oidc_unavailable",
                status=503,
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise OidcError(
                f"The identity provider refused the sign-in code ({response.status_code}"
                f"{', ' + str(error)[:60] if error else ''}); start the sign-in again."
            )
        if not isinstance(body.get("id_token"), str):
            raise OidcError("The identity provider returned no id_token; is 'openid' a scope?")
        return body

    # --- token verification ----------------------------------------------------------------
    def _decode(self, token: str, audience: str, what: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise OidcError(f"The {what} is not a valid JWT.") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise OidcError(f"The {what} uses algorithm {str(alg)[:20]!r}, which is not accepted.")
        kid = str(header.get("kid") or "")
        key = self.signing_key(kid)

        def decode(key: jwt.PyJWK) -> dict[str, Any]:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=self.config.issuer,
                leeway=LEEWAY,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )

        try:
            try:
                claims = decode(key)
            except jwt.InvalidSignatureError:
                newer = self._refetched_key(kid, key)
                if newer is None:
                    raise
                claims = decode(newer)
        except jwt.ExpiredSignatureError:
            raise OidcError(f"The {what} has expired; sign in again.") from None
        except jwt.InvalidAudienceError:
            raise OidcError(f"The {what} was issued for another application (aud).") from None
        except jwt.InvalidIssuerError:
            raise OidcError(f"The {what} comes from another issuer (iss).") from None
        except jwt.InvalidSignatureError:
            raise OidcError(f"The {what}'s signature does not verify.") from None
        except jwt.PyJWTError as exc:
            raise OidcError(f"The {what} was refused: {type(exc).__name__}.") from None
        return claims

    def verify_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        """The verified claims of an id_token from our own sign-in with this nonce."""
        claims = self._decode(token, self.config.client_id, "id_token")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise OidcError("The id_token names several audiences but not us as azp.")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, nonce):
            raise OidcError(
                "The id_token's nonce does not match this sign-in (a replayed or mixed-up "
                "response); start the sign-in again."
            )
        return claims

    def verify_access_token(self, token: str) -> dict[str, Any]:
        """The verified claims of a provider access token issued for `api_audience`."""
        if not self.config.api_audience:
            raise OidcError("This server does not accept the identity provider's access tokens.")
        claims = self._decode(token, self.config.api_audience, "access token")
        if "nonce" in claims:  # an id_token (even one whose aud happens to match) is no grant
            raise OidcError("An id_token is not an access token; send the access token.")
        return claims

    def issued(self, token: str) -> bool:
        """Whether a JWT claims to come from this provider (unverified; for routing only)."""
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return False
        return issuer == self.config.issuer

    # --- who it is -------------------------------------------------------------------------
    def identify(self, claims: dict[str, Any], store: Store) -> Identity:
        """The person the verified claims name, by `user_claim` against addresses and aliases.

        Admins (by `admin_claim`) may be outside the directory, as admin tokens may; everyone
        else must be a user here, else `NotInDirectory`.
        """
        name = self.config.user_claim
        value = claims.get(name)
        if not isinstance(value, str) or not value.strip():
            raise OidcError(
                f"The identity provider sent no {name!r} claim; ask your administrator to "
                f"release it to this application or set [oidc] user_claim."
            )
        address = normalize_address(value)
        admin = self.is_admin(claims)
        user = store.find_user(address) if is_address(address) else None
        missing = self.config.admin_values and self.config.admin_claim not in claims
        if missing:
            log.info(
                "the provider's token for %s has no %r claim (admin_claim): nobody can be "
                "recognised as an admin; check [oidc] scopes",
                address[:120],
                self.config.admin_claim,
            )
        if user is None and not admin and missing:
            raise NotInDirectory(
                f"You signed in as {address[:120]}, who is not a user here, and the identity "
                f"provider's token has no {self.config.admin_claim!r} claim, which says who "
                f"is an administrator ([oidc] admin_claim). Ask your administrator to release "
                f"that claim to this application: usually by adding its scope to [oidc] "
                f"scopes (now {self.config.scopes!r}), e.g. 'groups'.",
                code="admin_claim_missing",
            )
        if user is None and not admin:
            raise NotInDirectory(
                f"You signed in as {address[:120]}, but this photo service has no user with "
                "that address or alias. Ask your administrator to add you (or to sync the "
                "directory), then sign in again."
            )
        return Identity(user.address if user else address, user.id if user else None, admin)

    def is_admin(self, claims: dict[str, Any]) -> bool:
        wanted = self.config.admin_values
        if not wanted:
            return False
        found = claims.get(self.config.admin_claim)
        values = found if isinstance(found, list) else [found]
        return any(isinstance(v, str) and v in wanted for v in values)

    def end_session_url(self, id_token: str, post_logout_redirect_uri: str) -> str | None:
        """Where to send the browser to end the provider's session too, if it offers that."""
        endpoint = self.metadata.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        params = {"client_id": self.config.client_id}
        if id_token:
            params["id_token_hint"] = id_token
        if post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = post_logout_redirect_uri
        joiner = "&" if "?" in endpoint else "?"
        return endpoint + joiner + urlencode(params)


def viewer_of_session(credential: str, store: Store) -> Viewer:
    """The viewer an OIDC session names (checked again on every request: a user removed
    from the directory is signed out at once)."""
    try:
        data = json.loads(credential)
        address, user_id, admin = str(data["address"]), data.get("user_id"), bool(data["admin"])
    except (ValueError, KeyError, TypeError):
        return ANONYMOUS
    user = store.find_user(user_id) if isinstance(user_id, str) and user_id else None
    if admin:
        if user is None:
            return Viewer(ViewerKind.ADMIN, address, None)
        return Viewer(ViewerKind.ADMIN, user.address, user.id)
    if user is None:
        raise OidcError("Your user no longer exists here; sign in again.")
    return Viewer(ViewerKind.MEMBER, user.address, user.id)


def session_credential(identity: Identity, id_token: str) -> str:
    """What an OIDC session keeps (inside the encrypted cookie): who, and the id_token as
    the hint for RP-initiated logout."""
    return json.dumps(
        {
            "address": identity.address,
            "user_id": identity.user_id,
            "admin": identity.admin,
            "id_token": id_token,
        }
    )


def id_token_of(credential: str) -> str:
    try:
        value = json.loads(credential).get("id_token", "")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""
