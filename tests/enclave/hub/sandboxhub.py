"""A real sandboxed hub for the tests: JupyterHub 6 with ``BwrapSpawner``, configurable-http-proxy
on unix sockets, and a control plane holding two projects and two researchers.

Needs root (Unix accounts, cgroups, setuid), bubblewrap (installed with apt when missing, as
``tests/browser.py`` does for chromium) and a session environment readable by the session
accounts: the hub's own venv when it is, else one built once with Debian's ``python3`` under
``<venv>/session-env`` (about a minute, then cached).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.control.hub import sync_hub
from enclave.control.service import members, people
from enclave.hub.cgroups import Cgroup, CgroupManager
from enclave.settings import Settings
from tests import debian
from tests.enclave.control.factories import World, make_project, make_world

ROOT = Path(__file__).resolve().parents[3]
VENV = Path(sys.prefix)
SESSION_ENV = VENV / "session-env"
LOCK = Path("/tmp/enclave-hub-test-setup.lock")
CHP = VENV / "node_modules" / ".bin" / "configurable-http-proxy"
CONFIG = ROOT / "enclave" / "hub" / "jupyterhub_config.py"
# the session environment's pins; other packages follow constraints.txt where they install
SESSION_PACKAGES = ("jupyterhub==6.1.1", "jupyterlab==4.6.6", "ipykernel", "pandas")
OTHER = "other@example.org"  # a second researcher, on the first project only


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the sandbox tests need root (Unix accounts, cgroups, setuid)")


def _apt_install(package: str, binary: str) -> None:
    debian.install(package, recommends=True)
    if not shutil.which(binary):
        pytest.fail(f"apt-get installed no {binary}")


def bwrap() -> str:
    """bubblewrap, installed with apt-get first when missing."""
    found = shutil.which("bwrap")
    if found:
        return found
    with LOCK.open("w") as lock:  # xdist workers must not run apt at the same time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not shutil.which("bwrap"):
            _apt_install("bubblewrap", "bwrap")
    return shutil.which("bwrap") or pytest.fail("no bwrap")


def proxy() -> str:
    """The proxy ``make chp`` installs; installed here when a test runs without make."""
    if not CHP.exists():
        with LOCK.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not CHP.exists():
                subprocess.run(
                    ["npm", "install", "--prefix", str(VENV), "--no-audit", "--no-fund",
                     "configurable-http-proxy@5.3.0"],
                    check=True, capture_output=True, timeout=600,
                )  # fmt: skip
    return str(CHP)


def _world_readable(path: Path) -> bool:
    """Can any user reach (o+x on every ancestor) and read ``path``?"""
    path = path.resolve()
    for level in (path, *path.parents):
        if not level.stat().st_mode & 0o001:
            return False
    return bool(path.stat().st_mode & 0o004)


def session_environment() -> Path:
    """A Python environment the session accounts can run: the hub's own when readable,
    else ``<venv>/session-env`` built with the system's python3."""
    base = Path(sys.base_prefix) / "lib"
    if _world_readable(VENV) and _world_readable(base):
        return VENV
    stamp = SESSION_ENV / ".enclave-stamp"
    want = hashlib.sha256(" ".join(SESSION_PACKAGES).encode()).hexdigest()
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == want:
            return SESSION_ENV
        shutil.rmtree(SESSION_ENV, ignore_errors=True)
        if subprocess.run(["/usr/bin/python3", "-m", "venv", str(SESSION_ENV)]).returncode:
            _apt_install("python3-venv", "python3")
            subprocess.run(["/usr/bin/python3", "-m", "venv", str(SESSION_ENV)], check=True)
        pip = [str(SESSION_ENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
        pins = ROOT / "constraints.txt"
        quiet = {"capture_output": True, "text": True}
        if subprocess.run([*pip, "-c", str(pins), *SESSION_PACKAGES], **quiet).returncode:
            # some pins need a newer interpreter than the system's: keep the named ones only
            done = subprocess.run([*pip, *SESSION_PACKAGES], **quiet)
            if done.returncode:
                pytest.fail(f"cannot build the session environment:\n{done.stderr[-3000:]}")
        # jsonschema's optional rfc3987-syntax builds a grammar at import: 3 s per spawn
        subprocess.run([str(SESSION_ENV / "bin" / "pip"), "uninstall", "-y", "-q",
                        "rfc3987-syntax"], check=False)  # fmt: skip
        stamp.write_text(want)
    return SESSION_ENV


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def build_control_plane(data_dir: Path, extra: int = 0) -> tuple[Settings, World]:
    """Projects ``alpha`` and ``beta`` (each with an extract), the world's researcher on both,
    a second researcher (username ``other``) on ``alpha`` only, and ``extra`` more researchers
    on ``alpha`` (``r01``, ``r02``, ...) for the benchmark."""
    (data_dir / "db").mkdir(parents=True)
    settings = Settings(data_dir=data_dir, hub_api_token=secrets.token_hex(32))
    engine = make_engine(settings.database_url)
    upgrade(engine)
    ctx = Context(engine=engine, data_dir=data_dir)
    try:
        world = make_world(ctx)
        for slug in ("alpha", "beta"):
            make_project(ctx, world, slug, "active")
            extract = data_dir / "projects" / slug / "data"
            extract.mkdir(parents=True)
            (extract / "extract.csv").write_text(f"secret,{slug}-only-marker\n")
            (extract / "extract.csv").chmod(0o444)
        today = ctx.today()
        extras = [(f"r{i:02d}@example.org", f"r{i:02d}") for i in range(1, extra + 1)]
        for email, username in [(OTHER, "other"), *extras]:
            people.create_person(
                ctx, world.admin, email=email, name=f"Researcher {username}",
                organisation="Org", roles=["researcher"], username=username,
            )  # fmt: skip
            people.accredit(
                ctx, world.admin, email, scheme="Safe Researcher", reference=f"SR-{username}",
                issued_on=today - timedelta(days=1), expires_on=today + timedelta(days=300),
            )  # fmt: skip
            members.add_member(
                ctx, world.admin, project="alpha", email=email, role="researcher",
                expires_on=today + timedelta(days=300),
            )  # fmt: skip
    finally:
        ctx.close()
    for level in (data_dir, data_dir / "projects", *(data_dir / "projects").iterdir()):
        level.chmod(0o711)
    return settings, world


@dataclass
class SandboxHub:
    """One hub in a subprocess (restartable), all its files under ``directory``."""

    directory: Path
    settings: Settings
    port: int
    env: dict[str, str]
    cgroup_parent: str
    process: subprocess.Popen[bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def run_dir(self) -> Path:
        return self.directory / "run"

    @property
    def log_path(self) -> Path:
        return self.directory / "hub.log"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(VENV / "bin" / "jupyterhub"), "-f", str(CONFIG)],
                cwd=self.directory,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited early:\n{self.log()[-4000:]}")
            try:
                if requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"jupyterhub did not become ready:\n{self.log()[-4000:]}")

    def shutdown(self) -> None:
        """A clean stop (SIGTERM): the hub stops its servers and its proxy."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)

    def crash(self) -> None:
        """SIGKILL the hub alone: its proxy and its sessions are left running."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {self.settings.hub_api_token}"}
        return requests.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=60, **kwargs
        )

    def server(self, user: str, project: str) -> dict[str, Any] | None:
        response = self.api("GET", f"/users/{user}")
        response.raise_for_status()
        found: dict[str, Any] | None = response.json()["servers"].get(project)
        return found

    def spawn(self, user: str, project: str, timeout: float = 90) -> dict[str, Any]:
        """Start the named server through the REST API and wait until it is ready."""
        response = self.api("POST", f"/users/{user}/servers/{project}")
        if response.status_code not in (201, 202):
            raise AssertionError(f"spawn refused: {response.status_code} {response.text}")
        return self.wait_ready(user, project, timeout)

    def wait_ready(self, user: str, project: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.server(user, project)
            if found and found["ready"]:
                return found
            if not found or not found.get("pending"):
                raise AssertionError(f"{user}/{project} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"{user}/{project} not ready in {timeout} s")

    def stop_server(self, user: str, project: str) -> None:
        response = self.api("DELETE", f"/users/{user}/servers/{project}")
        assert response.status_code in (202, 204), response.text
        deadline = time.monotonic() + 60
        while self.server(user, project) is not None and time.monotonic() < deadline:
            time.sleep(0.1)

    def user_token(self, user: str) -> str:
        """A token of ``user`` (created by the control plane's service, scope ``tokens``)."""
        if user not in self.tokens:
            response = self.api("POST", f"/users/{user}/tokens", json={"note": "probe"})
            response.raise_for_status()
            self.tokens[user] = response.json()["token"]
        return self.tokens[user]

    def kernel(self, user: str, project: str) -> Kernel:
        return Kernel.start(self, user, project)

    def leftovers(self) -> list[Path]:
        """Session cgroups still present under this hub's cgroup parent."""
        manager = CgroupManager(parent=self.cgroup_parent)
        return [c for p in manager.parents() if p.is_dir() for c in p.iterdir() if c.is_dir()]


@dataclass
class Result:
    stdout: str
    status: str  # "ok", "error", or "died" when the kernel went away mid-execution
    error: str = ""


@dataclass
class Kernel:
    """A kernel in a session, driven over its websocket through the proxy (as the browser
    does), with the user's token."""

    hub: SandboxHub
    user: str
    project: str
    kernel_id: str

    @property
    def base(self) -> str:
        return f"{self.hub.url}/user/{self.user}/{self.project}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.hub.user_token(self.user)}"}

    @classmethod
    def start(cls, hub: SandboxHub, user: str, project: str) -> Kernel:
        token = hub.user_token(user)
        response = requests.post(
            f"{hub.url}/user/{user}/{project}/api/kernels",
            headers={"Authorization": f"token {token}"},
            json={"name": "python3"},
            timeout=60,
        )
        assert response.status_code == 201, f"{response.status_code} {response.text}"
        return cls(hub, user, project, response.json()["id"])

    def run(self, code: str, timeout: float = 60) -> Result:
        url = self.base.replace("http://", "ws://") + f"/api/kernels/{self.kernel_id}/channels"
        headers = [f"{k}: {v}" for k, v in self.headers.items()]
        conn = websocket.create_connection(url, header=headers, timeout=timeout)
        msg_id = uuid.uuid4().hex
        conn.send(
            json.dumps(
                {
                    "header": {"msg_id": msg_id, "msg_type": "execute_request", "username":
                               self.user, "session": uuid.uuid4().hex, "version": "5.3"},
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": False,
                                "user_expressions": {}, "allow_stdin": False},
                    "channel": "shell",
                }
            )
        )  # fmt: skip
        out: list[str] = []
        error = ""
        reply = ""
        idle = False  # iopub and shell are separate channels: wait for both to finish
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not (reply and idle):
                try:
                    message = json.loads(conn.recv())
                except (websocket.WebSocketConnectionClosedException, ConnectionError):
                    return Result("".join(out), "died", error)
                kind = message["header"]["msg_type"]
                content = message["content"]
                # the server announces a dead kernel without our message as parent
                if kind == "status" and content["execution_state"] in ("restarting", "dead"):
                    return Result("".join(out), "died", error)
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if kind == "stream":
                    out.append(content["text"])
                elif kind == "error":
                    error = f"{content['ename']}: {content['evalue']}"
                elif kind == "status" and content["execution_state"] == "idle":
                    idle = True
                elif kind == "execute_reply":
                    reply = content["status"]
        except websocket.WebSocketTimeoutException:
            pass
        finally:
            conn.close()
        if reply and idle:
            return Result("".join(out), reply, error)
        raise AssertionError(f"no reply within {timeout} s; output so far: {''.join(out)!r}")

    def value(self, code: str, timeout: float = 60) -> Any:
        """Run ``code`` whose last line prints one JSON document; return it decoded."""
        result = self.run(code, timeout)
        assert result.status == "ok", f"{result.status}: {result.error}\n{result.stdout}"
        return json.loads(result.stdout.strip().splitlines()[-1])


@contextmanager
def sandbox_hub(
    *,
    mem_limit: int = 400 * 1024**2,
    cleanup_servers: bool = True,
    extra_researchers: int = 0,
    hub_env: dict[str, str] | None = None,
) -> Iterator[SandboxHub]:
    """A hub over a fresh control plane; everything it started is gone afterwards.
    ``hub_env`` adds to (or overrides) the hub's environment: more ``ENCLAVE_HUB_*`` options."""
    require_root()
    environment = session_environment()
    directory = Path(tempfile.mkdtemp(prefix="eh", dir="/tmp"))  # short: socket paths
    directory.chmod(0o711)  # the session accounts traverse it to their mounts
    cgroup_parent = f"enclave-test-{directory.name.lower()}"
    try:
        settings, _ = build_control_plane(directory / "data", extra_researchers)
        port = free_port()
        env = {
            "PATH": f"{VENV / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(directory),
            "ENCLAVE_DATA_DIR": str(settings.data_dir),
            "ENCLAVE_HUB_URL": f"http://127.0.0.1:{port}/hub/api",
            "ENCLAVE_HUB_API_TOKEN": settings.hub_api_token or "",
            "ENCLAVE_HUB_RUN_DIR": str(directory / "run"),
            "ENCLAVE_HUB_PUBLIC_PORT": str(port),
            "ENCLAVE_HUB_PYTHON_ENVIRONMENT": str(environment),
            "ENCLAVE_HUB_CHP_COMMAND": proxy(),
            "ENCLAVE_HUB_IDLE_TIMEOUT": "0",
            "ENCLAVE_HUB_MEM_LIMIT": str(mem_limit),
            "ENCLAVE_HUB_CPU_LIMIT": "1.0",
            "ENCLAVE_HUB_CLEANUP_SERVERS": "true" if cleanup_servers else "false",
            "ENCLAVE_HUB_CGROUP_PARENT": cgroup_parent,
            # users and groups come from the REST API here, as the control plane's reconcile
            # sends them; the login itself is tested with the enclave's authenticator apart
            "ENCLAVE_HUB_AUTHENTICATOR_CLASS": "null",
            **(hub_env or {}),
        }
        bwrap()
        hub = SandboxHub(directory, settings, port, env, cgroup_parent)
        hub.start()
        _sync_groups(settings, port)
        try:
            yield hub
        finally:
            if hub.process is not None and hub.process.poll() is None:
                hub.shutdown()
    finally:
        _kill_everything(directory, cgroup_parent)
        shutil.rmtree(directory, ignore_errors=True)


def _sync_groups(settings: Settings, port: int) -> None:
    """The control plane mirrors its memberships to the hub's groups (and creates the users)."""
    from enclave.control.context import open_context

    hub_settings = Settings(
        data_dir=settings.data_dir,
        hub_url=f"http://127.0.0.1:{port}/hub/api",
        hub_api_token=settings.hub_api_token,
    )
    ctx = open_context(hub_settings)
    try:
        sync_hub(ctx, hub_settings)
    finally:
        ctx.close()


def _kill_everything(directory: Path, cgroup_parent: str) -> None:
    pid_file = directory / "data" / "hub" / "proxy.pid"
    if pid_file.exists():
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
    for parent in CgroupManager(parent=cgroup_parent).parents():
        if parent.is_dir():
            for child in parent.iterdir():
                if child.is_dir():
                    Cgroup((child,)).remove()
            parent.rmdir()
