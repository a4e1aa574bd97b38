"""The reviewed wheelhouse in a session: mounted read-only at a fixed path, pip pointed at its
index by the session's environment, and still no network. The last test runs the real
bubblewrap sandbox: pip installs an approved wheel inside it and nothing else."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from enclave.control import wheelhouse
from enclave.control.service.packages import PACKAGES_DIR
from enclave.hub import sandbox
from enclave.hub.spawner import _base_interpreter, _data_fd, _wheelhouse
from enclave.hub.systemd import properties
from tests.enclave.control.test_packages import make_wheel
from tests.enclave.hub.sandboxhub import bwrap
from tests.enclave.hub.test_sandbox_plan import PLAN, _pairs
from tests.enclave.hub.test_systemd import ALLOWED, PLAIN, SETTINGS, plan_for

WHEELHOUSE = Path("/srv/enclave/packages")
WITH_PACKAGES = dataclasses.replace(PLAN, packages=WHEELHOUSE)


def test_the_wheelhouse_is_mounted_read_only_and_the_network_stays_unshared() -> None:
    args = sandbox.bwrap_args(WITH_PACKAGES, sandbox.Fds(7, 8))
    head = args[: args.index("--")]
    assert (str(WHEELHOUSE), wheelhouse.INSIDE) in _pairs(head, "--ro-bind")
    assert all(source != str(WHEELHOUSE) for source, _ in _pairs(head, "--bind"))
    assert "--unshare-all" in head and "--share-net" not in head
    # without a wheelhouse nothing is mounted there
    plain = sandbox.bwrap_args(PLAN, sandbox.Fds(7, 8))
    assert wheelhouse.INSIDE not in plain


def test_the_session_environment_points_pip_at_the_wheelhouse_only() -> None:
    env = sandbox.session_env(WITH_PACKAGES, {})
    assert env["PIP_CONFIG_FILE"] == f"{wheelhouse.INSIDE}/pip.conf"
    assert "PIP_CONFIG_FILE" not in sandbox.session_env(PLAN, {})
    conf = wheelhouse.pip_conf()
    assert f"index-url = file://{wheelhouse.INSIDE}/simple/" in conf
    assert "extra-index-url" not in conf and "only-binary = :all:" in conf


def test_the_spawner_mounts_the_wheelhouse_once_its_index_exists(tmp_path: Path) -> None:
    assert _wheelhouse(tmp_path) is None
    (tmp_path / PACKAGES_DIR).mkdir()
    (tmp_path / PACKAGES_DIR / "pip.conf").write_text(wheelhouse.pip_conf())
    assert _wheelhouse(tmp_path) == tmp_path / PACKAGES_DIR


def test_the_systemd_unit_binds_the_wheelhouse_read_only() -> None:
    plan = dataclasses.replace(plan_for(ALLOWED), packages=WHEELHOUSE)
    props = properties(ALLOWED, plan, SETTINGS, PLAIN)
    assert ("BindReadOnlyPaths", f"{WHEELHOUSE}:{wheelhouse.INSIDE}") in props
    assert ("PrivateNetwork", "yes") in props
    assert all(
        value != f"{WHEELHOUSE}:{wheelhouse.INSIDE}" for key, value in props if key == "BindPaths"
    )


def _wheelhouse_with(root: Path, wheel: Path) -> None:
    """A wheelhouse holding ``wheel`` in its index, as an approval writes it."""
    (root / "wheels").mkdir(parents=True)
    shutil.copy(wheel, root / "wheels" / wheel.name)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    for relative, text in wheelhouse.index_pages({wheel.name: sha}).items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    (root / "pip.conf").write_text(wheelhouse.pip_conf())


INSIDE_SCRIPT = """
import socket, subprocess, sys
pip = [sys.executable, "-m", "pip", "install", "-q"]  # into ~/packages (PIP_TARGET)
ok = subprocess.run([*pip, "tiny-pkg"], capture_output=True, text=True)
print("approved", ok.returncode, ok.stderr[-300:].replace("\\n", " "))
missing = subprocess.run([*pip, "requests"], capture_output=True, text=True)
print("missing", missing.returncode, "No matching distribution" in missing.stderr)
import importlib
importlib.invalidate_caches()
import tiny_pkg  # importable as installed: ~/packages is on PYTHONPATH
print("imported", tiny_pkg.WHO)
try:
    socket.create_connection(("1.1.1.1", 443), timeout=3)
    print("network", "open")
except OSError:
    print("network", "closed")
"""


def test_pip_inside_the_real_sandbox_installs_only_from_the_wheelhouse(tmp_path: Path) -> None:
    bwrap()  # installs bubblewrap on a fresh machine
    root = tmp_path / "packages"
    _wheelhouse_with(root, make_wheel(tmp_path / "downloads", "tiny-pkg"))
    home = tmp_path / "home"
    home.mkdir()
    environment = Path(sys.prefix)
    base = _base_interpreter(environment)
    plan = sandbox.SandboxPlan(
        username="rae",
        uid=os.getuid(),
        gid=os.getgid(),
        environment=environment,
        extra_ro=(base,) if base else (),
        home=home,
        socket_dir=tmp_path,
        hub_socket=None,
        packages=root,
        command=(str(environment / "bin" / "python"), "-c", INSIDE_SCRIPT),
    )
    fds = (_data_fd(sandbox.identity(plan).passwd), _data_fd(sandbox.identity(plan).group))
    try:
        done = subprocess.run(
            sandbox.bwrap_args(plan, sandbox.Fds(*fds)),
            env=sandbox.session_env(plan, {}),
            pass_fds=fds,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        for fd in fds:
            os.close(fd)
    # no user namespaces means no sandbox at all: that is a failure of the setting, not a skip
    assert "No permissions to create new namespace" not in done.stderr, done.stderr[-300:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["approved"].startswith("0"), done.stdout + done.stderr
    assert lines["missing"] == "1 True"
    assert lines["imported"] == "tiny-pkg"
    assert lines["network"] == "closed"
