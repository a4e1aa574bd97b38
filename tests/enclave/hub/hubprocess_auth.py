"""A real JupyterHub 6 in a subprocess, for the authenticator and hardening tests.

``running_hub`` starts ``jupyterhub`` with the enclave's authenticator, JupyterHub's
``SimpleLocalProcessSpawner`` and configurable-http-proxy on free loopback ports, all state
under one temporary directory. ``Browser`` is a person with cookies who logs in through the
hub's real login form. ``sandbox_environment`` builds a throw-away Python environment (a venv
that sees this repository's packages) with ``install_hardening`` applied to its own
``sys.prefix``, as the sandbox's read-only environment would have it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import requests

from enclave.control.context import Context
from enclave.control.service import members, people
from enclave.hub.singleuser import install_hardening
from enclave.settings import Settings
from tests.enclave.control.factories import World

ROOT = Path(__file__).resolve().parents[3]
VENV = Path(sys.prefix)
CHP_VERSION = "5.3.0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def proxy_command(cache: Path) -> str:
    """configurable-http-proxy: on PATH, in the repository's node_modules, or installed with npm
    into ``cache`` (pinned to the version the spec was observed with)."""
    found = shutil.which("configurable-http-proxy")
    if found:
        return found
    for prefix in (VENV, ROOT, cache):
        candidate = prefix / "node_modules" / ".bin" / "configurable-http-proxy"
        if candidate.exists():
            return str(candidate)
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("configurable-http-proxy is missing and npm is not installed")
    subprocess.run(
        [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(cache),
            f"configurable-http-proxy@{CHP_VERSION}",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return str(cache / "node_modules" / ".bin" / "configurable-http-proxy")


def sandbox_environment(prefix: Path) -> Path:
    """A venv at ``prefix`` that imports this repository's packages (through a .pth file) and
    carries the enclave's hardening in its own ``etc/jupyter`` and ``share/jupyter``; returns
    its python. JupyterLab's built assets are linked from the test environment."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    python = prefix / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    here = Path(
        next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))
    )
    Path(site, "enclave-tests.pth").write_text(f"{here}\n{ROOT}\n", encoding="utf-8")
    shared = prefix / "share" / "jupyter"
    (shared / "lab").mkdir(parents=True)
    for name in ("kernels", "labextensions", "nbconvert"):
        if (VENV / "share" / "jupyter" / name).exists():
            (shared / name).symlink_to(VENV / "share" / "jupyter" / name)
    for name in ("static", "schemas", "themes"):
        (shared / "lab" / name).symlink_to(VENV / "share" / "jupyter" / "lab" / name)
    enabled = prefix / "etc" / "jupyter" / "jupyter_server_config.d"
    shutil.copytree(VENV / "etc" / "jupyter" / "jupyter_server_config.d", enabled)
    install_hardening(prefix)
    return python


@dataclass
class Hub:
    """A running hub: ``url`` is the public (proxy) address, ``token`` a service token with
    admin scopes over users, groups and servers."""

    url: str
    token: str
    directory: Path
    process: subprocess.Popen[bytes]

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=60, **kwargs
        )

    def groups_of(self, username: str) -> list[str]:
        response = self.api("GET", f"/users/{username}")
        response.raise_for_status()
        return sorted(response.json()["groups"])

    def log(self) -> str:
        return (self.directory / "hub.log").read_text(encoding="utf-8", errors="replace")


def _config(
    directory: Path,
    settings: Settings,
    spawner_python: Path,
    ports: tuple[int, int, int],
    token: str,
    chp: str,
    extra: str,
) -> str:
    proxy, hub, api = ports
    home = directory / "home" / "{username}"
    return f"""
from pathlib import Path
from enclave.settings import Settings

c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{proxy}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{directory / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret_file = "{directory / "cookie_secret"}"
c.JupyterHub.authenticator_class = "enclave.hub.authenticator.EnclaveAuthenticator"
c.ControlPlaneAccess.enclave_settings = Settings(
    data_dir=Path({str(settings.data_dir)!r}), database_url={settings.database_url!r}
)
c.JupyterHub.allow_named_servers = True
c.JupyterHub.default_url = "/hub/home"  # servers are per project; there is no default one
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = {str(home)!r}
c.Spawner.cmd = [{str(spawner_python)!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = {["--allow-root"] if os.geteuid() == 0 else []!r}  # test machines may run as root
c.Spawner.disable_user_config = True
# As for a sandbox user who does not own the environment: jupyter_core would otherwise
# prefer environment-level config just because the test owns the venv it made.
c.Spawner.environment = {{"JUPYTER_PREFER_ENV_PATH": "0"}}
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.JupyterHub.services = [{{"name": "probe", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "probe",
        "services": ["probe"],
        "scopes": ["admin:users", "admin:groups", "admin:servers", "read:users"],
    }}
]
{extra}
"""


@contextmanager
def running_hub(
    directory: Path,
    settings: Settings,
    spawner_python: Path,
    *,
    extra_config: str = "",
    ports: tuple[int, int, int] | None = None,
) -> Iterator[Hub]:
    """Start JupyterHub in ``directory`` and stop it (and its servers and proxy) afterwards.

    ``extra_config`` is appended to the generated config file; ``ports`` (public, hub, proxy
    API) are free loopback ports unless given."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "home").mkdir(exist_ok=True)
    ports = ports or (free_port(), free_port(), free_port())
    token = secrets.token_hex(32)
    chp = proxy_command(directory.parent / "chp")
    config = directory / "jupyterhub_config.py"
    config.write_text(
        _config(directory, settings, spawner_python, ports, token, chp, extra_config),
        encoding="utf-8",
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "LANG": "C.UTF-8",
    }
    with (directory / "hub.log").open("wb") as log:
        process = subprocess.Popen(
            [str(VENV / "bin" / "jupyterhub"), "-f", str(config)],
            cwd=directory,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    hub = Hub(f"http://127.0.0.1:{ports[0]}", token, directory, process)
    try:
        _wait_ready(hub)
        yield hub
    finally:
        _stop(process)


def _wait_ready(hub: Hub, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.process.poll() is not None:
            raise RuntimeError(f"jupyterhub exited early:\n{hub.log()[-4000:]}")
        try:
            if requests.get(f"{hub.url}/hub/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"jupyterhub did not become ready:\n{hub.log()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with suppress(ProcessLookupError):  # the proxy, if the hub left it behind
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def totp_code(secret: str, steps_ahead: int = 0) -> str:
    """The code of ``secret`` for the current time step, or one step later (a second login
    within 30 seconds needs a fresh step: the control plane refuses a replayed code)."""
    return str(pyotp.TOTP(secret).at(int(time.time()) + 30 * steps_ahead))


LOGIN_ERROR = re.compile(r'<p class="login_error">(.*?)</p>', re.S)
XSRF_FIELD = re.compile(r'name="_xsrf" value="([^"]+)"')


@dataclass
class Browser:
    """One person's cookie jar, driving the hub as a browser would (form posts, redirects)."""

    hub: Hub
    session: requests.Session = field(default_factory=requests.Session)

    def login(self, username: str, password: str, code: str) -> requests.Response:
        """POST the hub's login form; the response is not redirected (302 on success)."""
        page = self.session.get(f"{self.hub.url}/hub/login", timeout=30)
        match = XSRF_FIELD.search(page.text)
        assert match, "the login form has no _xsrf field"
        return self.session.post(
            f"{self.hub.url}/hub/login",
            data={"username": username, "password": password, "otp": code, "_xsrf": match[1]},
            allow_redirects=False,
            timeout=60,
        )

    def xsrf(self, path: str = "/hub/") -> str:
        value = self.session.cookies.get("_xsrf", path=path)
        assert value, f"no _xsrf cookie for {path}"
        return str(value)

    def hub_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The hub's REST API with the login cookie and its xsrf header, as the web UI calls it."""
        headers = {"X-XSRFToken": self.xsrf()}
        return self.session.request(
            method, f"{self.hub.url}/hub/api{path}", headers=headers, timeout=150, **kwargs
        )


def login_error(response: requests.Response) -> str:
    """The message the login form shows after a refused login ('' when there is none)."""
    match = LOGIN_ERROR.search(response.text)
    return match[1].strip() if match else ""


PASSWORD = "a long enough passphrase"


def enrol(
    ctx: Context,
    world: World,
    email: str,
    *,
    accredited: bool = True,
    projects_: tuple[str, ...] = (),
) -> str:
    """A researcher with a password and TOTP (returns the TOTP secret), accredited unless told
    otherwise, and a member of ``projects_``."""
    if email != world.researcher:
        people.create_person(
            ctx, world.admin, email=email, name="R", organisation="Org", roles=["researcher"]
        )
        if accredited:
            today = ctx.today()
            people.accredit(
                ctx,
                world.admin,
                email,
                scheme="Safe Researcher",
                reference="SR-1",
                issued_on=today - timedelta(days=10),
                expires_on=today + timedelta(days=300),
            )
    for slug in projects_:
        members.add_member(
            ctx,
            world.admin,
            project=slug,
            email=email,
            role="researcher",
            expires_on=ctx.today() + timedelta(days=200),
        )
    people.set_password(ctx, world.admin, email, PASSWORD)
    return people.enrol_totp(ctx, world.admin, email).secret
