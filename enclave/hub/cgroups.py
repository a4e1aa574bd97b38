"""Session cgroups, written directly (no systemd needed): memory, CPU and process limits.

A host is on cgroup v2 when ``<root>/cgroup.controllers`` exists; otherwise it is on v1 or
hybrid, where each controller has its own hierarchy (``<root>/memory``, ``<root>/cpu``,
``<root>/pids``). Sessions live under ``<parent>/<name>``; by default ``<parent>`` is the hub's
own cgroup plus ``enclave-sessions``, so whatever bounds the hub also bounds its sessions.

The spawner creates the cgroup, joins it in the child between fork and exec (``join_self``),
and kills and removes it at stop. Everything here needs root, as the hub has.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from enclave.hub.policy import Limits

DEFAULT_ROOT = Path("/sys/fs/cgroup")
SESSIONS = "enclave-sessions"
V1_CONTROLLERS = ("memory", "cpu", "pids")
CPU_PERIOD_US = 100_000


class CgroupError(RuntimeError):
    """A cgroup could not be created, limited, emptied or removed."""


def version(root: Path = DEFAULT_ROOT) -> int:
    """2 on a unified (v2) host, 1 on a v1 or hybrid host."""
    return 2 if (root / "cgroup.controllers").exists() else 1


def own_cgroups(proc_self_cgroup: str) -> dict[str, str]:
    """Parse ``/proc/self/cgroup``: controller name (``""`` for v2) -> path inside its hierarchy."""
    found: dict[str, str] = {}
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            found[controller.removeprefix("name=")] = parts[2]
    return found


def _read_own() -> dict[str, str]:
    return own_cgroups(Path("/proc/self/cgroup").read_text(encoding="ascii"))


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value, encoding="ascii")
    except OSError as error:
        raise CgroupError(f"cannot write {value!r} to {path}: {error.strerror}") from error


@dataclass(frozen=True)
class Cgroup:
    """One session's cgroup: a directory per controller on v1, a single directory on v2."""

    paths: tuple[Path, ...]

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return tuple(p / "cgroup.procs" for p in self.paths)

    def join_self(self) -> None:
        """Move the calling process into the cgroup (writing 0 means "me"). Safe between fork
        and exec: no allocation beyond the syscalls."""
        for path in self.procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    def pids(self) -> set[int]:
        """The live processes in the cgroup (all controllers; missing directories count as
        empty)."""
        found: set[int] = set()
        for path in self.procs_files:
            try:
                text = path.read_text(encoding="ascii")
            except FileNotFoundError:
                continue
            found.update(int(line) for line in text.split())
        return found

    def exists(self) -> bool:
        return any(p.is_dir() for p in self.paths)

    def cpu_seconds(self) -> float | None:
        """CPU time used by the cgroup's processes so far (usage data for the audit log):
        ``usage_usec`` of v2's ``cpu.stat``, or v1's ``cpuacct.usage`` where cpuacct shares
        the cpu hierarchy (``cpu,cpuacct``). None when neither can be read."""
        for path in self.paths:
            try:
                for line in (path / "cpu.stat").read_text(encoding="ascii").splitlines():
                    name, _, value = line.partition(" ")
                    if name == "usage_usec":
                        return int(value) / 1e6
            except (OSError, ValueError):
                pass
            try:
                return int((path / "cpuacct.usage").read_text(encoding="ascii")) / 1e9
            except (OSError, ValueError):
                continue
        return None

    def signal(self, sig: int, *, skip: Iterable[int] = ()) -> int:
        """Send ``sig`` to every process in the cgroup except ``skip``; returns how many."""
        sent = 0
        for pid in self.pids() - set(skip):
            try:
                os.kill(pid, sig)
                sent += 1
            except ProcessLookupError:
                pass
        return sent

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL every process until the cgroup is empty; CgroupError after ``timeout``
        seconds. Repeats because a process may fork between the read and the kill."""
        deadline = time.monotonic() + timeout
        for path in self.paths:  # v2 on Linux 5.14+: the kernel kills the whole tree at once
            if (path / "cgroup.kill").exists():
                _write(path / "cgroup.kill", "1")
        while self.signal(signal.SIGKILL) or self.pids():
            if time.monotonic() > deadline:
                raise CgroupError(f"processes survive in {self.paths[0]} after SIGKILL")
            time.sleep(0.02)

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left, then remove the directories (idempotent)."""
        self.kill(timeout)
        deadline = time.monotonic() + timeout
        for path in self.paths:
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    # EBUSY while the kernel finishes tearing down the last exited tasks
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(f"cannot remove {path}: {error.strerror}") from error
                    time.sleep(0.02)

    def to_state(self) -> list[str]:
        return [str(p) for p in self.paths]

    @classmethod
    def from_state(cls, paths: Sequence[str]) -> Cgroup:
        return cls(tuple(Path(p) for p in paths))


@dataclass(frozen=True)
class CgroupManager:
    """Creates session cgroups under ``root`` (the cgroup file system mount).

    ``parent`` is where sessions are created inside each hierarchy: an absolute path
    (``/enclave``) from the hierarchy's root, a relative one from the hub's own cgroup.
    """

    root: Path = DEFAULT_ROOT
    parent: str = SESSIONS

    @property
    def version(self) -> int:
        return version(self.root)

    def _parent(self, controller: str) -> str:
        if self.parent.startswith("/"):
            return self.parent.strip("/")
        own = _read_own().get(controller, "/")
        return f"{own.strip('/')}/{self.parent or SESSIONS}".strip("/")

    def parents(self) -> tuple[Path, ...]:
        """The directories that hold the session cgroups (one per v1 controller)."""
        if self.version == 2:
            return (self.root / self._parent(""),)
        return tuple(self.root / c / self._parent(c) for c in V1_CONTROLLERS)

    def path_for(self, name: str) -> Cgroup:
        """Where the session cgroup ``name`` lives (nothing is created)."""
        if "/" in name or name in ("", ".", ".."):
            raise CgroupError(f"invalid cgroup name {name!r}")
        if self.version == 2:
            return Cgroup((self.root / self._parent("") / name,))
        return Cgroup(tuple(self.root / c / self._parent(c) / name for c in V1_CONTROLLERS))

    def create(self, name: str, limits: Limits) -> Cgroup:
        """Create (or reuse) the session cgroup ``name`` and write ``limits`` into it."""
        group = self.path_for(name)
        if self.version == 2:
            self._prepare_v2(group.paths[0].parent)
        else:
            for controller in V1_CONTROLLERS:
                if not (self.root / controller).is_dir():
                    raise CgroupError(f"the cgroup v1 {controller} controller is not mounted")
        for path in group.paths:
            path.mkdir(parents=True, exist_ok=True)
        try:
            if self.version == 2:
                _limit_v2(group.paths[0], limits)
            else:
                _limit_v1(dict(zip(V1_CONTROLLERS, group.paths, strict=True)), limits)
        except CgroupError:
            group.remove()  # an unlimited session must not be left to start
            raise
        return group

    def _prepare_v2(self, parent: Path) -> None:
        """Create ``parent`` and enable memory, cpu and pids for the children of every level
        from the root down. v2 forbids processes in a cgroup that hands controllers to
        children, so when a level is the hub's own cgroup, the processes in it move into a
        ``hub`` leaf first (what systemd's ``Delegate=yes`` documentation prescribes)."""
        own = self.root / _read_own().get("", "/").strip("/")
        relative = parent.relative_to(self.root)
        level = self.root
        for part in relative.parts:
            _enable_controllers(level, own, self.root)
            level = level / part
            level.mkdir(exist_ok=True)
        _enable_controllers(level, own, self.root)


def _enable_controllers(level: Path, own: Path, root: Path) -> None:
    available = set((level / "cgroup.controllers").read_text(encoding="ascii").split())
    enabled = set((level / "cgroup.subtree_control").read_text(encoding="ascii").split())
    wanted = {"memory", "cpu", "pids"} & available - enabled
    if not wanted:
        return
    procs = (level / "cgroup.procs").read_text(encoding="ascii").split()
    if procs and level != root and level == own:
        leaf = level / "hub"
        leaf.mkdir(exist_ok=True)
        for pid in procs:
            try:
                _write(leaf / "cgroup.procs", pid)
            except CgroupError:
                if Path(f"/proc/{pid}").exists():
                    raise
    _write(level / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted)))


def _limit_v1(paths: dict[str, Path], limits: Limits) -> None:
    memory = paths["memory"]
    if limits.memory_bytes is not None:
        _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
        memsw = memory / "memory.memsw.limit_in_bytes"
        if memsw.exists():  # swap accounting on: no swapping around the limit
            _write(memsw, str(limits.memory_bytes))
    cpu = paths["cpu"]
    _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
    quota = -1 if limits.cpus is None else max(1000, round(limits.cpus * CPU_PERIOD_US))
    _write(cpu / "cpu.cfs_quota_us", str(quota))
    _write(paths["pids"] / "pids.max", "max" if limits.pids is None else str(limits.pids))


def _limit_v2(path: Path, limits: Limits) -> None:
    def maybe(name: str, value: str, wanted: bool) -> None:
        target = path / name
        if target.exists():
            _write(target, value)
        elif wanted:
            raise CgroupError(f"{name} is not available in {path}: enable its controller")

    memory = limits.memory_bytes
    maybe("memory.max", "max" if memory is None else str(memory), memory is not None)
    maybe("memory.swap.max", "max" if memory is None else "0", False)
    cpus = limits.cpus
    quota = "max" if cpus is None else str(max(1000, round(cpus * CPU_PERIOD_US)))
    maybe("cpu.max", f"{quota} {CPU_PERIOD_US}", cpus is not None)
    pids = limits.pids
    maybe("pids.max", "max" if pids is None else str(pids), pids is not None)
