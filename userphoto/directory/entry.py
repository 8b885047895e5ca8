"""Turn one raw directory entry into the values userphoto keeps. Pure: no I/O.

Directory attributes other features match on (bulk import: `{first}.{last}`, `{employeeID}`,
`{sAMAccountName}`) land in `User.attributes` as strings.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass

from ..model import Account, is_address, normalize_address
from .client import Attrs
from .config import AD_ACCOUNT_STATE, AccountState, DirectoryConfig

# Attributes copied into User.attributes when present (name in the directory -> key).
COPIED = ("givenName", "sn", "employeeID", "sAMAccountName")
_COPIED_NAMES = tuple((key, key.lower()) for key in COPIED)  # key, and its name in Attrs
# Keys of User.attributes this package owns; everything else there belongs to others.
OWNED_KEYS = (*COPIED, "dn", "directory_id", "directory_changed", "directory_disabled")


@dataclass(frozen=True)
class Flavour:
    """What the server is, decided once per connection from its root DSE."""

    is_ad: bool
    id_attribute: str
    user_filter: str
    account_state: AccountState | None

    @classmethod
    def of(cls, config: DirectoryConfig, is_ad: bool) -> Flavour:
        return cls(
            is_ad=is_ad,
            id_attribute=config.id_attribute or ("objectGUID" if is_ad else "entryUUID"),
            user_filter=config.user_filter
            or (
                "(&(objectCategory=person)(objectClass=user))"
                if is_ad
                else "(objectClass=inetOrgPerson)"
            ),
            account_state=config.account_state or (AD_ACCOUNT_STATE if is_ad else None),
        )

    def attributes(self, config: DirectoryConfig) -> list[str]:
        """Everything one search asks for (servers ignore names they do not know)."""
        names = [
            self.id_attribute,
            config.mail_attribute,
            config.name_attribute,
            config.photo_attribute,
            "cn",
            "proxyAddresses",
            "modifyTimestamp",
            "whenChanged",
            "uSNChanged",
            *COPIED,
        ]
        if self.account_state and self.account_state.attribute:
            names.append(self.account_state.attribute)
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class DirectoryUser:
    """The userphoto view of one directory entry."""

    directory_id: str
    dn: str
    address: str
    aliases: tuple[str, ...]
    display_name: str
    disabled: bool
    attributes: dict[str, str]
    photo: bytes | None  # raw attribute value, unvalidated
    changed: str  # modifyTimestamp / whenChanged, as the server wrote it
    usn: int | None


class EntryProblem(ValueError):
    """The entry cannot become a user (no id, no usable mail address)."""


def _first(attrs: Attrs, name: str) -> bytes | None:
    values = attrs.get(name.lower())
    return values[0] if values else None


def _text(attrs: Attrs, name: str) -> str | None:
    raw = _first(attrs, name)
    if raw is None:
        return None
    return raw.decode("utf-8", errors="replace").strip() or None


def directory_id(attrs: Attrs, id_attribute: str) -> str | None:
    raw = _first(attrs, id_attribute)
    if raw is None:
        return None
    if id_attribute.lower() == "objectguid" and len(raw) == 16:
        return str(uuid.UUID(bytes_le=raw))  # AD's GUID byte order, printed as AD shows it
    return raw.decode("utf-8", errors="replace").strip().lower()


def parse(dn: str, attrs: Attrs, config: DirectoryConfig, flavour: Flavour) -> DirectoryUser:
    # Runs once per entry of a full read (10,000s at a time): attribute lookups are inlined
    # rather than going through _text() for each name.
    get = attrs.get
    did = directory_id(attrs, flavour.id_attribute)
    if not did:
        raise EntryProblem(f"{dn}: no {flavour.id_attribute}, so it cannot be tracked")
    mail = _text(attrs, config.mail_attribute)
    if not mail or not is_address(mail):
        raise EntryProblem(f"{dn}: no usable {config.mail_attribute} ({mail!r})")
    address = normalize_address(mail)
    aliases: set[str] = set()
    for value in get("proxyaddresses", ()):
        text = value.decode("utf-8", errors="replace").strip()
        if text[:5].lower() == "smtp:" and is_address(text[5:]):
            aliases.add(normalize_address(text[5:]))
    aliases.discard(address)

    extra: dict[str, str] = {}
    for key, name in _COPIED_NAMES:
        values = get(name)
        if values and (text := values[0].decode("utf-8", errors="replace").strip()):
            extra[key] = text
    extra["dn"] = dn
    extra["directory_id"] = did
    changed = _text(attrs, "modifytimestamp") or _text(attrs, "whenchanged") or ""
    if changed:
        extra["directory_changed"] = changed
    disabled = _is_disabled(attrs, flavour.account_state)
    if disabled:
        extra["directory_disabled"] = "1"
    usn = _text(attrs, "usnchanged")
    name = _text(attrs, config.name_attribute) or _text(attrs, "cn") or address
    return DirectoryUser(
        directory_id=did,
        dn=dn,
        address=address,
        aliases=tuple(sorted(aliases)),
        display_name=name,
        disabled=disabled,
        attributes=extra,
        photo=_first(attrs, config.photo_attribute),
        changed=changed,
        usn=int(usn) if usn and usn.isdigit() else None,
    )


def _is_disabled(attrs: Attrs, state: AccountState | None) -> bool:
    if state is None or not state.attribute:
        return False
    value = _text(attrs, state.attribute)
    if value is None:
        return False
    if state.disabled_bits and value.lstrip("-").isdigit():
        return bool(int(value) & state.disabled_bits)
    return value.lower() in state.disabled_values


def account_for(user_disabled: bool, current: Account, was_disabled_by_us: bool) -> Account:
    """Directory-disabled -> disabled; re-enabled -> hd; an admin's own choice stays."""
    if user_disabled:
        return Account.DISABLED
    if current is Account.DISABLED and was_disabled_by_us:
        return Account.HD
    return current


_B64 = re.compile(rb"^(data:image/[a-z]+;base64,)?[A-Za-z0-9+/=\s]+$")


def unwrap_base64(raw: bytes) -> bytes | None:
    """The image inside a value that holds base64 text instead of bytes, else None.

    A classic: scripts that write `[Convert]::ToBase64String(...)` into thumbnailPhoto.
    """
    if len(raw) < 16 or not _B64.match(raw[:4096]) or not _B64.match(raw):
        return None
    text = raw.split(b",", 1)[1] if raw.startswith(b"data:") else raw
    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
