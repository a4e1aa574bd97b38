"""What ``enclave up`` will do, decided without side effects: the data directory's layout,
the hub's environment, the missing prerequisites and the text shown to the operator."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from enclave.hub.config import QUEUE


@dataclass(frozen=True)
class Layout:
    """Everything under one data directory (the control plane's own files included)."""

    data_dir: Path

    @property
    def secrets(self) -> Path:
        """Secret key, hub API token (0600 files in a 0700 directory)."""
        return self.data_dir / "secrets"

    @property
    def secret_key(self) -> Path:
        return self.secrets / "secret-key"

    @property
    def hub_api_token(self) -> Path:
        return self.secrets / "hub-api-token"

    @property
    def hub_state(self) -> Path:
        """The hub's database, cookie secret and proxy pid file."""
        return self.data_dir / "hub"

    @property
    def cookie_secret(self) -> Path:
        return self.hub_state / "jupyterhub_cookie_secret"

    @property
    def proxy_pid(self) -> Path:
        return self.hub_state / "proxy.pid"

    @property
    def run_dir(self) -> Path:
        """Unix sockets (hub, proxy API, sessions): traversable by the session accounts."""
        return self.data_dir / "run"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def session_env(self) -> Path:
        return self.data_dir / "session-env"

    @property
    def provisioned(self) -> Path:
        """Written once the demo credentials have been printed (holds no secret)."""
        return self.data_dir / "up-credentials-printed"


@dataclass(frozen=True)
class Credential:
    """A demo account's credentials, shown once."""

    role: str
    email: str
    username: str
    password: str
    totp_secret: str
    totp_uri: str


@dataclass(frozen=True)
class Urls:
    public: str

    @property
    def hub_login(self) -> str:
        return f"{self.public}/hub/login"

    @property
    def queue(self) -> str:
        return f"{self.public}/services/{QUEUE}/"


def missing(*, euid: int, which: Callable[[str], str | None], chp: Path) -> tuple[list[str], bool]:
    """What is missing, as sentences naming the fix, and whether running as root fixes all
    of it (``enclave up`` then installs bubblewrap itself)."""
    problems: list[str] = []
    only_root = True
    if euid != 0:
        problems.append(
            "root is needed (Unix accounts per researcher, cgroups, the setuid sandbox): "
            "run `sudo make up` or `sudo .venv/bin/enclave up`"
        )
    if which("bwrap") is None:
        problems.append(
            "bubblewrap is missing: `apt-get install bubblewrap` (done for you as root)"
        )
    if not chp.exists() and which("configurable-http-proxy") is None:
        problems.append("configurable-http-proxy is missing: `make chp` (needs Node >= 20 and npm)")
        only_root = False
    return problems, only_root


def population(data_dir: Path, given: int | None, default: int = 40_000) -> int:
    """The demonstration's population: ``given``, else the one already built here (so that
    a second run never asks for another), else ``default``."""
    if given is not None:
        return given
    stamp = data_dir / "demo.json"
    if stamp.exists():
        found = json.loads(stamp.read_text(encoding="utf-8")).get("population")
        if isinstance(found, int):
            return found
    return default


def stale_checker_demo(data_dir: Path) -> str | None:
    """A sentence when ``data_dir`` holds only the earlier ``make up`` output (the checker
    demonstration in ``demo/``), which the demonstration build would refuse."""
    if (data_dir / "demo.json").exists() or not data_dir.is_dir():
        return None
    if sorted(p.name for p in data_dir.iterdir()) == ["demo"]:
        return (
            f"{data_dir} holds the output of an earlier `make up` (the checker demo in "
            f"demo/): remove it with `rm -r {data_dir / 'demo'}` and run again"
        )
    return None


def hub_environment(
    layout: Layout,
    *,
    path: str,
    port: int,
    queue_port: int,
    hub_api_token: str,
    session_env: Path,
    chp: str,
    database_url: str = "",
) -> dict[str, str]:
    """The jupyterhub process's whole environment (nothing else of ours leaks in)."""
    env = {
        "PATH": path,
        "LANG": "C.UTF-8",
        "HOME": str(layout.hub_state),
        "ENCLAVE_DATA_DIR": str(layout.data_dir),
        "ENCLAVE_HUB_URL": f"http://127.0.0.1:{port}/hub/api",
        "ENCLAVE_HUB_API_TOKEN": hub_api_token,
        "ENCLAVE_HUB_RUN_DIR": str(layout.run_dir),
        "ENCLAVE_HUB_STATE_DIR": str(layout.hub_state),
        "ENCLAVE_HUB_PUBLIC_PORT": str(port),
        "ENCLAVE_HUB_PYTHON_ENVIRONMENT": str(session_env),
        "ENCLAVE_HUB_CHP_COMMAND": chp,
        "ENCLAVE_HUB_QUEUE_PORT": str(queue_port),
        "ENCLAVE_HUB_QUEUE_SECRET_FILE": str(layout.secret_key),
    }
    if database_url:
        env["ENCLAVE_DATABASE_URL"] = database_url
    return env


def credentials_text(found: Sequence[Credential]) -> list[str]:
    """The one-time credentials block."""
    lines = [
        "",
        "Demo accounts (printed this once; nothing stores them in plain text: note them now).",
        "Add each TOTP secret to an authenticator app (or `oathtool --totp -b SECRET`).",
    ]
    for c in found:
        lines += [
            f"  {c.role:<15} login {c.username:<10} email {c.email}",
            f"  {'':<15} password    {c.password}",
            f"  {'':<15} TOTP secret {c.totp_secret}",
            f"  {'':<15} TOTP URI    {c.totp_uri}",
        ]
    return [*lines, ""]


def reused_text(admin: str, emails: Sequence[str]) -> list[str]:
    """What a second run says instead of the credentials."""
    return [
        "Demo accounts: their credentials were printed by the first `make up` and are not "
        "shown again. To reset one:",
        f"  .venv/bin/enclave admin set-password --as {admin} EMAIL   (password on stdin)",
        f"  .venv/bin/enclave admin enrol-totp --as {admin} EMAIL",
        f"  accounts: {', '.join(emails)}",
    ]


def ready_text(urls: Urls, log: Path) -> list[str]:
    return [
        "",
        "The enclave is running.",
        f"  Hub (researchers):  {urls.hub_login}",
        f"  Review queue:       {urls.queue}",
        f"  Logs:               {log}",
        "Press Ctrl-C to stop everything.",
    ]
