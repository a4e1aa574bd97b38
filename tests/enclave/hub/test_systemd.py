"""The systemd backend: a policy decision becomes a transient service with every isolation
control of the sandbox, a unit file that ``systemd-analyze verify`` accepts without a warning,
and a spawner that refuses plainly where systemd is not PID 1."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyterhub.spawner import SpawnException  # type: ignore[import-untyped]
from traitlets.config import Config

from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.hub import sandbox
from enclave.hub.config import HubOptions, configure
from enclave.hub.policy import Limits, SessionDecision, SessionPolicy, refused
from enclave.hub.systemd import (
    ADDRESS_FAMILIES,
    KERNEL_ARGS,
    SystemdSpawner,
    UnitSettings,
    booted,
    environment_file,
    limit_properties,
    parse_show,
    pid1_name,
    properties,
    run_argv,
    server_command,
    split_environment,
    unit_file,
    unit_name,
)
from enclave.settings import Settings, SettingsError
from tests.enclave.control.dbfixtures import temporary_database
from tests.enclave.control.factories import FakeClock, make_project, make_world

ROOT = Path("/srv/enclave")
ENV = Path(sys.prefix)  # a real environment: verify checks that ExecStart exists
SESSION = "0123456789abcdef"
SOCKETS = Path("/run/enclave/sessions") / SESSION

ALLOWED = SessionDecision(
    allowed=True,
    username="rae",
    project="p1",
    tier="2",
    limits=Limits(memory_bytes=2 * 1024**3, cpus=1.5, pids=256),
    data=ROOT / "projects/p1/data",
    home=ROOT / "projects/p1/home/rae",
    outbox=ROOT / "projects/p1/outbox/rae",
)
SETTINGS = UnitSettings(
    unit=unit_name(SESSION),
    user="enc-rae",
    group="enc-rae",
    identity_dir=SOCKETS.with_name(SESSION + ".etc"),
    host_roots=tuple(Path(p) for p in ("/etc", "/usr", "/home", "/srv", "/opt", "/var", "/work")),
    hidden=(ROOT,),
)
ENVIRONMENT = {
    "JUPYTERHUB_API_TOKEN": "0f" * 16,
    "JUPYTERHUB_SERVICE_URL": "http+unix://%2Frun%2Fenclave%2Fsessions/user/rae/p1/",
    "ENCLAVE_PROJECT": "p1",
    "ODD": 'a "quoted" value with $HOME and \\ in it',
}


def plan_for(decision: SessionDecision) -> sandbox.SandboxPlan:
    return sandbox.SandboxPlan(
        username=decision.username,
        uid=1234,
        gid=1234,
        environment=ENV,
        home=decision.home or Path("/nonexistent"),
        data=decision.data,
        outbox=decision.outbox,
        socket_dir=SOCKETS,
        hub_socket=Path("/run/enclave/hub.sock"),
        command=sandbox.command(ENV, ["jupyterhub-singleuser"], SOCKETS / "jupyter.sock"),
    )


PLAN = plan_for(ALLOWED)
PLAIN, SECRET = split_environment(ENVIRONMENT)
PROPS = properties(ALLOWED, PLAN, SETTINGS, PLAIN)


def values(key: str, props: list[tuple[str, str]] = PROPS) -> list[str]:
    return [v for k, v in props if k == key]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("User", "enc-rae"),
        ("Group", "enc-rae"),
        ("PrivateNetwork", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_NETLINK"),
        ("IPAddressDeny", "any"),
        ("PrivateUsers", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "tmpfs"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("PrivateIPC", "yes"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("NoNewPrivileges", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "no"),  # a choice: JITs need it (module docstring)
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("SystemCallArchitectures", "native"),
        ("SystemCallErrorNumber", "EPERM"),
        ("WorkingDirectory", "/home/rae"),
        ("KillMode", "control-group"),
        ("UMask", "0077"),
        ("Type", "exec"),
    ],
)
def test_every_isolation_control_is_set(key: str, value: str) -> None:
    assert values(key) == [value]


def test_system_calls_are_the_service_set_without_the_privileged_ones() -> None:
    assert values("SystemCallFilter") == ["@system-service", "~@privileged"]


def test_the_service_mounts_only_this_projects_zones_and_hides_the_rest_of_the_host() -> None:
    assert values("BindPaths") == [
        f"{ALLOWED.home}:/home/rae",
        f"{ALLOWED.outbox}:/home/rae/outbox",
        str(SOCKETS),
    ]
    assert values("BindReadOnlyPaths") == [
        str(ENV),
        f"{SETTINGS.identity_dir}/passwd:/etc/passwd",
        f"{SETTINGS.identity_dir}/group:/etc/group",
        f"{ALLOWED.data}:/home/rae/data",
        "/run/enclave/hub.sock",
    ]
    [tmpfs] = values("TemporaryFileSystem")
    hidden = tmpfs.split()
    assert all(h.endswith(":ro") for h in hidden)
    # the data directory, /etc, /run and every non-system top-level directory are empty
    assert {h[: -len(":ro")] for h in hidden} == {
        "/etc",
        "/run",
        "/srv",
        "/opt",
        "/var",
        "/work",
        str(ROOT),
    }


def test_another_projects_data_never_appears(tmp_path: Path) -> None:
    """Through the real policy: a researcher on two projects gets a service for one, and
    nothing of the other project's zones is mounted or named."""
    with temporary_database("sqlite", tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        ctx = Context(engine=engine, data_dir=tmp_path / "data", clock=FakeClock())
        try:
            world = make_world(ctx)
            make_project(ctx, world, "alpha", "active")
            make_project(ctx, world, "beta", "active")
            decision = SessionPolicy(ctx).decide("researcher", "alpha")
        finally:
            ctx.close()
    assert decision.allowed
    plan = plan_for(decision)
    props = properties(decision, plan, SETTINGS, PLAIN)
    rendered = unit_file(props, server_command(plan), description="d") + " ".join(
        run_argv(SETTINGS, props, server_command(plan), description="d")
    )
    projects = tmp_path / "data" / "projects"
    assert str(projects / "alpha" / "data") in rendered
    assert "beta" not in rendered
    mounted = [
        m.split(":")[0] for m in values("BindPaths", props) + values("BindReadOnlyPaths", props)
    ]
    inside_data_dir = [m for m in mounted if m.startswith(str(tmp_path))]
    assert sorted(inside_data_dir) == sorted(
        str(projects / "alpha" / zone) for zone in ("data", "home/researcher", "outbox/researcher")
    )


def test_a_plan_carrying_other_zones_than_the_decision_is_refused() -> None:
    other = plan_for(SessionDecision(**{**ALLOWED.__dict__, "data": ROOT / "projects/p2/data"}))
    with pytest.raises(ValueError, match="zones"):
        properties(ALLOWED, other, SETTINGS, PLAIN)


@pytest.mark.parametrize("home", ["/srv/my home/rae", "/srv/a:b/rae", "/srv/%h/rae", 'x"'])
def test_paths_systemd_would_read_differently_are_refused(home: str) -> None:
    odd = SessionDecision(**{**ALLOWED.__dict__, "home": Path(home)})
    with pytest.raises(ValueError, match="cannot be given to systemd"):
        properties(odd, plan_for(odd), SETTINGS, PLAIN)


def test_a_refused_decision_has_no_unit() -> None:
    denied = refused("rae", "p1", "membership")
    with pytest.raises(ValueError, match="refused"):
        properties(denied, PLAN, SETTINGS, PLAIN)


def test_limits_map_to_bytes_cpu_percent_and_tasks() -> None:
    assert limit_properties(ALLOWED) == [
        ("MemoryMax", str(2 * 1024**3)),
        ("MemorySwapMax", "0"),
        ("CPUQuota", "150%"),
        ("TasksMax", "256"),
    ]
    quarter = SessionDecision(**{**ALLOWED.__dict__, "limits": Limits(1, 0.25, 1)})
    assert limit_properties(quarter) == [
        ("MemoryMax", "1"),
        ("MemorySwapMax", "0"),
        ("CPUQuota", "25%"),
        ("TasksMax", "1"),
    ]
    unlimited = SessionDecision(**{**ALLOWED.__dict__, "limits": Limits(None, None, None)})
    assert limit_properties(unlimited) == [("MemoryMax", "infinity"), ("TasksMax", "infinity")]
    assert all(p in PROPS for p in limit_properties(ALLOWED))


def test_systemd_run_starts_a_collected_service_with_one_property_each() -> None:
    command = server_command(PLAN)
    argv = run_argv(SETTINGS, PROPS, command, description="enclave session rae/p1")
    head = argv[: argv.index("--")]
    assert head[0] == "systemd-run"
    assert f"--unit={SETTINGS.unit}" in head and "--collect" in head and "--quiet" in head
    assert "--scope" not in head and "--user" not in head
    assert [a for a in head if a.startswith("--property=")] == [
        f"--property={k}={v}" for k, v in PROPS if k != "Environment"
    ] + [f"--property=Environment={v}" for v in _quoted_env(PROPS)]
    assert argv[argv.index("--") + 1 :] == list(command)
    assert command[-len(KERNEL_ARGS) :] == KERNEL_ARGS  # kernels on unix sockets: no AF_INET
    assert f"--ServerApp.sock={SOCKETS}/jupyter.sock" in command


def _quoted_env(props: list[tuple[str, str]]) -> list[str]:
    escaped = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values("Environment", props)]
    return [f'"{v}"' for v in escaped]


def test_the_hub_token_goes_to_the_root_only_file_never_to_the_unit() -> None:
    token = ENVIRONMENT["JUPYTERHUB_API_TOKEN"]
    assert {"JUPYTERHUB_API_TOKEN": token} == SECRET
    argv = run_argv(SETTINGS, PROPS, server_command(PLAN), description="d")
    assert token not in " ".join(argv) and token not in unit_file(PROPS, [], description="d")
    assert values("EnvironmentFile") == [f"{SETTINGS.identity_dir}/environment"]
    assert environment_file(SECRET) == f'JUPYTERHUB_API_TOKEN="{token}"\n'
    with pytest.raises(ValueError, match="environment file"):
        environment_file({"A_TOKEN": "two\nlines"})


def _verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    unit = tmp_path / SETTINGS.unit
    unit.write_text(text)
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_unit_file_passes_systemd_analyze_verify_without_a_warning(tmp_path: Path) -> None:
    command = server_command(PLAN)
    assert Path(command[0]).is_file()  # verify fails a missing ExecStart: it must be real
    text = unit_file(PROPS, command, description="enclave session rae/p1")
    result = _verify(tmp_path, text)
    assert (result.returncode, result.stderr) == (0, "")
    # the file carries the same properties as systemd-run, specifiers escaped
    assert text.count("\n") == len(PROPS) + 6
    assert 'Environment="JUPYTERHUB_SERVICE_URL=http+unix://%%2Frun%%2Fenclave' in text
    assert "ExecStart=" + " ".join(f'"{c}"' for c in command) in text.splitlines()
    # and verify would tell: an unknown key and a bad value are reported
    broken = _verify(tmp_path, text + "PrivateNetwerk=yes\nMemoryMax=lots\n")
    assert "Unknown key" in broken.stderr and "Invalid memory limit" in broken.stderr


def test_systemctl_show_is_parsed() -> None:
    shown = parse_show("ActiveState=active\nMainPID=4242\nExecMainStatus=0\n")
    assert shown == {"ActiveState": "active", "MainPID": "4242", "ExecMainStatus": "0"}


def test_booted_looks_for_systemds_runtime_directory(tmp_path: Path) -> None:
    assert not booted(tmp_path / "system")
    (tmp_path / "system").mkdir()
    assert booted(tmp_path / "system")


@pytest.fixture
def spawner(tmp_path: Path) -> Iterator[SystemdSpawner]:
    yield SystemdSpawner(
        user=SimpleNamespace(name="rae", url="/user/rae/", groups=[]),
        orm_spawner=SimpleNamespace(name="p1", server=None),
        enclave_data_dir=str(tmp_path / "data"),
        socket_root=str(tmp_path / "sessions"),
    )


def test_the_spawner_refuses_clearly_where_systemd_is_not_pid_1(
    spawner: SystemdSpawner, tmp_path: Path
) -> None:
    assert not booted(), "this test needs a host where systemd is not PID 1"
    with pytest.raises(SpawnException, match="needs systemd as PID 1") as refusal:
        asyncio.run(spawner.start())
    message = refusal.value.message  # what the researcher sees, and the log too
    assert refusal.value.log_message == message and refusal.value.status_code == 500
    assert f"PID 1 here is {pid1_name()!r}" in message and "ENCLAVE_HUB_BACKEND=bwrap" in message
    # nothing was asked of the policy, created or remembered
    assert not (tmp_path / "data").exists() and not (tmp_path / "sessions").exists()
    assert spawner.get_state() == {}


def test_the_spawner_keeps_its_unit_across_hub_restarts(spawner: SystemdSpawner) -> None:
    assert asyncio.run(spawner.poll()) == 0  # no unit: nothing runs
    state = {"unit": SETTINGS.unit, "socket": f"{SOCKETS}/jupyter.sock"}
    spawner.load_state(state)
    assert spawner.get_state() == state
    spawner.clear_state()
    assert spawner.get_state() == {} and not spawner.unit


def _configured(tmp_path: Path, **options: object) -> Config:
    c = Config()
    settings = Settings(data_dir=tmp_path, hub_url="http://x/hub/api", hub_api_token="t" * 40)
    configure(c, settings, HubOptions(run_dir=Path("/run/enclave"), chp_command="chp", **options))  # type: ignore[arg-type]
    return c


def test_the_backend_option_selects_the_spawner(tmp_path: Path) -> None:
    assert HubOptions.load({}).backend == "bwrap"
    options = HubOptions.load({"ENCLAVE_HUB_BACKEND": "systemd"})
    assert options.backend == "systemd"
    c = _configured(tmp_path, backend="systemd", pids_limit=99)
    assert c.JupyterHub.spawner_class == "enclave.hub.systemd.SystemdSpawner"
    assert "cgroup_parent" not in c.SystemdSpawner and "BwrapSpawner" not in c
    spawner = SystemdSpawner(config=c, user=SimpleNamespace(name="rae", url="/user/rae/"))
    assert (spawner.enclave_data_dir, spawner.socket_root) == (
        str(tmp_path),
        "/run/enclave/sessions",
    )
    assert (spawner.pids_limit, spawner.mem_limit, spawner.disable_user_config) == (
        99,
        4 * 1024**3,
        True,
    )
    bwrap = _configured(tmp_path)
    assert bwrap.JupyterHub.spawner_class == "enclave.hub.spawner.BwrapSpawner"


def test_an_unknown_backend_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"ENCLAVE_HUB_BACKEND: expected one of bwrap, "):
        HubOptions.load({"ENCLAVE_HUB_BACKEND": "docker"})
    with pytest.raises(SettingsError, match="got 'kube'"):
        _configured(tmp_path, backend="kube")


# RestrictAddressFamilies=AF_UNIX AF_NETLINK without systemd: a seccomp filter (libseccomp,
# as systemd builds it) making socket() of any other family fail with EAFNOSUPPORT, then exec.
ONLY_UNIX_AND_NETLINK = textwrap.dedent(
    """
    import ctypes, os, sys
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    class Cmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                    ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]
    ctx = ctypes.c_void_p(lib.seccomp_init(ctypes.c_uint32(0x7FFF0000)))  # allow
    refuse = ctypes.c_uint32(0x00050000 | 97)  # errno EAFNOSUPPORT
    nr = lib.seccomp_syscall_resolve_name(b"socket")
    EQ, GT = 4, 6
    for op, family in [(EQ, 0), *((EQ, f) for f in range(2, 16)), (GT, 16)]:
        rule = Cmp(0, op, family, 0)
        assert lib.seccomp_rule_add_array(ctx, refuse, nr, 1, ctypes.byref(rule)) == 0
    assert lib.seccomp_load(ctx) == 0
    os.execv(sys.argv[1], sys.argv[1:])
    """
)


def _wait_for(predicate: object, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _curl(sock: Path, method: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sf", "--unix-socket", str(sock), "-X", method, "-H", "Authorization: token t0k"]
        + (["-d", "{}"] if method == "POST" else [])
        + [f"http://localhost{path}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _api(sock: Path, method: str, path: str) -> object:
    done = _curl(sock, method, path)
    assert done.returncode == 0, f"{method} {path}: curl exit {done.returncode}"
    return json.loads(done.stdout)


@pytest.mark.slow
def test_kernels_work_with_no_address_family_but_unix_and_netlink(tmp_path: Path) -> None:
    """The server with the unit's kernel arguments, under the unit's address families: a
    kernel starts and runs numpy, and its attempt to open an IP socket fails."""
    assert ADDRESS_FAMILIES == ("AF_UNIX", "AF_NETLINK")
    (tmp_path / "filter.py").write_text(ONLY_UNIX_AND_NETLINK)
    sock = tmp_path / "s" / "jupyter.sock"
    sock.parent.mkdir(mode=0o700)
    # short, as the session's /tmp/jupyter-runtime: ipc socket paths stop at 107 bytes
    runtime = Path(tempfile.mkdtemp(prefix="jr-", dir="/tmp"))
    argv = [sys.executable, str(tmp_path / "filter.py"), str(ENV / "bin" / "jupyter-server")]
    argv += ["--allow-root", f"--ServerApp.sock={sock}", f"--ServerApp.root_dir={tmp_path}"]
    # jupyterhub-singleuser takes its ip from the service URL; a bare server would probe
    # AF_INET for a default one
    argv += ["--IdentityProvider.token=t0k", "--ServerApp.ip=127.0.0.1", *KERNEL_ARGS]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "JUPYTER_RUNTIME_DIR": str(runtime)}
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: _curl(sock, "GET", "/api/status").returncode == 0, "the server")
        kernel = _api(sock, "POST", "/api/kernels")
        assert isinstance(kernel, dict)
        connection = runtime / f"kernel-{kernel['id']}.json"
        _wait_for(connection.exists, "the kernel's connection file")
        assert json.loads(connection.read_text())["transport"] == "ipc"
        client = BlockingKernelClient(connection_file=str(connection))
        client.load_connection_file()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=90)
            outputs: list[str] = []
            code = (
                "import numpy, socket\n"
                "print(int(numpy.arange(5).sum()))\n"
                "try:\n"
                "    socket.create_connection(('127.0.0.1', 9), timeout=3)\n"
                "except OSError as error:\n"
                "    print(error.errno)\n"
            )
            reply = client.execute_interactive(
                code,
                timeout=60,
                output_hook=lambda m: outputs.append(m["content"].get("text", "")),
            )
        finally:
            client.stop_channels()
        assert reply["content"]["status"] == "ok"
        assert "".join(outputs).split() == ["10", "97"]  # 97: EAFNOSUPPORT

        def idle() -> bool:  # the server learns the kernel's state from its messages, later
            states = _api(sock, "GET", "/api/kernels")
            return isinstance(states, list) and states[0]["execution_state"] == "idle"

        _wait_for(idle, "the kernel to be seen idle by the server")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(runtime, ignore_errors=True)
