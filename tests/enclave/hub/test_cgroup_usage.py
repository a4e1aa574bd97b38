"""The CPU time a session's cgroup used, read at stop for the usage data (``session_stop``'s
``cpu_seconds``): v2's ``cpu.stat``, v1's ``cpuacct.usage`` when cpuacct shares the cpu
hierarchy, else nothing (never a guess)."""

from __future__ import annotations

from pathlib import Path

from enclave.hub.cgroups import Cgroup


def _dirs(tmp_path: Path, *names: str) -> tuple[Path, ...]:
    paths = tuple(tmp_path / name / "s1" for name in names)
    for path in paths:
        path.mkdir(parents=True)
    return paths


def test_v2_usage_comes_from_cpu_stat(tmp_path: Path) -> None:
    (unified,) = _dirs(tmp_path, "unified")
    (unified / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    assert Cgroup((unified,)).cpu_seconds() == 2.5


def test_v1_usage_comes_from_a_co_mounted_cpuacct(tmp_path: Path) -> None:
    memory, cpu, pids = _dirs(tmp_path, "memory", "cpu", "pids")
    (cpu / "cpu.stat").write_text("nr_periods 4\nnr_throttled 0\nthrottled_time 0\n")
    assert Cgroup((memory, cpu, pids)).cpu_seconds() is None  # cpu alone keeps no usage
    (cpu / "cpuacct.usage").write_text("1500000000\n")
    assert Cgroup((memory, cpu, pids)).cpu_seconds() == 1.5


def test_an_unreadable_or_removed_cgroup_reports_nothing(tmp_path: Path) -> None:
    (unified,) = _dirs(tmp_path, "unified")
    (unified / "cpu.stat").write_text("usage_usec not-a-number\n")
    assert Cgroup((unified,)).cpu_seconds() is None
    assert Cgroup((tmp_path / "gone",)).cpu_seconds() is None
