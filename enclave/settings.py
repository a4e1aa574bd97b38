"""One frozen ``Settings`` for the whole enclave, read from ``ENCLAVE_`` variables and a TOML file.

Precedence, lowest first: the defaults below, the TOML file named by ``ENCLAVE_CONFIG`` (or
passed explicitly), then the environment. Tests construct ``Settings(...)`` directly. The object
is passed down explicitly; nothing reads the environment after start-up.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "ENCLAVE_"


class SettingsError(ValueError):
    """The configuration is invalid; ``str(error)`` names the setting and the problem."""


@dataclass(frozen=True)
class Settings:
    """Configuration of one enclave installation.

    ``database_url`` defaults to a SQLite file under ``<data_dir>/db/``. ``hub_url`` and
    ``hub_api_token`` switch on the mirroring of project memberships to JupyterHub groups.
    """

    data_dir: Path = Path(".enclave")
    database_url: str = ""
    secret_key: str = field(default="", repr=False)
    hub_url: str | None = None
    hub_api_token: str | None = field(default=None, repr=False)
    token_lifetime_days: int = 30

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if not self.database_url:
            path = self.data_dir / "db" / "enclave.sqlite3"
            object.__setattr__(self, "database_url", f"sqlite:///{path}")
        if self.token_lifetime_days < 1:
            raise SettingsError(
                f"token_lifetime_days must be at least 1; got {self.token_lifetime_days}"
            )
        if self.hub_url and not self.hub_api_token:
            raise SettingsError("hub_url is set but hub_api_token is missing")

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when the database is SQLite, else None."""
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and self.database_url != "sqlite:///:memory:":
            return Path(self.database_url[len(prefix) :])
        return None

    def require_secret_key(self) -> str:
        """Return the secret key; raises SettingsError when it is unset or shorter than 32."""
        if len(self.secret_key) < 32:
            raise SettingsError("ENCLAVE_SECRET_KEY must be set to at least 32 characters")
        return self.secret_key

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, config_file: Path | None = None
    ) -> Settings:
        """Read the TOML file (``config_file`` or ``$ENCLAVE_CONFIG``), then the environment.

        Raises SettingsError for an unreadable file, an unknown key or a malformed value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = config_file or (Path(env["ENCLAVE_CONFIG"]) if env.get("ENCLAVE_CONFIG") else None)
        if path is not None:
            values.update(_read_toml(path))
        known = {f.name for f in fields(cls)}
        for name in known:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw
        return cls(**{name: _coerce(name, value) for name, value in values.items()})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"cannot read settings file {path}: {error}") from error
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"unknown setting(s) in {path}: {', '.join(unknown)}")
    return data


def _coerce(name: str, value: Any) -> Any:
    if name == "data_dir":
        return Path(value)
    if name == "token_lifetime_days":
        try:
            return int(value)
        except (TypeError, ValueError) as error:
            raise SettingsError(f"token_lifetime_days must be an integer; got {value!r}") from error
    if not isinstance(value, str):
        raise SettingsError(f"setting {name} must be a string; got {value!r}")
    return value
