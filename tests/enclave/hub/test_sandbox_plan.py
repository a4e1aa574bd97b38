"""The pure parts of a session: bubblewrap's command line, identity files, environment,
account names and the hub's configuration."""

from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from enclave.control import audit
from enclave.control.db import make_engine, upgrade
from enclave.hub import sandbox
from enclave.hub.accounts import AccountError, account_name, ensure_account, lookup
from enclave.hub.config import HubOptions, configure, unix_url
from enclave.hub.spawner import (
    BwrapSpawner,
    _base_interpreter,
    _hub_socket,
    process_start,
    session_id,
)
from enclave.settings import Settings, SettingsError

PLAN = sandbox.SandboxPlan(
    username="rae",
    uid=1234,
    gid=1234,
    environment=Path("/opt/env"),
    home=Path("/srv/enclave/projects/p1/home/rae"),
    data=Path("/srv/enclave/projects/p1/data"),
    outbox=Path("/srv/enclave/projects/p1/outbox/rae"),
    socket_dir=Path("/run/enclave/sessions/0123456789abcdef"),
    hub_socket=Path("/run/enclave/hub.sock"),
    command=("/opt/env/bin/jupyterhub-singleuser",),
)


def _pairs(args: list[str], flag: str) -> list[tuple[str, str]]:
    return [(args[i + 1], args[i + 2]) for i, a in enumerate(args) if a == flag]


def test_bwrap_unshares_everything_and_mounts_only_the_plan() -> None:
    args = sandbox.bwrap_args(PLAN, sandbox.Fds(7, 8))
    head = args[: args.index("--")]
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"):
        assert flag in head
    assert "--share-net" not in head
    assert _pairs(head, "--bind") == [
        (str(PLAN.home), "/home/rae"),
        (str(PLAN.outbox), "/home/rae/outbox"),
        (str(PLAN.socket_dir), str(PLAN.socket_dir)),
    ]
    assert _pairs(head, "--ro-bind") == [
        ("/usr", "/usr"),
        ("/opt/env", "/opt/env"),
        (str(PLAN.data), "/home/rae/data"),
        ("/run/enclave/hub.sock", "/run/enclave/hub.sock"),
    ]
    assert _pairs(head, "--ro-bind-data") == [("7", "/etc/passwd"), ("8", "/etc/group")]
    # a mount hides what earlier mounts put beneath it: the tmpfs must come first
    assert head.index("--tmpfs") < min(i for i, a in enumerate(head) if a.endswith("bind"))
    assert args[args.index("--") + 1 :] == ["/opt/env/bin/jupyterhub-singleuser"]
    assert args[args.index("--chdir") + 1] == "/home/rae"


def test_identity_files_name_only_the_user_and_nobody() -> None:
    files = sandbox.identity(PLAN)
    assert files.passwd.splitlines() == [
        "rae:x:1234:1234:rae:/home/rae:/bin/bash",
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
    ]
    assert files.group.splitlines() == ["rae:x:1234:", "nogroup:x:65534:"]


def test_the_session_environment_carries_nothing_of_the_hubs() -> None:
    env = sandbox.session_env(PLAN, {"JUPYTERHUB_API_TOKEN": "t"}, {"ENCLAVE_PROJECT": "p1"})
    assert env["PATH"].startswith("/opt/env/bin:") and env["HOME"] == "/home/rae"
    assert set(env) == {
        "JUPYTERHUB_API_TOKEN",
        "ENCLAVE_PROJECT",
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
    }


def test_the_server_listens_on_its_socket_only() -> None:
    sock = Path("/run/s/jupyter.sock")
    assert sandbox.command(Path("/opt/env"), ["jupyterhub-singleuser"], sock, ["--debug"]) == (
        "/opt/env/bin/jupyterhub-singleuser",
        "--ServerApp.sock=/run/s/jupyter.sock",
        "--ServerApp.sock_mode=0600",
        "--debug",
    )


def test_session_ids_are_short_stable_and_lower_case() -> None:
    sid = session_id("/srv/enclave", "Rae", "p1")
    assert sid == session_id("/srv/enclave", "Rae", "p1") != session_id("/srv/enclave", "rae", "p1")
    assert len(sid) == 16 and sid == sid.lower()


def test_two_deployments_on_one_host_never_share_a_session_cgroup() -> None:
    # cgroups and systemd units are machine-wide: a shared name let one hub kill the other's
    assert session_id("/srv/enclave", "ada", "p1") != session_id("/tmp/up1/data", "ada", "p1")


def test_process_start_tells_a_live_pid_from_a_gone_one() -> None:
    assert process_start(os.getpid()) == process_start(os.getpid()) is not None
    assert process_start(2**22 + 1) is None


def test_the_hub_socket_comes_from_an_http_unix_api_url() -> None:
    url = unix_url(Path("/run/enclave/hub.sock")) + "/hub/api"
    assert _hub_socket(url) == Path("/run/enclave/hub.sock")
    assert _hub_socket("http://127.0.0.1:8081/hub/api") is None


def test_a_venvs_base_interpreter_outside_usr_is_mounted_too(tmp_path: Path) -> None:
    (tmp_path / "pyvenv.cfg").write_text("home = /opt/python/bin\nversion = 3.11\n")
    assert _base_interpreter(tmp_path) == Path("/opt/python")
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert _base_interpreter(tmp_path) is None


@pytest.mark.parametrize(
    ("username", "expected"),
    [("rae", "enc-rae"), ("root", "enc-root"), ("a.b", "enc-a-b"), ("9lives", "enc-9lives")],
)
def test_account_names_never_name_a_system_account(username: str, expected: str) -> None:
    assert account_name(username, "enc-") == expected


def test_long_usernames_get_a_hashed_account_name() -> None:
    long_name = "r" * 64
    name = account_name(long_name, "enc-")
    assert len(name) == 32 and name.startswith("enc-") and name != account_name("r" * 63, "enc-")


def test_accounts_are_created_once_without_home_or_shell() -> None:
    if os.geteuid() != 0:
        pytest.skip("useradd needs root")
    name = f"enc-t{uuid.uuid4().hex[:10]}"
    try:
        account = asyncio.run(ensure_account(name))
        assert account == asyncio.run(ensure_account(name)) == lookup(name)
        entry = pwd.getpwnam(name)
        assert account.uid >= 1000 and entry.pw_shell == "/usr/sbin/nologin"
        assert entry.pw_dir == "/nonexistent"
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
    with pytest.raises(AccountError, match="useradd"):
        asyncio.run(ensure_account("bad name!"))


def test_configure_puts_the_hub_and_proxy_api_on_unix_sockets(tmp_path: Path) -> None:
    c = Config()
    settings = Settings(data_dir=tmp_path, hub_url="http://x/hub/api", hub_api_token="t" * 40)
    options = HubOptions(run_dir=Path("/run/enclave"), idle_timeout=600, chp_command="chp")
    configure(c, settings, options)
    hub = c.JupyterHub
    assert hub.hub_bind_url == hub.hub_connect_url == "http+unix://%2Frun%2Fenclave%2Fhub.sock"
    assert c.ConfigurableHTTPProxy.api_url == "http+unix://%2Frun%2Fenclave%2Fproxy-api.sock"
    assert hub.bind_url == "http://127.0.0.1:8000"
    assert (hub.admin_access, hub.allow_named_servers, hub.cleanup_servers) == (False, True, True)
    assert hub.spawner_class == "enclave.hub.spawner.BwrapSpawner"
    assert c.BwrapSpawner.enclave_data_dir == str(tmp_path)
    assert c.BwrapSpawner.socket_root == "/run/enclave/sessions"
    services = {s["name"]: s for s in hub.services}
    assert services["enclave-control"]["api_token"] == "t" * 40
    assert "--url=http://127.0.0.1:8000/hub/api" in services["idle-culler"]["command"]
    roles = {r["name"]: r["scopes"] for r in hub.load_roles}
    assert "access:servers" not in roles["enclave-control"]
    assert set(roles["idle-culler"]) == {
        "list:users",
        "read:users:activity",
        "read:servers",
        "delete:servers",
    }


def test_hub_options_read_the_environment() -> None:
    env = {
        "ENCLAVE_HUB_RUN_DIR": "/run/x",
        "ENCLAVE_HUB_PUBLIC_PORT": "9000",
        "ENCLAVE_HUB_CLEANUP_SERVERS": "false",
        "ENCLAVE_HUB_CPU_LIMIT": "2.5",
    }
    options = HubOptions.load(env)
    assert (options.run_dir, options.public_port, options.cleanup_servers, options.cpu_limit) == (
        Path("/run/x"),
        9000,
        False,
        2.5,
    )
    with pytest.raises(SettingsError, match="ENCLAVE_HUB_PUBLIC_PORT"):
        HubOptions.load({"ENCLAVE_HUB_PUBLIC_PORT": "eighty"})
    with pytest.raises(SettingsError, match="ENCLAVE_HUB_CLEANUP_SERVERS"):
        HubOptions.load({"ENCLAVE_HUB_CLEANUP_SERVERS": "perhaps"})


def test_poll_tells_the_keeper_from_a_reused_pid_after_a_restart(tmp_path: Path) -> None:
    """After a hub restart only the stored state is left: a live pid whose start time differs
    is someone else's process, so the session is over and its leftovers go."""
    database = f"sqlite:///{tmp_path / 'control.sqlite3'}"
    upgrade(make_engine(database))
    spawner = BwrapSpawner(
        user=SimpleNamespace(name="rae", url="/user/rae/"),
        enclave_data_dir=str(tmp_path),
        enclave_database_url=database,
    )
    me, started = os.getpid(), process_start(os.getpid())
    assert started is not None
    sockets = tmp_path / "0123456789abcdef"
    sockets.mkdir()
    (sockets / "jupyter.sock:80").symlink_to("jupyter.sock")
    state = {"pid": me, "pid_start": started, "cgroup": [], "socket": str(sockets / "jupyter.sock")}
    spawner.load_state(state)
    assert asyncio.run(spawner.poll()) is None and spawner.get_state() == state
    spawner.load_state({**state, "pid_start": started + 1})
    assert asyncio.run(spawner.poll()) == 0
    assert spawner.get_state() == {} and not sockets.exists()
    ended = audit.records(make_engine(database), action="session_stop")
    assert [(e.actor, e.detail["reason"]) for e in ended] == [("rae", "exited")]
