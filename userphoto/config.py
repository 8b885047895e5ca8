"""Settings: `$USERPHOTO_HOME/userphoto.toml`, overridden by `USERPHOTO_<SECTION>_<KEY>` variables.

Every section is optional; an absent file means all defaults. Later features add their own
sections (`[directory]`, `[server]`, ...) and read them through `Settings.section(name)`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserPhotoError
from .imaging import Limits

CONFIG_NAME = "userphoto.toml"
DB_NAME = "userphoto.db"

DEFAULT_CONFIG = """\
# userphoto settings. Every key is optional; the values shown are the defaults.
# Any key can be overridden by an environment variable USERPHOTO_<SECTION>_<KEY>,
# e.g. USERPHOTO_LIMITS_MAX_BYTES=524288.

[limits]
max_bytes = 4194304      # largest upload accepted (Graph's limit; Exchange Online used 500 KB)
max_pixels = 50000000    # refused from the header, before decoding
min_side = 48            # smaller photos are refused rather than upscaled into blur

[photos]
thumbnail_size = 96      # the directory thumbnail (AD thumbnailPhoto), JPEG <= 100 KB
jpeg_quality = 85

[policy]
self_service = true      # members may change their own photo (the modeled SetPhotoEnabled)

[server]
host = "127.0.0.1"
port = 8080

[store]
# url = "postgresql://user@host/db"   # default: SQLite in this folder
# read_url = "postgresql://user@standby/db"   # PostgreSQL: a hot standby serves reads

# [directory]                          # LDAP / Active Directory sync (README: Directory)
# uri = ["ldaps://dc1.contoso.example", "ldaps://dc2.contoso.example"]
# bind_dn = "CN=userphoto,OU=Service,DC=contoso,DC=example"
# bind_password_file = "bind-password"
# base_dn = "DC=contoso,DC=example"
# writeback = false                    # true: HD photos are written back to thumbnailPhoto
# writeback_size = 96                  # 48, 64 or 96
# delete_guard = 0.10                  # refuse to mark more than 10% of users gone at once
"""


class ConfigError(UserPhotoError):
    code = "config"


def default_home() -> Path:
    env = os.environ.get("USERPHOTO_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "userphoto"


@dataclass
class Settings:
    home: Path
    data: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, home: Path | str | None = None) -> Settings:
        home = Path(home).expanduser() if home else default_home()
        data: dict[str, dict[str, Any]] = {}
        path = home / CONFIG_NAME
        if path.exists():
            try:
                data = tomllib.loads(path.read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        for key, value in os.environ.items():
            if key.startswith("USERPHOTO_") and key != "USERPHOTO_HOME":
                section, _, name = key[len("USERPHOTO_") :].lower().partition("_")
                if name:
                    data.setdefault(section, {})[name] = _parse_env(value)
        return cls(home, data)

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] in {self.config_path} must be a table")
        return value

    def get(self, section: str, key: str, default: Any) -> Any:
        value = self.section(section).get(key, default)
        if default is not None and not isinstance(value, type(default)):
            if isinstance(default, bool) or not isinstance(default, int | float):
                raise ConfigError(
                    f"{section}.{key} in {self.config_path} must be "
                    f"{type(default).__name__}, not {value!r}"
                )
            raise ConfigError(f"{section}.{key} must be a number, not {value!r}")
        return value

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_NAME

    @property
    def limits(self) -> Limits:
        d = Limits()
        return Limits(
            max_bytes=self.get("limits", "max_bytes", d.max_bytes),
            max_pixels=self.get("limits", "max_pixels", d.max_pixels),
            min_side=self.get("limits", "min_side", d.min_side),
        )

    @property
    def thumbnail_size(self) -> int:
        return self.get("photos", "thumbnail_size", 96)

    @property
    def jpeg_quality(self) -> int:
        return self.get("photos", "jpeg_quality", 85)

    @property
    def self_service(self) -> bool:
        return self.get("policy", "self_service", True)

    @property
    def store_url(self) -> str:
        return self.get("store", "url", f"sqlite:///{self.home / DB_NAME}")

    @property
    def store_read_url(self) -> str | None:
        """A PostgreSQL hot standby for reads ([store] read_url), if any."""
        return self.get("store", "read_url", None)

    def write_default(self) -> bool:
        """Create the data folder and a commented config file; False if one existed."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.config_path.exists():
            return False
        self.config_path.write_text(DEFAULT_CONFIG)
        return True


def _parse_env(value: str) -> Any:
    """Environment values are TOML scalars when they parse as one, else plain strings."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value
