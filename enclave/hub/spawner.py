"""``BwrapSpawner``: one sandboxed JupyterLab server per (user, project), for a single host.

The server name is the project slug (``/user/<name>/<project>/``). ``start`` asks the session
policy, makes sure the Unix account and the session's directories exist, creates a cgroup with
the policy's limits, and runs the server under bubblewrap (``sandbox``) behind a small keeper
process (``setsid --wait``) that outlives the hub. The server listens on a unix socket; the
hub and the proxy connect to it as ``http+unix``.

Why a keeper: bubblewrap's ``--die-with-parent`` ties the sandbox to its parent. With the hub
as parent, a hub restart would end every session; with the keeper as parent, sessions survive
the hub, and killing the keeper still takes the whole sandbox down. ``get_state`` persists the
keeper's pid and start time, the cgroup and the socket, so a restarted hub's ``poll`` finds its
sessions (and tells a reused pid from the keeper), and ``stop`` empties the cgroup whoever the
keeper's parent is. A fresh ``start`` first kills anything left in the session's cgroup, so
one (user, project) never has two servers.

``SessionSpawner`` holds what every host backend shares (the policy check and its refusals, the
directories, the sandbox plan, the environment, the audit of the end); the systemd backend,
``enclave.hub.systemd.SystemdSpawner``, runs the same plan as a transient service.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from jupyterhub.spawner import Spawner, SpawnException  # type: ignore[import-untyped]
from traitlets import Bool, Float, Integer, List, Unicode, default

from enclave.control import wheelhouse
from enclave.control.context import Context, open_context
from enclave.control.service.access import record_session_stop
from enclave.control.service.packages import PACKAGES_DIR
from enclave.hub import guidance, sandbox
from enclave.hub.access import email_for_login
from enclave.hub.accounts import Account, account_name, ensure_account
from enclave.hub.cgroups import Cgroup, CgroupManager
from enclave.hub.policy import Limits, SessionDecision, SessionPolicy
from enclave.settings import Settings

SOCKET = "jupyter.sock"
GROUP_PREFIX = "project-"
# the pixels-only tier's server, in place of jupyterhub-singleuser (same --ServerApp.sock)
PIXELS_COMMAND = ("python", "-m", "enclave.hub.pixels_session")
# what the inner browser reads from the host's /etc: fontconfig (to draw text at all) and
# Debian's Chromium wrapper's settings (it stops without them)
PIXELS_HOST_FILES = (Path("/etc/fonts"), Path("/etc/chromium.d"), Path("/etc/chromium"))
KEEPER_NAMES = frozenset({"setsid", "bwrap"})  # spared by the polite SIGTERM of stop()

_CONTEXTS: dict[tuple[str, str], Context] = {}


def session_id(deployment: str, username: str, project: str) -> str:
    """A short, lower-case, stable name for the (user, project) session of one deployment: it
    names the cgroup (or systemd unit) and the socket directory (unix socket paths must stay
    under 108 bytes, and ``urlparse`` lower-cases the host part of an ``http+unix`` URL).
    Cgroups and units are machine-wide, so two deployments on one host (a test run beside
    ``make up``) must not share a name: the start of one would kill the other's session."""
    return hashlib.sha256(f"{deployment}\0{username}/{project}".encode()).hexdigest()[:16]


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot), or None when it is gone or a
    zombie. Compared with the stored value, it tells our keeper from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def _base_interpreter(environment: Path) -> Path | None:
    """The prefix of a virtualenv's base interpreter when it lies outside ``/usr`` (pyenv,
    /opt): it must be mounted too, or the venv's python cannot start."""
    cfg = environment / "pyvenv.cfg"
    if not cfg.exists():
        return None
    for line in cfg.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            prefix = Path(value.strip()).resolve().parent
            return None if prefix.is_relative_to("/usr") else prefix
    return None


def _mkdir(path: Path, mode: int, owner: Account | None = None) -> None:
    """Create ``path`` (root-owned unless ``owner``) with exactly ``mode``; an existing
    directory keeps its content, gets ``mode`` and, when given, its owner."""
    path.mkdir(mode=mode, exist_ok=True)
    if path.is_symlink() or not path.is_dir():
        raise RuntimeError(f"{path} must be a directory")
    if owner is not None:
        os.chown(path, owner.uid, owner.gid, follow_symlinks=False)
    os.chmod(path, mode, follow_symlinks=False)


class SessionSpawner(Spawner):  # type: ignore[misc]
    """What every host backend of the session policy shares: the traits, the policy check and
    its refusals, the session's directories, its sandbox plan and environment, and the audit
    of its end. Backends (``BwrapSpawner``, ``enclave.hub.systemd.SystemdSpawner``) define how
    the plan runs: ``start``, ``poll``, ``stop`` and their state."""

    python_environment = Unicode(
        sys.prefix,
        help="""Host path of the session's Python environment (a virtualenv with
        jupyterhub and jupyterlab). Mounted read-only at the same path. It must be readable
        by every session account: a venv whose interpreter sits in root's 0700 home cannot
        start. A base interpreter outside /usr is mounted too. Default: the hub's own.""",
    ).tag(config=True)

    socket_root = Unicode(
        "/run/enclave/sessions",
        help="""Directory of the per-session socket directories
        (<socket_root>/<16 hex>/jupyter.sock). Keep it short and lower-case: unix socket
        paths are limited to 107 bytes. Must be traversable by the session accounts.""",
    ).tag(config=True)

    account_prefix = Unicode(
        "enc-",
        help="""Prefix of the host account of each researcher (enc-<username>), so that no
        username can name a system account.""",
    ).tag(config=True)

    useradd_command = Unicode("useradd", help="The useradd program.").tag(config=True)
    pids_limit = Integer(
        512,
        help="""Maximum number of processes and threads in one session (pids controller);
        0 for no limit.""",
    ).tag(config=True)

    access_tier = Unicode(
        "browser",
        help="""``browser``: JupyterLab in the researcher's browser (``cmd``, hardened by
        ``enclave.hub.singleuser``); ``pixels``: the session's own browser inside xpra behind
        a login door, so the researcher receives pixels only (``enclave.hub.pixels_session``,
        docs/pixels-only.md).""",
    ).tag(config=True)

    tier = Unicode(
        "2",
        help="""Data Safe Haven tier of the sessions (reported to the session as
        ENCLAVE_TIER).""",
    ).tag(config=True)

    enclave_data_dir = Unicode(
        ".enclave",
        help="""The enclave's data directory: project zones live under
        <data_dir>/projects/<slug>/. Every level down to the mounted directories must be
        traversable (o+x) by the session accounts.""",
    ).tag(config=True)

    enclave_database_url = Unicode(
        "",
        help="""The control plane's database (SQLAlchemy URL); empty for
        <data_dir>/db/enclave.sqlite3.""",
    ).tag(config=True)

    require_project_group = Bool(
        True,
        help="""Also require the user to be in the hub group project-<slug> (mirrored from the
        control plane by enclave.control.hub), on top of the control plane's decision.""",
    ).tag(config=True)

    term_timeout = Float(
        5.0,
        help="""Seconds stop() waits after SIGTERM for the server to exit before SIGKILL of
        everything in the session's cgroup.""",
    ).tag(config=True)

    socket_path = Unicode("")  # runtime state: the socket of the running server

    @default("mem_limit")
    def _mem_limit_default(self) -> int:
        return 4 * 1024**3

    @default("cpu_limit")
    def _cpu_limit_default(self) -> float:
        return 1.0

    @default("env_keep")
    def _env_keep_default(self) -> list[str]:
        return []  # nothing of the hub's own environment reaches a session

    @default("disable_user_config")
    def _disable_user_config_default(self) -> bool:
        return True

    # -- the policy ---------------------------------------------------------------------

    def policy(self) -> SessionPolicy:
        """The session policy, over a Context shared by every spawner of this hub."""
        key = (self.enclave_database_url, self.enclave_data_dir)
        if key not in _CONTEXTS:
            # the installation's settings (the standing policy among them), pointed at the
            # database and data directory this hub was configured with
            settings = replace(Settings.load(), data_dir=Path(key[1]), database_url=key[0])
            _CONTEXTS[key] = open_context(settings)
        limits = Limits(
            memory_bytes=self.mem_limit or None,
            cpus=self.cpu_limit or None,
            pids=self.pids_limit or None,
        )
        return SessionPolicy(_CONTEXTS[key], tier=self.tier, limits=limits)

    def _refuse(self, message: str, reason: str, status: int = 403) -> SpawnException:
        log = f"refused {self.user.name}/{self.name}: {reason}"
        return SpawnException(message, reason=reason, log_message=log, status_code=status)

    async def _decide(self) -> SessionDecision:
        project = self.name
        if not project:
            raise self._refuse(
                "Start a session from a project: the server name is the project.",
                "no_project",
                400,
            )
        groups = {g.name for g in getattr(self.user, "groups", [])}
        if self.require_project_group and GROUP_PREFIX + project not in groups:
            raise self._refuse(f"Cannot start {project}: you are not in its group.", "group")
        decision = await asyncio.to_thread(self.policy().decide, self.user.name, project)
        if not decision.allowed:
            raise self._refuse(decision.message, decision.rule or "policy")
        return decision

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        if self.socket_path and self.server:
            env["JUPYTERHUB_SERVICE_URL"] = (
                "http+unix://" + quote(self.socket_path, safe="") + self.server.base_url
            )
        return env

    # -- the session's directories, plan and environment ---------------------------------

    def session_name(self, decision: SessionDecision) -> str:
        """This deployment's name for the session (see ``session_id``)."""
        deployment = f"{Path(self.enclave_data_dir).resolve()}\0{self.enclave_database_url}"
        return session_id(deployment, decision.username, decision.project)

    def _prepare_dirs(self, decision: SessionDecision, account: Account) -> Path:
        """Create the project's zones and the session's socket directory; return the latter."""
        assert decision.home and decision.outbox and decision.data
        project_dir = decision.home.parent.parent
        project_dir.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
        _mkdir(project_dir, 0o711)
        if not decision.data.exists():
            _mkdir(decision.data, 0o755)
        for zone in (decision.home, decision.outbox):
            _mkdir(zone.parent, 0o711)
            _mkdir(zone, 0o700, account)
        # the guide and the data dictionary, rewritten at each start to follow the grants
        guidance.write_guidance(
            decision.home, decision.dictionary, guidance.guide_source(Path(self.python_environment))
        )
        root = Path(self.socket_root)
        root.mkdir(mode=0o711, parents=True, exist_ok=True)
        sockets = root / self.session_name(decision)
        shutil.rmtree(sockets, ignore_errors=True)  # a stale socket would fail the bind
        _mkdir(sockets, 0o700, account)
        return sockets

    def _plan(
        self, decision: SessionDecision, account: Account, sockets: Path
    ) -> sandbox.SandboxPlan:
        """What the session mounts and runs: the decision's zones, the Python environment
        (and its base interpreter outside /usr), the sockets and the server command."""
        environment = Path(self.python_environment)
        base = _base_interpreter(environment)
        hub_socket = _hub_socket(self.get_env().get("JUPYTERHUB_API_URL", ""))
        pixels = self.access_tier == "pixels"
        cmd = PIXELS_COMMAND if pixels else self.cmd
        inner_browser = tuple(path for path in PIXELS_HOST_FILES if path.exists()) if pixels else ()
        extra = (*((base,) if base else ()), *inner_browser)
        return sandbox.SandboxPlan(
            username=decision.username,
            uid=account.uid,
            gid=account.gid,
            environment=environment,
            extra_ro=extra,
            home=decision.home or Path("/nonexistent"),
            data=decision.data,
            outbox=decision.outbox,
            socket_dir=sockets,
            hub_socket=hub_socket,
            packages=_wheelhouse(Path(self.enclave_data_dir)),
            command=sandbox.command(environment, cmd, Path(self.socket_path), self.get_args()),
        )

    def _session_env(self, plan: sandbox.SandboxPlan, decision: SessionDecision) -> dict[str, str]:
        return sandbox.session_env(
            plan,
            self.get_env(),
            {
                "ENCLAVE_PROJECT": decision.project,
                "ENCLAVE_TIER": decision.tier,
                "ENCLAVE_OUTBOX": f"{plan.home_inside}/outbox",
                # where the extract is mounted: enclave.analysis finds the datasets there
                "ENCLAVE_DATASETS": f"{plan.home_inside}/data",
                "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
            },
        )

    # -- what a backend defines -----------------------------------------------------------

    async def start(self) -> str:
        raise NotImplementedError("a session backend defines start")

    async def poll(self) -> int | None:
        raise NotImplementedError("a session backend defines poll")

    async def stop(self, now: bool = False) -> None:
        raise NotImplementedError("a session backend defines stop")

    # CPU seconds of the session that just ended, when its backend could read them at stop
    _cpu_seconds: float | None = None

    async def _audit_stop(self, reason: str) -> None:
        """``session_stop`` in the control plane's audit log (the hub's state holds no email:
        the person is looked up by username when the session ends), with the session's CPU
        seconds when known (usage data)."""
        ctx = self.policy().ctx
        cpu, self._cpu_seconds = self._cpu_seconds, None
        try:
            email = await asyncio.to_thread(email_for_login, ctx, self.user.name)
            await asyncio.to_thread(
                record_session_stop,
                ctx,
                email=email,
                project=self.name,
                reason=reason,
                cpu_seconds=cpu,
            )
        except Exception:  # the session is gone either way; the audit gap is logged
            self.log.exception("could not audit the end of %s/%s", self.user.name, self.name)


class BwrapSpawner(SessionSpawner):
    """Runs ``jupyterhub-singleuser`` under bubblewrap with no network, read-only data and
    cgroup limits. See the module docstring for the life cycle."""

    bwrap_command = Unicode("bwrap", help="The bubblewrap program (0.8 or later).").tag(config=True)
    setsid_command = Unicode(
        "setsid",
        help="""The keeper: util-linux setsid, run as `setsid --wait bwrap ...` so that the
        sandbox's parent is not the hub.""",
    ).tag(config=True)

    cgroup_root = Unicode(
        "/sys/fs/cgroup", help="Mount point of the cgroup file system (v1 or v2)."
    ).tag(config=True)

    cgroup_parent = Unicode(
        "enclave-sessions",
        help="""Where session cgroups are created in each cgroup hierarchy: a relative path
        starts at the hub's own cgroup (so whatever bounds the hub bounds its sessions), an
        absolute one at the hierarchy's root. On cgroup v2, when the parent is inside the
        hub's own cgroup, the hub's processes move into a /hub leaf of it (delegate the hub's
        unit with Delegate=yes under systemd).""",
    ).tag(config=True)

    # runtime state, persisted through get_state/load_state
    pid = Integer(0)
    pid_start = Integer(0)
    cgroup_paths = List(Unicode())
    _proc: asyncio.subprocess.Process | None = None

    # -- state ----------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self.pid:
            state.update(
                pid=self.pid,
                pid_start=self.pid_start,
                cgroup=list(self.cgroup_paths),
                socket=self.socket_path,
            )
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.pid = int(state.get("pid", 0))
        self.pid_start = int(state.get("pid_start", 0))
        self.cgroup_paths = list(state.get("cgroup", []))
        self.socket_path = str(state.get("socket", ""))

    def clear_state(self) -> None:
        super().clear_state()
        self.pid = 0
        self.pid_start = 0
        self.cgroup_paths = []
        self.socket_path = ""
        self._proc = None

    # -- start ----------------------------------------------------------------------------

    def _cgroups(self) -> CgroupManager:
        return CgroupManager(Path(self.cgroup_root), self.cgroup_parent)

    async def start(self) -> str:
        decision = await self._decide()
        account = await ensure_account(
            account_name(decision.username, self.account_prefix), useradd=self.useradd_command
        )
        sockets = self._prepare_dirs(decision, account)
        manager = self._cgroups()
        name = self.session_name(decision)
        leftover = manager.path_for(name)
        if leftover.exists():  # a server the hub lost track of: never run two
            self.log.warning("killing a leftover session in cgroup %s", name)
            leftover.remove()
        group = manager.create(name, decision.limits)
        self.socket_path = str(sockets / SOCKET)
        self.cgroup_paths = group.to_state()
        try:
            await self._launch(decision, account, group, sockets)
            await self._wait_listening()
        except BaseException:
            await asyncio.to_thread(self._cleanup)
            self.clear_state()
            raise
        return "http+unix://" + quote(self.socket_path, safe="")

    async def _launch(
        self, decision: SessionDecision, account: Account, group: Cgroup, sockets: Path
    ) -> None:
        plan = self._plan(decision, account, sockets)
        who = sandbox.identity(plan)
        fds = [_data_fd(who.passwd), _data_fd(who.group)]
        argv = [
            self.setsid_command,
            "--wait",
            *sandbox.bwrap_args(plan, sandbox.Fds(fds[0], fds[1]), bwrap=self.bwrap_command),
        ]
        env = self._session_env(plan, decision)
        self.log.info(
            "starting sandbox %s for %s/%s",
            self.session_name(decision),
            decision.username,
            decision.project,
        )
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd="/",
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=fds,
                preexec_fn=_preexec(group, account),
            )
        finally:
            for fd in fds:
                os.close(fd)
        self.pid = self._proc.pid
        self.pid_start = process_start(self.pid) or 0
        _link_port_80(sockets)

    async def _wait_listening(self) -> None:
        """Return once the server accepts connections on its socket, so the hub's first check
        succeeds (its own checks back off up to seconds apart). Fails at once, with the
        keeper's status, when the sandbox exits first (a missing mount, a broken environment):
        the session's own output is in the hub's log."""
        while True:
            if self._proc is not None and self._proc.returncode is not None:
                raise RuntimeError(
                    f"the sandbox of {self.user.name}/{self.name} exited with status "
                    f"{self._proc.returncode} before its server listened"
                )
            if await asyncio.to_thread(_accepts, self.socket_path):
                return
            await asyncio.sleep(0.05)

    # -- poll and stop ----------------------------------------------------------------------

    def _alive(self) -> bool:
        if self._proc is not None:
            return self._proc.returncode is None
        return bool(self.pid) and process_start(self.pid) == self.pid_start

    async def poll(self) -> int | None:
        if self._proc is None and not self.pid:
            return 0
        if self._alive():
            return None
        status = self._proc.returncode if self._proc is not None else 0
        self.log.info("session %s/%s ended (status %s)", self.user.name, self.name, status)
        await asyncio.to_thread(self._cleanup)
        await self._audit_stop("exited")
        self.clear_state()
        return status if status is not None else 0

    async def stop(self, now: bool = False) -> None:
        group = Cgroup.from_state(self.cgroup_paths) if self.cgroup_paths else None
        if group is not None and not now and self._alive():
            spare = {p for p in group.pids() if _comm(p) in KEEPER_NAMES}
            group.signal(signal.SIGTERM, skip=spare)
            await self._wait_for_keeper(self.term_timeout)
        await asyncio.to_thread(self._cleanup)
        await self._wait_for_keeper(5.0)
        await self._audit_stop("stopped")

    async def _wait_for_keeper(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._alive() and time.monotonic() < deadline:
            if self._proc is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._proc.wait(), max(0.01, deadline - time.monotonic())
                    )
            else:
                await asyncio.sleep(0.05)

    def _cleanup(self) -> None:
        """Kill whatever is left in the cgroup, remove it, the socket and its symlink."""
        if self.cgroup_paths:
            group = Cgroup.from_state(self.cgroup_paths)
            group.kill()
            self._cpu_seconds = group.cpu_seconds()  # final once empty, gone once removed
            group.remove()
        if self.socket_path:
            shutil.rmtree(Path(self.socket_path).parent, ignore_errors=True)


def _accepts(path: str) -> bool:
    """Does a server accept connections on the unix socket ``path``?"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _wheelhouse(data_dir: Path) -> Path | None:
    """The reviewed wheelhouse (``<data_dir>/packages``) once an approval has written its
    index; None before, so a fresh installation mounts nothing."""
    root = data_dir / PACKAGES_DIR
    return root if (root / wheelhouse.PIP_CONF).is_file() else None


def _hub_socket(api_url: str) -> Path | None:
    """The hub's socket path when its API URL is ``http+unix://<quoted path>/...``."""
    parsed = urlparse(api_url)
    if parsed.scheme != "http+unix":
        return None
    return Path(unquote(parsed.netloc))


def _data_fd(text: str) -> int:
    """A pipe's read end already holding ``text`` (bubblewrap copies it into the sandbox)."""
    read, write = os.pipe()
    try:
        os.write(write, text.encode("utf-8"))
    finally:
        os.close(write)
    return read


def _preexec(group: Cgroup, account: Account) -> Any:
    """Between fork and exec, as root: join the cgroup (so every descendant is counted and can
    be killed), start a new session, then drop to the account for good."""

    def preexec() -> None:
        try:
            group.join_self()
            os.setsid()
            os.setgroups([])
            os.setgid(account.gid)
            os.setuid(account.uid)
            os.umask(0o077)
        except OSError as error:
            # subprocess reports only "Exception occurred in preexec_fn": the hub's log
            # (this child's stderr) gets the cause, which names a cgroup file at most
            os.write(2, f"enclave: the session could not start: {error}\n".encode())
            raise

    return preexec


def _link_port_80(sockets: Path) -> None:
    """JupyterHub 6.1.1 gives a portless http+unix URL port 80 and the proxy then dials
    "<sock>:80": the symlink makes that name reach the socket."""
    os.symlink(SOCKET, sockets / f"{SOCKET}:80")
