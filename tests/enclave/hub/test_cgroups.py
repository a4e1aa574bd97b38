"""Session cgroups on the real kernel (root only): create with limits, join between fork and
exec, kill everything, remove. The memory limit's effect (an OOM kill) is probed end to end in
``test_sandbox_hub``."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.hub.cgroups import Cgroup, CgroupError, CgroupManager, own_cgroups, version
from enclave.hub.policy import Limits

ROOT = Path("/sys/fs/cgroup")


def test_own_cgroups_parses_v1_hybrid_and_v2_lines() -> None:
    text = "9:name=systemd:/\n4:memory:/a/b\n2:cpu,cpuacct:/\n0::/unified/x\n"
    assert own_cgroups(text) == {
        "systemd": "/",
        "memory": "/a/b",
        "cpu": "/",
        "cpuacct": "/",
        "": "/unified/x",
    }


@pytest.fixture
def manager() -> Iterator[CgroupManager]:
    if os.geteuid() != 0:
        pytest.skip("cgroups need root")
    chosen = CgroupManager(ROOT, f"enclave-test-{uuid.uuid4().hex[:8]}")
    yield chosen
    for parent in chosen.parents():
        if parent.is_dir():
            for child in parent.iterdir():
                if child.is_dir():
                    Cgroup((child,)).remove()
            parent.rmdir()


def _sleeper(group: Cgroup) -> subprocess.Popen[bytes]:
    """A child that joins ``group`` between fork and exec, then forks a grandchild."""
    return subprocess.Popen(
        ["sh", "-c", "sleep 60 & sleep 60"], preexec_fn=group.join_self, start_new_session=True
    )


def test_limits_are_written_and_every_process_is_counted_and_killed(
    manager: CgroupManager,
) -> None:
    group = manager.create("s1", Limits(memory_bytes=300 * 1024**2, cpus=0.5, pids=64))
    if version(ROOT) == 1:
        memory, cpu, pids = group.paths
        assert int((memory / "memory.limit_in_bytes").read_text()) == 300 * 1024**2
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (pids / "pids.max").read_text().strip() == "64"
        # sessions nest under the hub's own cgroup, so the hub's bounds hold for them too
        own = own_cgroups(Path("/proc/self/cgroup").read_text())["memory"].strip("/")
        assert memory.parent.parent == ROOT / "memory" / own
    else:
        (path,) = group.paths
        assert (path / "memory.max").read_text().strip() == str(300 * 1024**2)
        assert (path / "cpu.max").read_text().split() == ["50000", "100000"]
    child = _sleeper(group)
    try:
        deadline = 50
        while len(group.pids()) < 3 and deadline:  # sh and both sleeps
            deadline -= 1
            subprocess.run(["sleep", "0.05"], check=True)
        assert child.pid in group.pids() and len(group.pids()) == 3
        group.remove()
        assert child.wait(timeout=5) == -9
        assert not group.exists() and group.pids() == set()
    finally:
        if child.poll() is None:
            child.kill()


def test_a_pids_limit_stops_a_fork_bomb(manager: CgroupManager) -> None:
    group = manager.create("s2", Limits(memory_bytes=None, cpus=None, pids=5))
    bomb = subprocess.run(
        ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait"],
        preexec_fn=group.join_self,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "fork" in bomb.stderr.lower() or "resource" in bomb.stderr.lower()
    group.remove()


def test_a_leftover_cgroup_is_reused_and_state_round_trips(manager: CgroupManager) -> None:
    first = manager.create("s3", Limits())
    again = manager.create("s3", Limits(pids=10))
    assert first == again == Cgroup.from_state(first.to_state())
    assert manager.path_for("s3") == first
    first.remove()
    first.remove()  # idempotent
    assert not first.exists()


@pytest.mark.parametrize("name", ["", "..", "a/b"])
def test_names_cannot_leave_the_parent(manager: CgroupManager, name: str) -> None:
    with pytest.raises(CgroupError, match="invalid cgroup name"):
        manager.path_for(name)


def test_cgroup_v2_hierarchy_joins_kills_and_removes() -> None:
    """On hybrid hosts the unified hierarchy exists without controllers: the v2 code path
    still creates, joins, kills and removes there (limits need controllers it lacks)."""
    unified = ROOT / "unified"
    if os.geteuid() != 0 or not (unified / "cgroup.controllers").exists():
        pytest.skip("needs root and a cgroup v2 hierarchy at /sys/fs/cgroup/unified")
    manager = CgroupManager(unified, f"/enclave-test-{uuid.uuid4().hex[:8]}")
    group = manager.create("s4", Limits(memory_bytes=None, cpus=None, pids=None))
    child = _sleeper(group)
    try:
        while len(group.pids()) < 3:
            subprocess.run(["sleep", "0.05"], check=True)
        group.remove()
        assert child.wait(timeout=5) == -9 and not group.exists()
    finally:
        if child.poll() is None:
            child.kill()
        manager.parents()[0].rmdir()
    limited = CgroupManager(unified, f"/enclave-test-{uuid.uuid4().hex[:8]}")
    with pytest.raises(CgroupError, match=r"memory\.max is not available"):
        limited.create("s5", Limits())  # a limit that cannot be enforced refuses the session
    assert not limited.path_for("s5").exists()
    limited.parents()[0].rmdir()
