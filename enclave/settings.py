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
# The kinds of a project's compliance records (``enclave.control.standing.PROJECT_KINDS``).
PROJECT_COMPLIANCE_KINDS = frozenset({"dsa", "ethics", "funding", "dpia"})
LISTS = frozenset({"required_project_compliance", "required_training"})
INTEGERS = frozenset({"token_lifetime_days", "compliance_warning_days"})
FLAGS = frozenset({"organisation_assurance_required"})


class SettingsError(ValueError):
    """The configuration is invalid; ``str(error)`` names the setting and the problem."""


@dataclass(frozen=True)
class Settings:
    """Configuration of one enclave installation.

    ``database_url`` defaults to a SQLite file under ``<data_dir>/db/``. ``hub_url`` and
    ``hub_api_token`` switch on the mirroring of project memberships to JupyterHub groups.

    The standing policy (``enclave.control.standing.StandingPolicy``): compliance items every
    project needs in force, training courses every researcher needs, whether every person's
    organisation needs a current assurance record, the user-agreement version people must
    have accepted, and how many days before an expiry it is reported. The defaults keep an
    installation that records none of these working; production should set
    ``required_training``, ``organisation_assurance_required = true`` and
    ``user_agreement_version`` (see docs/control-plane.md, "Compliance and standing").
    In the environment, lists are comma-separated and booleans ``true`` or ``false``.
    """

    data_dir: Path = Path(".enclave")
    database_url: str = ""
    secret_key: str = field(default="", repr=False)
    hub_url: str | None = None
    hub_api_token: str | None = field(default=None, repr=False)
    token_lifetime_days: int = 30
    required_project_compliance: tuple[str, ...] = ("dsa", "ethics")
    required_training: tuple[str, ...] = ()
    organisation_assurance_required: bool = False
    user_agreement_version: str = ""
    compliance_warning_days: int = 30

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
        for name in LISTS:  # Settings(...) in code may pass lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = sorted(set(self.required_project_compliance) - PROJECT_COMPLIANCE_KINDS)
        if unknown:
            raise SettingsError(
                f"required_project_compliance: unknown kind(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(PROJECT_COMPLIANCE_KINDS))}"
            )
        if self.compliance_warning_days < 0:
            raise SettingsError(
                f"compliance_warning_days must not be negative; got {self.compliance_warning_days}"
            )

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
    if name in INTEGERS:
        try:
            return int(value)
        except (TypeError, ValueError) as error:
            raise SettingsError(f"{name} must be an integer; got {value!r}") from error
    if name in LISTS:
        return _as_list(name, value)
    if name in FLAGS:
        return _as_flag(name, value)
    if not isinstance(value, str):
        raise SettingsError(f"setting {name} must be a string; got {value!r}")
    return value


def _as_list(name: str, value: Any) -> tuple[str, ...]:
    """A TOML list of strings, or a comma-separated string (from the environment)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SettingsError(f"setting {name} must be a list of strings; got {value!r}")
    return tuple(i.strip() for i in items if i.strip())


def _as_flag(name: str, value: Any) -> bool:
    """A TOML boolean, or ``true``/``false`` (also 1/0, yes/no) from the environment."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no", ""}:
        return False
    raise SettingsError(f"setting {name} must be true or false; got {value!r}")
