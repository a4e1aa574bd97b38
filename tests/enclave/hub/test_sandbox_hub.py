"""Acceptance probes of the sandboxed sessions: a real hub, proxy and bubblewrap sandbox.

A server is spawned through the REST API and a kernel is driven over its websocket through
the proxy, as a browser would. Each probe attempts the attack from inside the kernel: reach
the internet, resolve a name, reach the host's loopback services, read another project's
data or another user's home, see host processes, write the data, exhaust memory.
"""

from __future__ import annotations

import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enclave.control import audit
from enclave.control.db import make_engine
from enclave.hub.accounts import lookup
from enclave.hub.cgroups import Cgroup
from tests.enclave.hub.sandboxhub import Kernel, SandboxHub, sandbox_hub

pytestmark = pytest.mark.slow

PROBE = textwrap.dedent(
    """
    import errno, json, socket
    def connect(host, port):
        try:
            socket.create_connection((host, port), timeout=3).close()
            return "connected"
        except OSError as error:
            return errno.errorcode.get(error.errno, str(error))
    """
)


@pytest.fixture(scope="module")
def hub() -> Iterator[SandboxHub]:
    with sandbox_hub() as running:
        yield running


@pytest.fixture(scope="module")
def alpha(hub: SandboxHub) -> dict[str, Any]:
    """researcher's session on project alpha (the server model, with its state)."""
    return hub.spawn("researcher", "alpha")


@pytest.fixture(scope="module")
def kernel(hub: SandboxHub, alpha: dict[str, Any]) -> Kernel:
    k = hub.kernel("researcher", "alpha")
    k.run(PROBE)
    return k


@pytest.fixture(scope="module")
def listener() -> Iterator[socket.socket]:
    """A service on the host's loopback that the sandbox must not reach."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def test_server_runs_sandboxed_as_the_researchers_account(
    hub: SandboxHub, alpha: dict[str, Any], kernel: Kernel
) -> None:
    state = alpha["state"]
    account = lookup("enc-researcher")
    assert account is not None and account.uid != 0
    seen = kernel.value(
        "import os, pwd, socket\n"
        "print(json.dumps([os.getuid(), pwd.getpwuid(os.getuid()).pw_name, os.getcwd(),"
        " socket.gethostname(), sorted(os.listdir('/etc'))]))"
    )
    assert seen == [account.uid, "researcher", "/home/researcher", "enclave", ["group", "passwd"]]
    assert alpha["url"] == "/user/researcher/alpha/"
    sock = Path(state["socket"])
    assert sock.is_socket() and os.readlink(f"{sock}:80") == sock.name
    assert os.stat(sock).st_uid == account.uid
    assert state["pid"] in Cgroup.from_state(state["cgroup"]).pids()


def test_connecting_to_an_outside_address_fails(kernel: Kernel) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
            host_ip = udp.getsockname()[0]
        except OSError:
            host_ip = ""
    targets = [("1.1.1.1", 443), ("192.0.2.1", 80), ("169.254.169.254", 80)]
    if host_ip:
        targets.append((host_ip, 22))  # the host's own address on its network
    codes = kernel.value(f"print(json.dumps([connect(h, p) for h, p in {targets!r}]))")
    assert codes == ["ENETUNREACH"] * len(targets)


def test_dns_fails(kernel: Kernel) -> None:
    outcome = kernel.value(
        "import os\n"
        "try:\n"
        "    socket.getaddrinfo('pypi.org', 443)\n"
        "    answer = 'resolved'\n"
        "except socket.gaierror as error:\n"
        "    answer = 'gaierror'\n"
        "print(json.dumps([answer, os.path.exists('/etc/resolv.conf'),"
        " os.path.exists('/run/systemd/resolve'), os.path.exists('/var/run/nscd')]))"
    )
    assert outcome == ["gaierror", False, False, False]


def test_the_hosts_loopback_services_are_unreachable(
    hub: SandboxHub, kernel: Kernel, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=3):
        pass  # the host reaches it: the service is real
    listener.accept()[0].close()
    targets = [("127.0.0.1", port), ("127.0.0.1", hub.port), ("127.0.0.1", 5432)]
    codes = kernel.value(f"print(json.dumps([connect(h, p) for h, p in {targets!r}]))")
    assert codes == ["ECONNREFUSED"] * len(targets)
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing from the sandbox arrived


def test_another_projects_data_is_absent(hub: SandboxHub, kernel: Kernel) -> None:
    beta = hub.settings.data_dir / "projects" / "beta" / "data" / "extract.csv"
    environment = hub.env["ENCLAVE_HUB_PYTHON_ENVIRONMENT"]
    assert beta.read_text().endswith("beta-only-marker\n")  # it exists on the host
    found = kernel.value(
        textwrap.dedent(
            f"""
            import os
            hits = []
            skip = ('/proc', '/sys', '/dev', '/usr', {environment!r})
            for top, dirs, files in os.walk('/'):
                dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]
                for name in files:
                    try:
                        with open(os.path.join(top, name), 'rb') as handle:
                            text = handle.read(1 << 20)
                    except OSError:
                        continue
                    for marker in (b'alpha-only-marker', b'beta-only-marker'):
                        if marker in text:
                            hits.append([os.path.join(top, name), marker.decode()])
            print(json.dumps([sorted(hits), os.path.exists({str(beta)!r}),
                              os.path.exists({str(hub.settings.data_dir)!r})]))
            """
        )
    )
    assert found == [[["/home/researcher/data/extract.csv", "alpha-only-marker"]], False, False]


def test_other_users_homes_are_absent(hub: SandboxHub, kernel: Kernel) -> None:
    other = hub.settings.data_dir / "projects" / "alpha" / "home" / "other"
    other.mkdir(parents=True, exist_ok=True)
    (other / "notes.txt").write_text("other-home-marker\n")
    seen = kernel.value(
        f"import os\nprint(json.dumps([os.listdir('/home'), os.path.exists({str(other)!r}),"
        f" os.path.exists('/root'), os.path.exists('/home/other')]))"
    )
    assert seen == [["researcher"], False, False, False]


def test_the_data_directory_and_system_are_read_only(hub: SandboxHub, kernel: Kernel) -> None:
    project = hub.settings.data_dir / "projects" / "alpha"
    # even were the host's permissions wrong, the read-only mount must hold
    (project / "data").chmod(0o777)
    (project / "data" / "extract.csv").chmod(0o666)
    result = kernel.value(
        textwrap.dedent(
            """
            import os
            def write(path):
                try:
                    with open(path, 'a') as handle:
                        handle.write('tampered')
                    return 'written'
                except OSError as error:
                    return errno.errorcode.get(error.errno, str(error))
            print(json.dumps([
                write('/home/researcher/data/extract.csv'),
                write('/home/researcher/data/new.csv'),
                write('/usr/lib/planted'),
                write('/etc/passwd'),
                write('/home/researcher/notebook.txt'),
                write('/home/researcher/outbox/bundle.txt'),
                open('/home/researcher/data/extract.csv').read().strip(),
            ]))
            """
        )
    )
    assert result == [
        "EROFS",
        "EROFS",
        "EROFS",
        "EROFS",
        "written",
        "written",
        "secret,alpha-only-marker",
    ]
    account = lookup("enc-researcher")
    assert account is not None
    for path in (
        project / "home/researcher/notebook.txt",
        project / "outbox/researcher/bundle.txt",
    ):
        assert path.read_text() == "tampered"
        assert path.stat().st_uid == account.uid
    assert not (project / "data" / "new.csv").exists()


def test_no_host_processes_and_no_nested_namespaces(kernel: Kernel) -> None:
    seen = kernel.value(
        textwrap.dedent(
            """
            import ctypes, os
            pids = [p for p in os.listdir('/proc') if p.isdigit()]
            cmdlines = []
            for pid in pids:
                try:
                    cmdlines.append(open(f'/proc/{pid}/cmdline', 'rb').read())
                except OSError:
                    pass
            host = [c for c in cmdlines if b'jupyterhub\\x00-f' in c or b'http-proxy' in c]
            libc = ctypes.CDLL(None, use_errno=True)
            nested = libc.unshare(0x10000000)  # CLONE_NEWUSER
            print(json.dumps([len(pids), bool(host), nested, ctypes.get_errno() != 0]))
            """
        )
    )
    count, host_seen, nested, failed = seen
    assert count <= 6, "the sandbox sees more than its own few processes"
    assert host_seen is False
    assert nested == -1 and failed


def test_a_memory_hog_is_killed_by_the_limit(hub: SandboxHub, alpha: dict[str, Any]) -> None:
    hog = hub.kernel("researcher", "alpha")
    hog_code = (
        "chunks = []\nfor _ in range(40):\n    chunks.append(b'x' * 50_000_000)\nprint('survived')"
    )
    result = hog.run(hog_code, timeout=120)
    assert result.status == "died" and "survived" not in result.stdout
    memory = Path(alpha["state"]["cgroup"][0])  # v1: memory comes first; v2: the only one
    events = memory / "memory.oom_control"
    if not events.exists():
        events = memory / "memory.events"
    kills = dict(line.split() for line in events.read_text().splitlines())
    assert int(kills["oom_kill"]) >= 1
    # the OOM killer took the kernel, not the server
    assert hub.server("researcher", "alpha")["ready"]
    survivor = hub.kernel("researcher", "alpha")
    assert survivor.value("import json\nprint(json.dumps(6 * 7))") == 42


def test_refusals_carry_the_policys_reason(hub: SandboxHub) -> None:
    unknown = hub.api("POST", "/users/researcher/servers/gamma")
    assert unknown.status_code == 403 and "not in its group" in unknown.json()["message"]
    # in the hub group, but the control plane has no membership: the policy refuses
    hub.api("POST", "/groups/project-beta/users", json={"users": ["other"]}).raise_for_status()
    refused = hub.api("POST", "/users/other/servers/beta")
    assert refused.status_code == 403
    assert (
        refused.json()["message"] == "Cannot start beta: you are not a researcher on this project."
    )
    default = hub.api("POST", "/users/researcher/server")
    assert default.status_code == 400 and "server name is the project" in default.json()["message"]
    assert hub.server("other", "beta") is None
    assert "other@example.org" not in hub.log()  # no person-level data in the hub's log


def _singleuser_processes(state: dict[str, Any]) -> list[int]:
    """The Jupyter servers in the session's cgroup (not the keeper and bubblewrap, whose
    command lines name the server too)."""
    found = []
    for pid in Cgroup.from_state(state["cgroup"]).pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if len(argv) > 1 and argv[1].endswith(b"/jupyterhub-singleuser"):
            found.append(pid)
    return found


def test_a_hub_restart_neither_orphans_nor_duplicates_sessions() -> None:
    with sandbox_hub() as hub:
        first = hub.spawn("researcher", "alpha")
        kernel = hub.kernel("researcher", "alpha")
        kernel.run("import json\nx = 42")
        assert len(_singleuser_processes(first["state"])) == 1

        # 1. the hub crashes: the session lives on and the restarted hub takes it back
        hub.crash()
        hub.start()
        again = hub.server("researcher", "alpha")
        assert again is not None and again["ready"] and again["state"] == first["state"]
        assert kernel.value("print(json.dumps(x))") == 42  # the same kernel, through the proxy
        duplicate = hub.api("POST", "/users/researcher/servers/alpha")
        assert duplicate.status_code == 400 and "already running" in duplicate.text
        assert len(_singleuser_processes(first["state"])) == 1

        # 2. the session dies while the hub is down: the restarted hub's poll clears it
        hub.crash()
        Cgroup.from_state(first["state"]["cgroup"]).kill()
        hub.start()
        assert hub.server("researcher", "alpha") is None
        assert hub.leftovers() == []
        assert not Path(first["state"]["socket"]).parent.exists()

        # 3. a stop through the API removes the processes, the cgroup, socket and symlink
        second = hub.spawn("researcher", "alpha")
        hub.stop_server("researcher", "alpha")
        assert hub.leftovers() == [] and _singleuser_processes(second["state"]) == []
        assert not Path(second["state"]["socket"]).parent.exists()

        # 4. a clean shutdown stops every session and leaves nothing behind
        third = hub.spawn("researcher", "alpha")
        assert len(_singleuser_processes(third["state"])) == 1
        hub.shutdown()
        assert _singleuser_processes(third["state"]) == [] and hub.leftovers() == []
        assert not Path(third["state"]["socket"]).parent.exists()

        # every start and every end is in the control plane's audit log
        engine = make_engine(hub.settings.database_url)
        try:
            ends = audit.records(engine, action="session_stop", project="alpha")
            starts = audit.records(engine, action="start_session", project="alpha")
        finally:
            engine.dispose()
        assert [e.detail["reason"] for e in ends] == ["exited", "stopped", "stopped"]
        assert len([e for e in starts if e.outcome == "allowed"]) == 3
