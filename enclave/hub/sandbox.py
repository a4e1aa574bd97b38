"""The bubblewrap command line of one session, and the identity files it shows (pure).

Every namespace is unshared, so the network namespace is empty: the sandbox has a loopback of
its own and nothing else. Its only channels are two unix sockets: the server's own socket
(which the proxy connects to from outside) and the hub's socket, mounted read-only. The root
is a fresh tmpfs holding the read-only system, the session's Python environment, generated
``/etc/passwd`` and ``/etc/group``, and three host directories: the project's extract
(read-only), the private home and the outbox, and the reviewed wheelhouse (read-only, see
``enclave.control.wheelhouse``). Nothing else of the host is visible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from enclave.control import wheelhouse

SYSTEM_DIRS = ("/usr",)
SYSTEM_LINKS = (
    ("usr/lib", "/lib"),
    ("usr/lib64", "/lib64"),
    ("usr/bin", "/bin"),
    ("usr/sbin", "/sbin"),
)
SHELL = "/bin/bash"
USER_PACKAGES = "packages"  # under the home: what a researcher installs from the wheelhouse


@dataclass(frozen=True)
class SandboxPlan:
    """What one session mounts and runs. Host paths must be traversable by the session's uid
    (bubblewrap resolves them as that user); the environment must be world-readable.

    ``environment`` (and any ``extra_ro``, e.g. the base interpreter of a virtualenv) appears
    at its host path, read-only. ``home`` appears at ``/home/<username>``, with ``data`` on
    ``<home>/data`` (read-only) and ``outbox`` on ``<home>/outbox``. ``packages``, the
    wheelhouse, appears read-only at ``wheelhouse.INSIDE``: pip reads it as a file:// index,
    so no socket or proxy is needed inside the sandbox.
    """

    username: str
    uid: int
    gid: int
    environment: Path
    home: Path
    socket_dir: Path
    hub_socket: Path | None
    command: tuple[str, ...]
    data: Path | None = None
    outbox: Path | None = None
    extra_ro: tuple[Path, ...] = ()
    packages: Path | None = None
    hostname: str = "enclave"

    @property
    def home_inside(self) -> str:
        return f"/home/{self.username}"


@dataclass(frozen=True)
class Identity:
    """``/etc/passwd`` and ``/etc/group`` of the sandbox: the user, and ``nobody`` for every
    host uid the user namespace does not map (root-owned files show as nobody)."""

    passwd: str
    group: str


def identity(plan: SandboxPlan) -> Identity:
    name = plan.username
    passwd = (
        f"{name}:x:{plan.uid}:{plan.gid}:{name}:{plan.home_inside}:{SHELL}\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    group = f"{name}:x:{plan.gid}:\nnogroup:x:65534:\n"
    return Identity(passwd, group)


@dataclass(frozen=True)
class Fds:
    """File descriptors (inherited by bubblewrap) carrying the generated identity files."""

    passwd: int
    group: int


def bwrap_args(plan: SandboxPlan, fds: Fds, *, bwrap: str = "bwrap") -> list[str]:
    """The full argv: ``bwrap <flags> -- <command>``. Order matters: a later mount hides
    whatever an earlier one put beneath it, so the tmpfs mounts come first."""
    home = plan.home_inside
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",  # explicit, because --disable-userns needs it
        "--disable-userns",  # no nested user namespaces (bubblewrap 0.8+)
        "--die-with-parent",
        "--new-session",  # setsid: no TIOCSTI into a terminal outside
        "--hostname",
        plan.hostname,
        "--tmpfs",
        "/tmp",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    for system in SYSTEM_DIRS:
        args += ["--ro-bind", system, system]
    for target, link in SYSTEM_LINKS:
        if Path("/", target).exists():
            args += ["--symlink", target, link]
    for path in (plan.environment, *plan.extra_ro):
        args += ["--ro-bind", str(path), str(path)]
    args += ["--ro-bind-data", str(fds.passwd), "/etc/passwd"]
    args += ["--ro-bind-data", str(fds.group), "/etc/group"]
    args += ["--bind", str(plan.home), home]
    if plan.data is not None:
        args += ["--ro-bind", str(plan.data), f"{home}/data"]
    if plan.outbox is not None:
        args += ["--bind", str(plan.outbox), f"{home}/outbox"]
    if plan.packages is not None:
        args += ["--ro-bind", str(plan.packages), wheelhouse.INSIDE]
    args += ["--bind", str(plan.socket_dir), str(plan.socket_dir)]
    if plan.hub_socket is not None:
        args += ["--ro-bind", str(plan.hub_socket), str(plan.hub_socket)]
    args += ["--chdir", home, "--", *plan.command]
    return args


def session_env(
    plan: SandboxPlan, base: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The session's environment: ``base`` (JupyterHub's variables) plus a fixed ``PATH``,
    ``HOME``, ``USER`` and ``SHELL``; nothing is inherited from the hub's own environment."""
    env = dict(base)
    env.update(
        {
            "PATH": f"{plan.environment}/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": plan.home_inside,
            "USER": plan.username,
            "LOGNAME": plan.username,
            "SHELL": SHELL,
            "TMPDIR": "/tmp",
        }
    )
    if plan.packages is not None:  # pip looks at the wheelhouse's index and nowhere else
        env["PIP_CONFIG_FILE"] = f"{wheelhouse.INSIDE}/{wheelhouse.PIP_CONF}"
        # the session environment is read-only: packages go to the home, where Python looks
        env["PIP_TARGET"] = env["PYTHONPATH"] = f"{plan.home_inside}/{USER_PACKAGES}"
    env.update(extra or {})
    return env


def command(
    environment: Path, cmd: Sequence[str], socket: Path, args: Sequence[str] = ()
) -> tuple[str, ...]:
    """The server command: ``cmd`` (relative names resolve in ``<environment>/bin``)
    listening on ``socket``, readable and writable only by its owner (the proxy and the hub
    run as root)."""
    first = cmd[0] if "/" in cmd[0] else str(environment / "bin" / cmd[0])
    return (
        first,
        *cmd[1:],
        f"--ServerApp.sock={socket}",
        "--ServerApp.sock_mode=0600",
        *args,
    )
