"""`[directory]` settings, parsed and checked once. The key names are the documented contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, Settings

WRITEBACK_SIZES = (48, 64, 96)


@dataclass(frozen=True)
class AccountState:
    """How the directory says an account is disabled (AD: userAccountControl bit 0x2)."""

    attribute: str | None = None
    disabled_bits: int = 0  # any of these bits set in an integer attribute -> disabled
    disabled_values: tuple[str, ...] = ()  # or one of these (case-insensitive) string values


AD_ACCOUNT_STATE = AccountState("userAccountControl", disabled_bits=0x2)


@dataclass(frozen=True)
class DirectoryConfig:
    uris: tuple[str, ...]
    base_dn: str
    bind_dn: str | None = None
    # Never printed: repr=False keeps it out of logs, tracebacks and `sync --status`.
    bind_password: str | None = field(default=None, repr=False)
    user_filter: str | None = None  # None: a flavour default
    id_attribute: str | None = None  # None: objectGUID on AD, entryUUID otherwise
    mail_attribute: str = "mail"
    name_attribute: str = "displayName"
    photo_attribute: str = "thumbnailPhoto"
    account_state: AccountState | None = None  # None: AD default on AD, nothing otherwise
    starttls: bool = False
    ca_file: str | None = None
    tls_verify: bool = True  # false only for a test directory with a self-signed certificate
    writeback: bool = False
    writeback_size: int = 96
    delete_guard: float = 0.10
    # Operational knobs (not part of the contract, all optional).
    timeout: float = 10.0  # seconds, per connect and per operation
    retries: int = 3  # attempts per run before the directory counts as down
    backoff: float = 1.0  # first retry delay, doubled each time
    page_size: int = 500
    watch_interval: float = 1.0  # seconds between delta polls under --watch
    full_interval: float = 900.0  # seconds between full reconciliations under --watch
    dirsync: bool = True  # AD: use the DirSync control for deltas when the server offers it
    notify: bool = True  # AD: wake --watch on change notifications, not only by polling
    syncrepl: bool = True  # --watch: RFC 4533 refreshAndPersist when the server offers it
    # Why this process cannot bind ("" when it can): a serving node loads the section without
    # the bind password the guide gives only to `sync` (its write-backs then go to the queue).
    unbound: str = ""

    @property
    def ldaps(self) -> bool:
        return any(u.lower().startswith("ldaps://") for u in self.uris)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, need_password: bool = True
    ) -> DirectoryConfig | None:
        """The `[directory]` section, or None when no directory is configured.
        `need_password=False`: an unreadable `bind_password_file` is no error (`unbound`)."""
        raw = settings.section("directory")
        if not raw or not raw.get("uri"):
            return None
        return cls.from_dict(raw, settings.home, need_password=need_password)

    @classmethod
    def from_dict(
        cls, raw: dict[str, Any], home: Path | None = None, *, need_password: bool = True
    ) -> DirectoryConfig:
        def get(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
            value = raw.get(key, default)
            if value is not None and not isinstance(value, kind):
                raise ConfigError(f"directory.{key} has the wrong type: {type(value).__name__}")
            return value

        uri = raw.get("uri")
        if isinstance(uri, str):
            uris = tuple(u for u in uri.replace(",", " ").split() if u)
        elif isinstance(uri, list) and all(isinstance(u, str) for u in uri):
            uris = tuple(uri)
        else:
            raise ConfigError("directory.uri must be a URI or a list of URIs (failover in order)")
        for u in uris:
            if not u.lower().startswith(("ldap://", "ldaps://")):
                raise ConfigError(f"directory.uri {u!r} must start with ldap:// or ldaps://")
        base_dn = get("base_dn", str, None)
        if not base_dn:
            raise ConfigError('directory.base_dn is required (e.g. "dc=contoso,dc=example")')

        password = get("bind_password", str, None)
        password_file = get("bind_password_file", str, None)
        unbound = ""
        if password_file:
            path = Path(password_file).expanduser()
            if not path.is_absolute() and home is not None:
                path = home / path
            try:
                password = path.read_text().rstrip("\r\n")
            except OSError as exc:
                unbound = f"directory.bind_password_file {path} cannot be read: {exc.strerror}"
                if need_password:
                    raise ConfigError(unbound) from None

        size = get("writeback_size", int, 96)
        if size not in WRITEBACK_SIZES:
            raise ConfigError(f"directory.writeback_size must be one of {WRITEBACK_SIZES}")
        guard = get("delete_guard", (int, float), 0.10)
        if not 0 <= guard <= 1:
            raise ConfigError("directory.delete_guard is a fraction between 0 and 1")
        photo_attribute = get("photo_attribute", str, "thumbnailPhoto")
        if photo_attribute.lower() not in ("thumbnailphoto", "jpegphoto"):
            raise ConfigError("directory.photo_attribute must be thumbnailPhoto or jpegPhoto")

        return cls(
            uris=uris,
            base_dn=base_dn,
            bind_dn=get("bind_dn", str, None),
            bind_password=password,
            user_filter=get("user_filter", str, None),
            id_attribute=get("id_attribute", str, None),
            mail_attribute=get("mail_attribute", str, "mail"),
            name_attribute=get("name_attribute", str, "displayName"),
            photo_attribute=photo_attribute,
            account_state=_account_state(raw.get("account_state")),
            starttls=get("starttls", bool, False),
            ca_file=get("ca_file", str, None),
            tls_verify=get("tls_verify", bool, True),
            writeback=get("writeback", bool, False),
            writeback_size=size,
            delete_guard=float(guard),
            timeout=float(get("timeout", (int, float), 10.0)),
            retries=max(1, get("retries", int, 3)),
            backoff=float(get("backoff", (int, float), 1.0)),
            page_size=max(1, get("page_size", int, 500)),
            watch_interval=float(get("watch_interval", (int, float), 1.0)),
            full_interval=float(get("full_interval", (int, float), 900.0)),
            dirsync=get("dirsync", bool, True),
            notify=get("notify", bool, True),
            syncrepl=get("syncrepl", bool, True),
            unbound=unbound,
        )


def _account_state(raw: Any) -> AccountState | None:
    """`account_state = { attribute = "userAccountControl", disabled_bits = 2 }` or
    `{ attribute = "nsAccountLock", disabled_values = ["TRUE"] }`."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("attribute"), str):
        raise ConfigError(
            "directory.account_state must be a table with `attribute` and `disabled_bits` "
            "or `disabled_values`"
        )
    bits = raw.get("disabled_bits", 0)
    values = raw.get("disabled_values", [])
    if isinstance(values, str):
        values = [values]
    if not isinstance(bits, int) or not isinstance(values, list):
        raise ConfigError(
            "directory.account_state: disabled_bits is an integer, "
            "disabled_values a list of strings"
        )
    return AccountState(raw["attribute"], bits, tuple(str(v).lower() for v in values))
