"""Facts about the machine a benchmark ran on, shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any


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


def run_and_report(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    report: Callable[[argparse.Namespace, dict[str, Any], float, tuple[str, str]], str],
) -> dict[str, Any]:
    """Run a benchmark, then print its report (and write it to ``args.write`` when given):
    the report gets the whole run's wall seconds and the load average before and after."""
    load_start = load_average()
    started = time.perf_counter()
    result = run(args)
    wall = time.perf_counter() - started
    text = report(args, result, wall, (load_start, load_average()))
    if args.write:
        args.write.write_text(text)
    print(text)
    return result
