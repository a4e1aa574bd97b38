"""The systemd backend of the same session policy: one transient service per (user, project).

Where systemd is PID 1, ``SystemdSpawner`` runs the sandbox plan that ``BwrapSpawner`` would
run (same decision, account, zones, sockets, environment and server command) as a transient
service started with ``systemd-run``. The pure part turns an allowed decision and its plan into
the service's properties, the ``systemd-run`` argv and the equivalent ``.service`` file (for
documentation and ``systemd-analyze verify``); the spawner is the thin shell around them.

How the properties meet the sandbox requirements:

* no network: ``PrivateNetwork=yes`` (a loopback of its own), ``RestrictAddressFamilies=``
  ``AF_UNIX AF_NETLINK`` (no IP socket can even be created: kernels talk ZMQ over unix sockets,
  see ``KERNEL_ARGS``; libzmq aborts when netlink, which only sees the private namespace, is
  refused) and ``IPAddressDeny=any``. The server listens on a unix socket in its session
  directory; the hub's socket is bound read-only and is the only way out.
* read-only system, nothing else of the host: ``ProtectSystem=strict``, ``ProtectHome=tmpfs``,
  an empty read-only tmpfs over ``/etc``, ``/run`` and every other top-level directory of the
  host but the system ones (``KEEP``), and over the enclave's data directory. Only the bound
  paths reappear: the environment (read-only), generated ``/etc/passwd`` and ``/etc/group``,
  the private home, the extract (read-only) on ``~/data``, the outbox on ``~/outbox``, the
  socket directory and the hub socket. ``PrivateTmp``, ``PrivateDevices``, ``PrivateIPC``,
  ``ProtectProc=invisible`` and ``ProcSubset=pid`` hide the host's temporary files, devices,
  IPC and processes.
* no privilege: ``User=``/``Group=`` the session account, ``PrivateUsers=yes``, an empty
  capability set, ``NoNewPrivileges``, ``RestrictSUIDSGID``, ``RestrictNamespaces``,
  ``LockPersonality``, ``SystemCallFilter=@system-service`` minus ``@privileged`` (denied
  calls fail with EPERM rather than killing a kernel), native system calls only.
* limits: ``MemoryMax=`` (no swap around it), ``CPUQuota=`` and ``TasksMax=`` from the decision.

``MemoryDenyWriteExecute`` stays off: it breaks every JIT a researcher may load (numba and
llvmlite, which pynndescent and umap pull in) and libffi closures that need writable code;
numpy itself would not mind. The seccomp filter and the namespaces above still apply.

Secrets of the environment (the hub API token) go to a root-only ``EnvironmentFile=``, never to
``Environment=``: any local user can read a unit's ``Environment=`` over D-Bus.
"""

from __future__ import annotations

import asyncio
import grp
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyterhub.spawner import SpawnException  # type: ignore[import-untyped]
from traitlets import Unicode

from enclave.control import wheelhouse
from enclave.hub import sandbox
from enclave.hub.accounts import Account, account_name, ensure_account
from enclave.hub.policy import SessionDecision
from enclave.hub.spawner import SOCKET, SessionSpawner, _accepts, _link_port_80

UNIT_PREFIX = "enclave-session-"
# top-level host directories a session keeps (read-only, or replaced by its own kind)
KEEP = frozenset(
    {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/dev", "/sys"}
    | {"/tmp", "/home", "/root"}  # PrivateTmp= and ProtectHome= give these their own
)
ALWAYS_HIDDEN = ("/etc", "/run")
# jupyter kernels speak ZMQ over TCP by default: over unix sockets they need no IP at all
# (ipykernel then warns that output of multiprocessing children is not forwarded)
KERNEL_ARGS = ("--KernelManager.transport=ipc",)
ADDRESS_FAMILIES = ("AF_UNIX", "AF_NETLINK")
# A path systemd takes as written in a unit file and on systemd-run's command line: no
# separators (":" and spaces), quotes, escapes or specifiers ("%").
PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._/+@-]*$")
SECRET = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)
ACTIVE = frozenset({"active", "activating", "deactivating", "reloading"})
BOOTED_MARK = Path("/run/systemd/system")  # what sd_booted() looks for


@dataclass(frozen=True)
class UnitSettings:
    """Where and as whom a session's service runs.

    ``identity_dir`` is a root-owned directory holding the generated ``passwd`` and ``group``
    (mounted on ``/etc``) and the secret ``environment`` file. ``host_roots`` are the host's
    top-level directories: all but ``KEEP`` are hidden. ``hidden`` are more host trees to
    hide wherever they lie (the enclave's data directory).
    """

    unit: str
    user: str
    group: str
    identity_dir: Path
    host_roots: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    stop_timeout: float = 5.0

    @property
    def environment_file(self) -> Path:
        return self.identity_dir / "environment"


Properties = list[tuple[str, str]]


def unit_name(session: str) -> str:
    """``enclave-session-<session id>.service``."""
    return f"{UNIT_PREFIX}{session}.service"


def server_command(plan: sandbox.SandboxPlan) -> tuple[str, ...]:
    """The plan's server command, with its kernels on unix sockets."""
    return (*plan.command, *KERNEL_ARGS)


def split_environment(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret): tokens, keys and passwords go to the root-only environment file."""
    plain = {k: v for k, v in env.items() if not SECRET.search(k)}
    secret = {k: v for k, v in env.items() if SECRET.search(k)}
    return plain, secret


def properties(
    decision: SessionDecision,
    plan: sandbox.SandboxPlan,
    settings: UnitSettings,
    environment: Mapping[str, str],
) -> Properties:
    """The service's properties, in unit-file order, for an allowed decision and its plan.

    ValueError for a refused decision, a plan that does not carry the decision's zones, or a
    path systemd would read differently from how it is written.
    """
    if not decision.allowed:
        raise ValueError("a refused decision has no unit")
    if (plan.home, plan.data, plan.outbox) != (decision.home, decision.data, decision.outbox):
        raise ValueError("the sandbox plan does not carry the decision's zones")
    if decision.data is None or decision.outbox is None:
        raise ValueError("an allowed decision must name its extract and outbox")
    home = plan.home_inside
    hidden = sorted(
        {*ALWAYS_HIDDEN}
        | {str(p) for p in settings.host_roots if str(p) not in KEEP}
        | {str(p) for p in settings.hidden}
    )
    read_only = [f"{p}" for p in (plan.environment, *plan.extra_ro)]
    read_only += [
        f"{settings.identity_dir / 'passwd'}:/etc/passwd",
        f"{settings.identity_dir / 'group'}:/etc/group",
        f"{decision.data}:{home}/data",
    ]
    if plan.hub_socket is not None:
        read_only.append(str(plan.hub_socket))
    if plan.packages is not None:  # the reviewed wheelhouse, as BwrapSpawner mounts it
        read_only.append(f"{plan.packages}:{wheelhouse.INSIDE}")
    writable = [f"{plan.home}:{home}", f"{decision.outbox}:{home}/outbox", str(plan.socket_dir)]
    for mount in (*hidden, *read_only, *writable):
        for path in mount.split(":"):
            if not PLAIN_PATH.match(path):
                raise ValueError(f"path {path!r} cannot be given to systemd as it is")
    props: Properties = [
        ("Type", "exec"),
        ("User", settings.user),
        ("Group", settings.group),
        ("WorkingDirectory", home),
        ("UMask", "0077"),
        # no network
        ("PrivateNetwork", "yes"),
        ("RestrictAddressFamilies", " ".join(ADDRESS_FAMILIES)),
        ("IPAddressDeny", "any"),
        # the file system: read-only, and only the plan's paths of the host
        ("ProtectSystem", "strict"),
        ("ProtectHome", "tmpfs"),
        ("TemporaryFileSystem", " ".join(f"{p}:ro" for p in hidden)),
        *(("BindReadOnlyPaths", m) for m in read_only),
        *(("BindPaths", m) for m in writable),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("PrivateIPC", "yes"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("KeyringMode", "private"),
        # no privilege
        ("PrivateUsers", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("NoNewPrivileges", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "no"),  # JITs (numba) need it: see the module docstring
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallFilter", "~@privileged"),
        ("SystemCallErrorNumber", "EPERM"),
        # limits
        *limit_properties(decision),
        # life cycle: systemd stops every process of the unit
        ("KillMode", "control-group"),
        ("TimeoutStopSec", f"{settings.stop_timeout:g}s"),
        ("EnvironmentFile", str(settings.environment_file)),
        *(("Environment", f"{k}={v}") for k, v in sorted(environment.items())),
    ]
    return props


def limit_properties(decision: SessionDecision) -> Properties:
    """Memory in bytes (and no swap), CPU in percent of one core, processes and threads."""
    limits = decision.limits
    props: Properties = []
    if limits.memory_bytes is None:
        props.append(("MemoryMax", "infinity"))
    else:
        props += [("MemoryMax", str(limits.memory_bytes)), ("MemorySwapMax", "0")]
    if limits.cpus is not None:
        props.append(("CPUQuota", f"{max(1, round(limits.cpus * 100))}%"))
    props.append(("TasksMax", "infinity" if limits.pids is None else str(limits.pids)))
    return props


def _quoted(word: str, *, specifiers: bool, variables: bool = True) -> str:
    """``word`` as one double-quoted systemd word. Where systemd expands variables
    (``ExecStart=``) ``$`` is doubled; in unit files ``%`` is doubled (no specifiers)."""
    text = word.replace("\\", "\\\\").replace('"', '\\"')
    if variables:
        text = text.replace("$", "$$")
    if specifiers:
        text = text.replace("%", "%%")
    return f'"{text}"'


def _value(key: str, value: str, *, specifiers: bool) -> str:
    if key == "Environment":  # one quoted word, so that spaces stay in the value
        return _quoted(value, specifiers=specifiers, variables=False)
    return value


def run_argv(
    settings: UnitSettings,
    props: Properties,
    command: Sequence[str],
    *,
    description: str,
    systemd_run: str = "systemd-run",
) -> list[str]:
    """``systemd-run`` starting the service: one ``--property`` per property, collected when
    it ends (failed or not), never a scope (a scope would run under the hub)."""
    argv = [
        systemd_run,
        f"--unit={settings.unit}",
        f"--description={description}",
        "--collect",
        "--quiet",
        *(f"--property={k}={_value(k, v, specifiers=False)}" for k, v in props),
        "--",
    ]
    return argv + [c.replace("$", "$$") for c in command]  # no variable expansion


def unit_file(props: Properties, command: Sequence[str], *, description: str) -> str:
    """The ``.service`` file with the same properties as ``run_argv``."""
    lines = ["[Unit]", f"Description={description}", "CollectMode=inactive-or-failed", ""]
    lines += ["[Service]"]
    lines.append("ExecStart=" + " ".join(_quoted(c, specifiers=True) for c in command))
    lines += [f"{k}={_value(k, v, specifiers=True)}" for k, v in props]
    return "\n".join(lines) + "\n"


def environment_file(secret: Mapping[str, str]) -> str:
    """``KEY="value"`` lines for ``EnvironmentFile=`` (read by PID 1, not expanded)."""
    for key, value in secret.items():
        if "\n" in value or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"environment variable {key!r} cannot go to an environment file")
    return "".join(
        f"{k}={_quoted(v, specifiers=False, variables=False)}\n" for k, v in secret.items()
    )


def parse_show(text: str) -> dict[str, str]:
    """``systemctl show`` output (``Key=value`` lines) as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def booted(mark: Path = BOOTED_MARK) -> bool:
    """Is systemd PID 1 here? (what ``sd_booted`` checks)"""
    return mark.is_dir()


def pid1_name() -> str:
    try:
        return Path("/proc/1/comm").read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return "unknown"


def _host_roots() -> tuple[Path, ...]:
    """The host's top-level directories (symbolic links such as /bin point into /usr)."""
    return tuple(p for p in Path("/").iterdir() if p.is_dir() and not p.is_symlink())


class SystemdSpawner(SessionSpawner):
    """Runs the session's server as a transient systemd service (see the module docstring).

    Needs systemd as PID 1 and refuses to start otherwise. The service outlives the hub; the
    state holds its unit name and socket, so a restarted hub's ``poll`` finds it.
    """

    systemd_run_command = Unicode("systemd-run", help="The systemd-run program.").tag(config=True)
    systemctl_command = Unicode("systemctl", help="The systemctl program.").tag(config=True)

    unit = Unicode("")  # runtime state: the running service

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self.unit:
            state.update(unit=self.unit, socket=self.socket_path)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.unit = str(state.get("unit", ""))
        self.socket_path = str(state.get("socket", ""))

    def clear_state(self) -> None:
        super().clear_state()
        self.unit = ""
        self.socket_path = ""

    # -- start ----------------------------------------------------------------------------

    async def start(self) -> str:
        if not booted():  # before the policy: nothing is asked, audited or created
            message = (
                f"Cannot start {self.name}: the systemd session backend needs systemd as PID 1, "
                f"and PID 1 here is {pid1_name()!r} (use ENCLAVE_HUB_BACKEND=bwrap)."
            )
            raise SpawnException(message, reason="no_systemd", status_code=500)
        decision = await self._decide()
        account = await ensure_account(
            account_name(decision.username, self.account_prefix), useradd=self.useradd_command
        )
        sockets = self._prepare_dirs(decision, account)
        self.unit = unit_name(self.session_name(decision))
        self.socket_path = str(sockets / SOCKET)
        try:
            if await self._state() in ACTIVE:  # a server the hub lost track of: never run two
                self.log.warning("stopping a leftover session %s", self.unit)
                await self._systemctl("stop", self.unit)
            await self._systemctl("reset-failed", self.unit, check=False)
            await self._launch(decision, account, sockets)
            _link_port_80(sockets)
            await self._wait_listening()
        except BaseException:
            await self._systemctl("stop", self.unit, check=False)
            self._cleanup()
            self.clear_state()
            raise
        return "http+unix://" + quote(self.socket_path, safe="")

    async def _launch(self, decision: SessionDecision, account: Account, sockets: Path) -> None:
        """Write the identity files and the secret environment, then ``systemd-run``."""
        identity = sockets.with_name(sockets.name + ".etc")
        plan = self._plan(decision, account, sockets)
        plain, secret = split_environment(self._session_env(plan, decision))
        settings = UnitSettings(
            unit=self.unit,
            user=account.name,
            group=grp.getgrgid(account.gid).gr_name,
            identity_dir=identity,
            host_roots=_host_roots(),
            hidden=(Path(self.enclave_data_dir).resolve(),),
            stop_timeout=self.term_timeout,
        )
        props = properties(decision, plan, settings, plain)
        description = f"enclave session {decision.username}/{decision.project}"
        _write_identity(identity, sandbox.identity(plan), environment_file(secret))
        self.log.info("starting unit %s: %s", self.unit, description)
        await _run(
            run_argv(
                settings,
                props,
                server_command(plan),
                description=description,
                systemd_run=self.systemd_run_command,
            )
        )

    async def _wait_listening(self) -> None:
        """Return once the server accepts connections; fail at once if the service ends."""
        while not await asyncio.to_thread(_accepts, self.socket_path):
            if await self._state() not in ACTIVE:
                raise RuntimeError(
                    f"the unit of {self.user.name}/{self.name} ended before its server listened"
                )
            await asyncio.sleep(0.1)

    # -- poll and stop --------------------------------------------------------------------

    async def _state(self) -> str:
        shown = parse_show(await self._systemctl("show", "--property=ActiveState", self.unit))
        return shown.get("ActiveState", "")

    async def poll(self) -> int | None:
        if not self.unit:
            return 0
        shown = parse_show(
            await self._systemctl(
                "show", "--property=ActiveState,MainPID,ExecMainStatus", self.unit
            )
        )
        if shown.get("ActiveState") in ACTIVE:
            return None
        status = int(shown.get("ExecMainStatus") or 0)
        self.log.info("session %s/%s ended (status %s)", self.user.name, self.name, status)
        self._cleanup()
        await self._audit_stop("exited")
        self.clear_state()
        return status

    async def stop(self, now: bool = False) -> None:
        if self.unit:
            # blocks until every process of the unit is gone (SIGKILL after TimeoutStopSec)
            await self._systemctl("stop", self.unit, check=False)
        self._cleanup()
        await self._audit_stop("stopped")

    def _cleanup(self) -> None:
        """Remove the socket directory and the identity files."""
        if self.socket_path:
            sockets = Path(self.socket_path).parent
            shutil.rmtree(sockets, ignore_errors=True)
            shutil.rmtree(sockets.with_name(sockets.name + ".etc"), ignore_errors=True)

    async def _systemctl(self, *args: str, check: bool = True) -> str:
        return await _run([self.systemctl_command, *args], check=check)


def _write_identity(directory: Path, identity: sandbox.Identity, secrets: str) -> None:
    """The root-owned files the service mounts or reads: passwd and group (world-readable),
    the secret environment (root only: PID 1 reads it before dropping privileges)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o755)
    for name, text, mode in (
        ("passwd", identity.passwd, 0o644),
        ("group", identity.group, 0o644),
        ("environment", secrets, 0o600),
    ):
        path = directory / name
        path.touch(mode=mode)
        path.chmod(mode)
        path.write_text(text, encoding="utf-8")


async def _run(argv: Sequence[str], *, check: bool = True) -> str:
    """Run ``argv``; its stdout, or RuntimeError with its first error line when it fails."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if check and process.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines() or ["no message"]
        raise RuntimeError(f"{Path(argv[0]).name} {argv[1]} failed: {lines[0]}")
    return out.decode("utf-8", "replace")
