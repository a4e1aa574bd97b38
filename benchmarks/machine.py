"""Facts about the machine a benchmark ran on, shared by the benchmark scripts."""

from __future__ import annotations

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
