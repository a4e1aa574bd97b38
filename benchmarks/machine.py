"""Facts about the machine a benchmark ran on, shared by the benchmark scripts."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version
from pathlib import Path


def cpu_and_ram() -> tuple[str, str]:
    """CPU model and total memory from /proc ("unknown" where it cannot be read)."""
    cpu, ram = "unknown", "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return cpu, ram


def machine_summary(*packages: str) -> str:
    """ "nproc, cpu, ram, python" and the installed version of each of ``packages``: the
    first line of every benchmark report."""
    cpu, ram = cpu_and_ram()
    versions = "".join(f", {name} {version(name)}" for name in packages)
    return (
        f"nproc {len(os.sched_getaffinity(0))}, cpu {cpu}, ram {ram}, "
        f"python {platform.python_version()}{versions}"
    )


def load_average() -> str:
    """The 1-minute load average ("unknown" where it cannot be read)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"
