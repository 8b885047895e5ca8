"""Settings: `$USERPHOTO_HOME/userphoto.toml`, overridden by `USERPHOTO_<SECTION>_<KEY>` variables.

Every key is declared once, in `KEYS` below (section, name, type, default, one-line help).
From that one declaration come the validation of the file and of the environment, the
commented `userphoto.toml` that `userphoto init` writes, `docs/configuration.md`
(`userphoto config docs`) and `userphoto config check`. A key the code reads must be declared
here (tests/test_config.py checks it); an unknown key or section is an error that names the
closest known one, so a typo never silently falls back to a default.

Long on purpose: most of it is the one declaration of every setting (`KEYS`), from which
the generated file, the docs and validation all come.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import stat
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import UserPhotoError
from .model import CHECK_ACTIONS, CHECK_NAMES, CheckPolicy, Limits
from .redaction import redact

CONFIG_NAME = "userphoto.toml"
DB_NAME = "userphoto.db"
ENV_PREFIX = "USERPHOTO_"
# Environment variables that are not settings of the file.
PROCESS_ENV = {
    "USERPHOTO_HOME": "the data folder (default ~/.local/share/userphoto); `--home DIR` wins",
    "USERPHOTO_DEBUG": "set to 1 to get a traceback instead of the one-line error of a bug",
}

# Value kinds: how a value is written in TOML and in the environment.
INT, FLOAT, BOOL, STR, STRS, URIS, TABLE = "int", "float", "bool", "str", "strs", "uris", "table"
KIND_TEXT = {
    INT: "integer",
    FLOAT: "number",
    BOOL: "true/false",
    STR: "string",
    STRS: "list of strings",
    URIS: "URI or list of URIs",
    TABLE: "inline table",
}

# --- value rules: what a value of the right kind must also be -----------------------------
# A rule returns what is wrong ("must be ...") or None. It sees only values of the key's kind,
# and never raises: `config check` reports any value, whatever it is, instead of crashing.
Rule = Callable[[Any], "str | None"]
FILE, SECRET_FILE = "file", "secret file"  # Key.path
SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
STORE_URLS = "sqlite:///PATH (a SQLite file) or postgresql://USER@HOST/DB"


def at_least(low: float) -> Rule:
    return lambda v: None if v >= low else f"must be at least {low}, not {v!r}"


def between(low: float, high: float) -> Rule:
    return lambda v: None if low <= v <= high else f"must be {low} to {high}, not {v!r}"


def positive(value: float) -> str | None:
    return None if value > 0 else f"must be more than 0, not {value!r}"


def one_of(*choices: str) -> Rule:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}, not {v!r}"


def address_ranges(value: list[str]) -> str | None:
    """A list of CIDR ranges (a lone address is a range of one)."""
    for item in value:
        try:
            ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            return f"must list address ranges such as 10.0.0.0/8 or ::1/128; {item!r} is not one"
    return None


def web_urls(value: str | list[str]) -> str | None:
    for item in [value] if isinstance(value, str) else value:
        if item and not item.lower().startswith(("https://", "http://")):
            return f"must be an https:// (or http://) URL, not {redact(item)!r}"
    return None


def site_url(value: str) -> str | None:
    """An absolute http(s) address with no query or fragment (the site as browsers see it)."""
    raw = value.strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            "must be an absolute http:// or https:// address like "
            f"https://photos.contoso.example, not {raw!r}"
        )
    if parts.query or parts.fragment or "?" in raw or "#" in raw:
        return f"may not have a query (?) or fragment (#): {raw!r}"
    return None


def store_url(value: str) -> str | None:
    """sqlite:///PATH or a postgresql:// URL; anything else (a bare path, mysql://, a keyword
    DSN) is refused naming what is accepted, the value shown with its secrets redacted."""
    if value.startswith(SQLITE_PREFIX):
        return None if value.removeprefix(SQLITE_PREFIX).strip("/") else "needs a file path"
    if value.startswith(POSTGRES_PREFIXES):
        return postgres_url(value)
    if "://" not in value and "=" not in value and value.strip():
        return (
            f"must be a URL: {STORE_URLS}; for this file write "
            f'"{SQLITE_PREFIX}{Path(value).expanduser().absolute()}"'
        )
    return f"must be {STORE_URLS}, not {redact(value)!r}"


def postgres_url(value: str) -> str | None:
    if not value.startswith(POSTGRES_PREFIXES):
        return f"must be a postgresql://USER@HOST/DB URL, not {redact(value)!r}"
    authority = value.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    hosts = authority.rpartition("@")[2]
    for host in hosts.split(",") if hosts else []:  # several: libpq tries them in order
        port = host.rpartition("]")[2].rpartition(":")[2] if ":" in host else ""
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            return f"has port {port!r} in {redact(value)!r}; a port is 1 to 65535"
    return None


def sqlite_file(url: str) -> Path | None:
    """The file of a sqlite:/// URL (sqlite:///./x: relative), or None for another store."""
    if not url.startswith(SQLITE_PREFIX):
        return None
    rest = url.removeprefix("sqlite://")
    path = Path(rest[1:] if rest.startswith("/./") else rest).expanduser()
    return Path(os.path.realpath(path))  # the default's "////home/..." as "/home/..."


PORT = between(0, 65535)
SECONDS = positive
SERVE_SKIPS = frozenset({"USERPHOTO_DIRECTORY_BIND_PASSWORD_FILE"})  # files `serve` never reads


@dataclass(frozen=True)
class Key:
    section: str
    name: str
    kind: str
    default: Any  # None: unset unless configured (`example` shows a value)
    help: str
    example: Any = None
    secret: bool = False  # never printed: masked by `config check`
    # What else a value must be, beyond its kind (a range, a URL scheme): the rules above.
    rule: Rule | None = None
    # Keys of the same section this one needs when set ("a|b": either will do).
    needs: tuple[str, ...] = ()
    # A path: FILE must exist; SECRET_FILE also must not be readable by others.
    path: str = ""

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{self.section.upper()}_{self.name.upper()}"


@dataclass(frozen=True)
class Section:
    name: str
    help: str
    optional: bool = False  # written commented out: present means "turned on"


_LIMITS = Limits()
_CHECKS = CheckPolicy()

SECTIONS = (
    Section("limits", "What an upload may be; anything else is refused with the reason."),
    Section("photos", "The photos userphoto makes."),
    Section("workers", "The processes that decode and render images, each job limited."),
    Section("policy", "Who may change what."),
    Section("server", "`userphoto serve`."),
    Section("store", "Where users and photos are kept."),
    Section("web", "The web pages."),
    Section("avatar", "The Libravatar / Gravatar API."),
    Section(
        "directory",
        "LDAP / Active Directory sync and write-back (README: Directory). Setting `uri` "
        "turns it on.",
        optional=True,
    ),
    Section(
        "oidc",
        "Sign in with the organization's OpenID Connect provider (README: Web pages). Setting "
        "`issuer` turns it on.",
        optional=True,
    ),
)

KEYS = (
    Key("limits", "max_bytes", INT, _LIMITS.max_bytes,
        "largest upload accepted, in bytes (Graph's limit; Exchange Online used 500 KB)",
        rule=at_least(1)),
    Key("limits", "max_pixels", INT, _LIMITS.max_pixels,
        "most pixels accepted, checked from the header before any decoding", rule=at_least(1)),
    Key("limits", "min_side", INT, _LIMITS.min_side,
        "smaller photos are refused rather than upscaled into blur", rule=at_least(1)),
    Key("limits", "job_memory_mb", INT, _LIMITS.job_memory // 2**20,
        "memory one image decode may use, in MB (its worker process is limited)",
        rule=at_least(1)),
    Key("limits", "job_cpu_seconds", FLOAT, _LIMITS.job_cpu_seconds,
        "CPU seconds one image decode may use; past either limit the image is refused",
        rule=SECONDS),
    Key("workers", "processes", INT, 0,
        "image worker processes (decoding uploads, previews, imports); 0: one per core",
        rule=at_least(0)),
    Key("workers", "queue", INT, -1,
        "image jobs that may wait for a worker before the answer is 503; -1: 16 per worker",
        rule=at_least(-1)),
    Key("photos", "thumbnail_size", INT, 96,
        "side of the directory thumbnail (AD thumbnailPhoto), a JPEG of at most 100 KB",
        rule=at_least(1)),
    Key("photos", "jpeg_quality", INT, 85, "JPEG quality of every rendition (1-95)",
        rule=between(1, 95)),
    Key("policy", "self_service", BOOL, True,
        "members may change their own photo (the modeled SetPhotoEnabled)"),
    # The automatic photo checks (checks.py; thresholds measured: docs/checks.md). Actions:
    # refuse (422 photo_check_failed), review (as warn until approval exists), warn, off.
    *(
        Key("policy", f"check_{name}", STR, getattr(_CHECKS, name), help_text,
            rule=one_of(*CHECK_ACTIONS))
        for name, help_text in (
            ("one_face", "exactly one face: refuse, review, warn or off"),
            ("face_size", "the face's width within face_size_min..face_size_max of the "
             "picture's short side: refuse, review, warn or off"),
            ("sharpness", "the face region is sharp (sharpness_min): refuse, review, warn or off"),
            ("exposure", "the face region is neither too dark, too bright nor clipped: "
             "refuse, review, warn or off"),
            ("resolution", "the source's short side is at least resolution_min px: "
             "refuse, review, warn or off"),
        )
    ),
    Key("policy", "face_size_min", FLOAT, _CHECKS.face_size_min,
        "smallest face width, as a share of the picture's short side", rule=between(0, 1)),
    Key("policy", "face_size_max", FLOAT, _CHECKS.face_size_max,
        "largest face width, as a share of the picture's short side", rule=between(0, 2)),
    Key("policy", "sharpness_min", FLOAT, _CHECKS.sharpness_min,
        "least sharpness of the face region (Laplacian / intensity variance at 64 px)",
        rule=at_least(0)),
    Key("policy", "exposure_min", FLOAT, _CHECKS.exposure_min,
        "darkest mean luminance of the face region (0-255)", rule=between(0, 255)),
    Key("policy", "exposure_max", FLOAT, _CHECKS.exposure_max,
        "brightest mean luminance of the face region (0-255)", rule=between(0, 255)),
    Key("policy", "clipped_max", FLOAT, _CHECKS.clipped_max,
        "largest share of the face region clipped to black or white", rule=between(0, 1)),
    Key("policy", "resolution_min", INT, _CHECKS.resolution_min,
        "smallest short side of the source, px, for the resolution check", rule=at_least(1)),
    Key("server", "host", STR, "127.0.0.1", "address `userphoto serve` listens on"),
    Key("server", "port", INT, 8080, "port `userphoto serve` listens on", rule=PORT),
    Key("server", "tls_cert", STR, "",
        "PEM certificate chain: set with tls_key to serve HTTPS (and HTTP/2) directly",
        needs=("tls_key",), path=FILE),
    Key("server", "tls_key", STR, "", "PEM private key of tls_cert", needs=("tls_cert",),
        path=SECRET_FILE),
    Key("server", "max_connections", INT, 4096,
        "open connections per worker at most; more wait (caps per client: nginx)",
        rule=at_least(1)),
    Key("server", "header_timeout", FLOAT, 10.0,
        "seconds a request head may take to arrive; a slower client is cut off", rule=SECONDS),
    Key("server", "body_timeout", FLOAT, 30.0,
        "seconds an upload body may take to arrive once its head is in", rule=SECONDS),
    Key("server", "shutdown_seconds", INT, 10,
        "on SIGTERM, seconds in-flight requests get to finish", rule=at_least(0)),
    Key("server", "cache_mb", INT, 256,
        "memory for cached answers in MB (keys included); least recently used go first",
        rule=at_least(0)),
    Key("server", "miss_threads", INT, 4, "threads building uncached answers for members",
        rule=at_least(1)),
    Key("server", "miss_queue", INT, 1024, "members' misses that may wait before 503",
        rule=at_least(0)),
    Key("server", "outside_miss_threads", INT, 1,
        "threads building uncached answers for anonymous and partner viewers", rule=at_least(1)),
    Key("server", "outside_miss_queue", INT, 256, "outsiders' misses that may wait before 503",
        rule=at_least(0)),
    Key("server", "access_log", STR, "json", "access log format: json, logfmt or off",
        rule=one_of("json", "logfmt", "off")),
    Key("server", "access_log_file", STR, "", "access log file; empty: standard error"),
    Key("server", "metrics_allow", STRS, ["127.0.0.0/8", "::1/128"],
        "address ranges that may read /metrics without an admin token", rule=address_ranges),
    Key("server", "trusted_proxies", STRS, [],
        "reverse proxies (CIDRs) whose X-Forwarded-For/-Proto/-Host or Forwarded headers "
        "are believed: the client address, https and the public host",
        example=["127.0.0.1/32", "::1/128"], rule=address_ranges),
    Key("server", "public_url", STR, "",
        "this site's address as browsers see it (required behind a reverse proxy); the OIDC "
        "callback and sign-out return addresses are built from it",
        example="https://photos.contoso.example", rule=site_url),
    Key("server", "token_days", INT, 90,
        "days a new API token lasts unless `token create --expires` says otherwise (0: never "
        "expires)", rule=at_least(0)),
    Key("server", "domains", STRS, [],
        "this organization's mail domains: a partner's JWT must have one of them as aud",
        example=["contoso.example"]),
    Key("store", "url", STR, None,
        "database URL; unset: SQLite (userphoto.db) in the data folder",
        example="postgresql://userphoto@db.contoso.example/userphoto", secret=True,
        rule=store_url),
    Key("store", "read_url", STR, None,
        "PostgreSQL only: a hot standby that serves reads once it has replayed this node's "
        "changes", example="postgresql://userphoto@standby.contoso.example/userphoto",
        secret=True, rule=postgres_url),
    Key("web", "secure_cookies", BOOL, False,
        "mark session cookies Secure even over http (behind a TLS-terminating proxy)"),
    Key("web", "session_lifetime", FLOAT, 43200.0,
        "seconds a sign-in lasts at most (absolute lifetime); also how often session keys "
        "rotate", rule=SECONDS),
    Key("web", "session_idle", FLOAT, 7200.0,
        "seconds a sign-in lasts without being used (idle lifetime; use is recorded at most "
        "once a minute)", rule=SECONDS),
    Key("web", "session_recheck", FLOAT, 5.0,
        "seconds a process trusts its last look at a session; a sign-out on another node "
        "counts here within this time (0: look every time)", rule=at_least(0)),
    Key("avatar", "default_url_allow", STRS, [],
        "URL prefixes a Libravatar d=URL default may start with (no open redirect)",
        example=["https://static.contoso.example/avatars/"], rule=web_urls),
    Key("directory", "uri", URIS, None, "LDAP server(s), tried in order (failover)",
        example=["ldaps://dc1.contoso.example", "ldaps://dc2.contoso.example"]),
    Key("directory", "bind_dn", STR, None, "account userphoto binds as",
        example="CN=userphoto,OU=Service,DC=contoso,DC=example"),
    Key("directory", "bind_password", STR, None,
        "its password (better: bind_password_file)", example="", secret=True),
    Key("directory", "bind_password_file", STR, None,
        "file holding the password (relative: to the data folder)", example="bind-password",
        path=SECRET_FILE),
    Key("directory", "base_dn", STR, None, "where users are searched (required)",
        example="DC=contoso,DC=example"),
    Key("directory", "user_filter", STR, None,
        "LDAP filter of users; unset: people on AD, inetOrgPerson elsewhere",
        example="(&(objectCategory=person)(objectClass=user))"),
    Key("directory", "id_attribute", STR, None,
        "stable id; unset: objectGUID on AD, entryUUID elsewhere", example="objectGUID"),
    Key("directory", "mail_attribute", STR, "mail",
        "primary address (aliases come from proxyAddresses smtp: values)"),
    Key("directory", "name_attribute", STR, "displayName", "display name"),
    Key("directory", "photo_attribute", STR, "thumbnailPhoto", "thumbnailPhoto or jpegPhoto"),
    Key("directory", "account_state", TABLE, None,
        "how an account is disabled; unset: userAccountControl bit 2 on AD, nothing elsewhere",
        example={"attribute": "userAccountControl", "disabled_bits": 2}),
    Key("directory", "starttls", BOOL, False, "StartTLS on ldap:// (ldaps:// uses TLS anyway)"),
    Key("directory", "ca_file", STR, None, "CA certificates; unset: the system's",
        example="/etc/ssl/certs/contoso-ca.pem", path=FILE),
    Key("directory", "tls_verify", BOOL, True,
        "verify the server's certificate (false only for a self-signed test server)"),
    Key("directory", "writeback", BOOL, False,
        "an HD photo saved or removed writes or clears thumbnailPhoto"),
    Key("directory", "writeback_size", INT, 96, "side of the written thumbnail: 48, 64 or 96"),
    Key("directory", "delete_guard", FLOAT, 0.10,
        "refuse to mark more than this share of users gone in one sync"),
    Key("directory", "timeout", FLOAT, 10.0, "seconds per connect and per operation",
        rule=SECONDS),
    Key("directory", "retries", INT, 3, "attempts before the directory counts as down",
        rule=at_least(1)),
    Key("directory", "backoff", FLOAT, 1.0, "first retry delay in seconds, doubled each time",
        rule=at_least(0)),
    Key("directory", "page_size", INT, 500, "entries per LDAP page", rule=at_least(1)),
    Key("directory", "watch_interval", FLOAT, 1.0, "seconds between delta polls of sync --watch",
        rule=SECONDS),
    Key("directory", "full_interval", FLOAT, 900.0,
        "seconds between full reconciliations of sync --watch", rule=SECONDS),
    Key("directory", "dirsync", BOOL, True,
        "AD deltas through DirSync (reports deletions; needs Replicating Directory Changes)"),
    Key("directory", "notify", BOOL, True, "AD change notifications wake sync --watch at once"),
    Key("directory", "syncrepl", BOOL, True,
        "sync --watch: RFC 4533 content sync (changes pushed) when the server offers it"),
    Key("oidc", "issuer", STR, "",
        "the provider; discovery reads <issuer>/.well-known/openid-configuration",
        example="https://login.contoso.example", rule=web_urls,
        needs=("client_id", "client_secret|client_secret_file")),
    Key("oidc", "client_id", STR, "",
        "this site's client id at the provider (required with issuer)",
        example="userphoto"),
    Key("oidc", "client_secret", STR, "",
        "client secret (better: client_secret_file or USERPHOTO_OIDC_CLIENT_SECRET)", secret=True),
    Key("oidc", "client_secret_file", STR, "",
        "file holding the client secret (relative: to the data folder)",
        example="oidc-client-secret", path=SECRET_FILE),
    Key("oidc", "scopes", STR, "openid email profile", "scopes asked for at sign-in"),
    Key("oidc", "user_claim", STR, "email",
        "claim matched to addresses and aliases: email, preferred_username or upn",
        rule=one_of("email", "preferred_username", "upn")),
    Key("oidc", "admin_claim", STR, "groups", "the claim naming groups or app roles"),
    Key("oidc", "admin_values", STRS, [], "members of these groups or roles are admins",
        example=["photo-admins"]),
    Key("oidc", "api_audience", STR, "",
        "accept the provider's JWT access tokens for this audience on the APIs"),
    Key("oidc", "redirect_uri", STR, "", "callback URL; empty: this site's /signin/oidc/callback"),
    Key("oidc", "post_logout_redirect_uri", STR, "",
        "where the provider sends people after sign-out; empty: this site's /signin"),
    Key("oidc", "jwks_min_refresh", FLOAT, 60.0,
        "seconds between key-set fetches on an unknown key id (key rotation)", rule=SECONDS),
    Key("oidc", "jwks_max_age", FLOAT, 3600.0,
        "seconds the provider's key set is kept at most (less when its Cache-Control / "
        "Expires say so): a key it stops listing stops verifying within this time", rule=SECONDS),
    Key("oidc", "timeout", FLOAT, 5.0, "seconds for each call to the provider", rule=SECONDS),
    Key("oidc", "label", STR, "Sign in with your organization account",
        "the sign-in button's text"),
)  # fmt: skip

BY_SECTION: dict[str, dict[str, Key]] = {s.name: {} for s in SECTIONS}
for _key in KEYS:
    BY_SECTION[_key.section][_key.name] = _key
_UNSET = object()


class ConfigError(UserPhotoError):
    code = "config"


def default_home() -> Path:
    env = os.environ.get("USERPHOTO_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "userphoto"


def closest(word: str, known: Iterator[str] | list[str]) -> str | None:
    found = difflib.get_close_matches(word, list(known), n=1, cutoff=0.5)
    return found[0] if found else None


def _hint(suggestion: str | None) -> str:
    return f"; did you mean {suggestion}?" if suggestion else ""


def check_value(key: Key, value: Any, where: str) -> Any:
    """`value` if it is of the key's kind, else a ConfigError naming the key and `where`."""
    kind = key.kind
    ok = {
        INT: isinstance(value, int) and not isinstance(value, bool),
        FLOAT: isinstance(value, int | float) and not isinstance(value, bool),
        BOOL: isinstance(value, bool),
        STR: isinstance(value, str),
        STRS: isinstance(value, list) and all(isinstance(v, str) for v in value),
        URIS: isinstance(value, str)
        or (isinstance(value, list) and all(isinstance(v, str) for v in value)),
        TABLE: isinstance(value, dict),
    }[kind]
    if not ok:
        text = KIND_TEXT[kind]
        article = "an" if text[0] in "aeiou" else "a"
        # A secret of the wrong type is still a secret (a password written as a number).
        shown = "" if key.secret else f", not {_shown(value)}"
        raise ConfigError(f"{key.section}.{key.name} in {where} must be {article} {text}{shown}")
    problem = key.rule(value) if key.rule is not None else None
    if problem:
        raise ConfigError(f"{key.section}.{key.name} in {where} {problem}")
    return value


def _shown(value: Any) -> str:
    """A wrong value as an error may quote it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _from_env(key: Key, raw: str) -> Any:
    """An environment value of the key's kind (strings as they are; lists as TOML arrays or
    comma-separated)."""
    text = raw.strip()
    try:
        if key.kind == STR:
            return raw
        if key.kind == BOOL:
            truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            return truth.get(text.lower(), raw)
        if key.kind in (INT, FLOAT, TABLE) or text.startswith("["):
            return tomllib.loads(f"v = {text}")["v"]
        if key.kind in (STRS, URIS):
            return [part.strip() for part in text.split(",") if part.strip()]
    except tomllib.TOMLDecodeError:
        pass
    return raw  # check_value then says what was expected


def validate(data: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Every section and key declared and of its kind; errors name the closest known one."""
    for name, table in data.items():
        if name not in BY_SECTION:
            if not isinstance(table, dict):
                owner = next((k.section for k in KEYS if k.name == name), None)
                suggestion = f"[{owner}] {name}" if owner else None
                raise ConfigError(f"{name} in {where} is outside any section{_hint(suggestion)}")
            suggestion = closest(name, list(BY_SECTION))
            raise ConfigError(
                f"unknown section [{name}] in {where}"
                + _hint(f"[{suggestion}]" if suggestion else None)
            )
        if not isinstance(table, dict):
            raise ConfigError(f"[{name}] in {where} must be a table of settings")
        keys = BY_SECTION[name]
        for key_name, value in table.items():
            if key_name not in keys:
                raise ConfigError(
                    f"unknown key {key_name} in [{name}] of {where}"
                    + _hint(closest(key_name, list(keys)))
                )
            check_value(keys[key_name], value, where)
    return data


def env_overrides(environ: dict[str, str] | os._Environ[str]) -> dict[str, dict[str, Any]]:
    """`USERPHOTO_<SECTION>_<KEY>` variables, validated like the file."""
    found: dict[str, dict[str, Any]] = {}
    every = {k.env: k for k in KEYS}
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var in PROCESS_ENV:
            continue
        key = every.get(var)
        if key is None:
            raise ConfigError(
                f"unknown setting {var} in the environment"
                + _hint(closest(var, [*every, *PROCESS_ENV]))
            )
        value = check_value(key, _from_env(key, raw), f"the environment ({var})")
        found.setdefault(key.section, {})[key.name] = value
    return found


@dataclass
class Settings:
    home: Path
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Where each value came from: "file", "environment" (absent: the default).
    origin: dict[tuple[str, str], str] = field(default_factory=dict)
    file: Path | None = None

    @classmethod
    def load(cls, home: Path | str | None = None, file: Path | str | None = None) -> Settings:
        """The data folder's userphoto.toml (or `file`) and the environment, validated."""
        home = Path(home).expanduser() if home else default_home()
        path = Path(file).expanduser() if file else home / CONFIG_NAME
        data: dict[str, dict[str, Any]] = {}
        origin: dict[tuple[str, str], str] = {}
        if file or path.exists():
            try:
                data = tomllib.loads(path.read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path} is not valid TOML: {exc}") from None
            validate(data, str(path))
            origin = {(s, k): "file" for s, table in data.items() for k in table}
        for section, values in env_overrides(os.environ).items():
            data.setdefault(section, {}).update(values)
            origin.update({(section, k): "environment" for k in values})
        settings = cls(home, data, origin, path)
        settings.check_pairs()
        return settings

    def where(self, key: Key) -> str:
        """Where a key's value comes from, for messages: the file or its variable."""
        if self.origin.get((key.section, key.name)) == "environment":
            return f"the environment ({key.env})"
        return str(self.config_path)

    def check_pairs(self) -> None:
        """Keys that only work together (`Key.needs`): TLS cert and key, OIDC issuer, client
        id and a client secret. Every command refuses a half pair, naming what is missing."""
        for key in KEYS:
            if key.needs and self.get(key.section, key.name):
                for need in key.needs:
                    choices = need.split("|")
                    if not any(self.get(key.section, c) for c in choices):
                        wanted = " or ".join(
                            f"{key.section}.{c} ({BY_SECTION[key.section][c].env})" for c in choices
                        )
                        raise ConfigError(
                            f"{key.section}.{key.name} in {self.where(key)} is set but "
                            f"{wanted} is not; set {'it' if len(choices) == 1 else 'one'} too"
                        )

    def path_of(self, key: Key) -> Path | None:
        """A path setting as a Path (relative: to the data folder), or None when unset."""
        value = self.get(key.section, key.name)
        if not value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.home / path

    def file_problems(self, skip: frozenset[str] = frozenset()) -> Iterator[tuple[str, str]]:
        """("error" | "warning", message) for every path setting (`Key.path`): a file that
        is missing or unreadable is an error; a secret file that others may read, a warning.
        Only sections in use are looked at ([directory] with a uri, [oidc] with an issuer)."""
        for key in KEYS:
            if not key.path or not self._in_use(key.section) or key.env in skip:
                continue
            path = self.path_of(key)
            if path is None:
                continue
            name = f"{key.section}.{key.name}"
            if not path.is_file():
                yield "error", f"{name} names {path}, which is not a file ({self.where(key)})"
            elif not os.access(path, os.R_OK):
                yield "error", f"{name} names {path}, which this user ({_user()}) cannot read"
            elif key.path == SECRET_FILE:
                yield from _exposed(path, name)
        yield from self._config_file_problems()
        store = sqlite_file(self.store_url)
        if store is not None and store.is_file():  # made before `init` made it 0600
            yield from _exposed(store, "the store (token hashes, partners' signing secrets)")

    def _in_use(self, section: str) -> bool:
        switch = {"directory": "uri", "oidc": "issuer"}.get(section)
        return switch is None or bool(self.get(section, switch))

    def _config_file_problems(self) -> Iterator[tuple[str, str]]:
        """A config file holding secrets (an inline password, a password in a URL) must be
        for this service's eyes only."""
        path = self.config_path
        inline = [
            f"{k.section}.{k.name}"
            for k in KEYS
            if k.secret
            and self.origin.get((k.section, k.name)) == "file"
            and isinstance(value := self.get(k.section, k.name), str)
            and value
            and (redact(value) != value if k.rule in (store_url, postgres_url) else True)
        ]
        if inline and path.is_file():
            yield from _exposed(path, f"{path.name} (holding {', '.join(inline)})")

    def require_files(self) -> None:
        """At startup (`serve`): the first file problem, as the error `config check` shows."""
        # `serve` never binds to the directory (without the password its write-backs are
        # queued for the sync, which alone has it: docs/deployment.md).
        for level, message in self.file_problems(skip=SERVE_SKIPS):
            if level == "error":
                raise ConfigError(message)

    def section(self, name: str) -> dict[str, Any]:
        if name not in BY_SECTION:
            raise KeyError(f"[{name}] is not declared in userphoto/config.py")
        return self.data.get(name, {})

    def get(self, section: str, key: str, default: Any = _UNSET) -> Any:
        """The configured value, else the declared default (or `default` when given)."""
        declared = BY_SECTION.get(section, {}).get(key)
        if declared is None:  # a bug: every key the code reads is declared in KEYS
            raise KeyError(f"{section}.{key} is not declared in userphoto/config.py")
        fallback = declared.default if default is _UNSET else default
        return self.section(section).get(key, fallback)

    @property
    def config_path(self) -> Path:
        return self.file or self.home / CONFIG_NAME

    @property
    def public_url(self) -> str:
        """`[server] public_url` without a trailing slash ("" when unset), checked: an
        absolute http(s) URL with no query or fragment."""
        raw = str(self.get("server", "public_url") or "").strip()
        problem = site_url(raw)
        if problem:
            raise ConfigError(f"[server] public_url {problem}")
        return raw.rstrip("/")

    @property
    def limits(self) -> Limits:
        return Limits(
            max_bytes=self.get("limits", "max_bytes"),
            max_pixels=self.get("limits", "max_pixels"),
            min_side=self.get("limits", "min_side"),
            job_memory=self.get("limits", "job_memory_mb") * 2**20,
            job_cpu_seconds=self._seconds("limits", "job_cpu_seconds"),
        )

    def _seconds(self, section: str, key: str) -> float:
        value = self.get(section, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{section}.{key} must be a number of seconds, not {value!r}")
        return float(value)

    @property
    def thumbnail_size(self) -> int:
        return self.get("photos", "thumbnail_size")

    @property
    def jpeg_quality(self) -> int:
        return self.get("photos", "jpeg_quality")

    @property
    def self_service(self) -> bool:
        return self.get("policy", "self_service")

    @property
    def check_policy(self) -> CheckPolicy:
        """The automatic photo checks' actions and thresholds (`[policy]`)."""
        return CheckPolicy(
            **{name: self.get("policy", f"check_{name}") for name in CHECK_NAMES},
            **{
                name: self.get("policy", name)
                for name in (
                    "face_size_min",
                    "face_size_max",
                    "sharpness_min",
                    "exposure_min",
                    "exposure_max",
                    "clipped_max",
                    "resolution_min",
                )
            },
        )

    @property
    def store_url(self) -> str:
        return self.get("store", "url") or f"sqlite:///{self.home / DB_NAME}"

    @property
    def store_read_url(self) -> str | None:
        """A PostgreSQL hot standby for reads ([store] read_url), if any."""
        return self.get("store", "read_url")

    def make_home(self) -> None:
        """The data folder, created for this user only (it holds the store and its secrets)."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write_default(self) -> bool:
        """Create the data folder and a commented config file; False if one existed."""
        self.make_home()
        if self.config_path.exists():
            return False
        # 0600 from the start: it will hold passwords once filled in.
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(default_toml())
        return True

    def effective(self) -> Iterator[tuple[Key, Any, str]]:
        """(key, value shown, origin) of every declared key; secrets masked."""
        for key in KEYS:
            value = self.get(key.section, key.name)
            yield key, mask(key, value), self.origin.get((key.section, key.name), "default")


NOT_SET, EMPTY = "(not set)", "(empty)"


def mask(key: Key, value: Any) -> Any:
    """A secret's value as it may be shown: never the secret itself, but whether it is set
    ("(not set)", "(empty)"); of a store URL, everything but its passwords."""
    if not key.secret:  # not a secret, but a URL may still carry a password
        if isinstance(value, list):
            return [_url_shown(v) for v in value]
        return _url_shown(value)
    if value is None:
        return NOT_SET
    if value == "":
        return EMPTY
    if key.rule in (store_url, postgres_url) and isinstance(value, str):
        return redact(value)
    return "********"


def _url_shown(value: Any) -> Any:
    return redact(value) if isinstance(value, str) and "://" in value else value


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _exposed(path: Path, what: str) -> Iterator[tuple[str, str]]:
    """A warning when group or others may read `path`."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o044:
        yield (
            "warning",
            f"{what}: {path} is readable by {'others' if mode & 0o004 else 'its group'} "
            f"(mode {mode:04o}); make it this service's only: chmod 600 {path}",
        )


# --- the two renderings of the declaration ----------------------------------------------------
def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if hasattr(value, "isoformat"):  # TOML dates and times, as written
        return str(value.isoformat())
    return toml_value(str(value))


def default_toml() -> str:
    """The userphoto.toml `init` writes: every key with its default, one line of help each."""
    lines = [
        "# userphoto settings: every key with its default (docs/configuration.md explains them).",
        "# Any key can be overridden by an environment variable USERPHOTO_<SECTION>_<KEY>,",
        "# e.g. USERPHOTO_LIMITS_MAX_BYTES=524288. `userphoto config check` validates both.",
    ]
    for section in SECTIONS:
        off = "# " if section.optional else ""
        lines += ["", f"# {section.help}", f"{off}[{section.name}]"]
        for key in BY_SECTION[section.name].values():
            unset = key.default is None
            shown = key.example if unset else key.default
            prefix = "# " if unset or section.optional else ""
            lines.append(f"# {key.help}" + (" (unset by default)" if unset else ""))
            lines.append(f"{prefix}{key.name} = {toml_value(shown)}")
    return "\n".join(lines) + "\n"


def markdown() -> str:
    """docs/configuration.md (regenerate with `userphoto config docs > docs/configuration.md`)."""
    out = [
        "# Configuration",
        "",
        "<!-- Generated from userphoto/config.py by `userphoto config docs`: edit that. -->",
        "",
        "Settings live in `userphoto.toml` in the data folder (`userphoto init` writes one with",
        "every key and its default). Every key is optional. Any key can be overridden by an",
        "environment variable `USERPHOTO_<SECTION>_<KEY>` (lists: a TOML array or",
        "comma-separated). An unknown section or key, in the file or the environment, is an",
        "error that names the closest known one. `userphoto config check` validates the file",
        "and the environment and prints the effective settings, secrets masked.",
        "",
        "Environment variables that are not settings:",
        "",
    ]
    out += [f"- `{var}`: {text}." for var, text in PROCESS_ENV.items()]
    for section in SECTIONS:
        out += ["", f"## [{section.name}]", "", section.help, ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key in BY_SECTION[section.name].values():
            default = "unset" if key.default is None else f"`{toml_value(key.default)}`"
            example = f" Example: `{toml_value(key.example)}`." if key.example is not None else ""
            meaning = f"{key.help}.{example} Environment: `{key.env}`."
            out.append(f"| `{key.name}` | {KIND_TEXT[key.kind]} | {default} | {meaning} |")
    return "\n".join(out) + "\n"
