"""Benchmark the sandboxed sessions (enclave.hub): spawn latency and concurrent sessions.

Cases, on one real hub (JupyterHub 6.1.1, configurable-http-proxy 5.3.0, BwrapSpawner; the
test suite's harness, ``tests/enclave/hub/sandboxhub.py``):

1. Spawn latency: ``--spawns`` times in a row, one researcher starts the server of a project
   through the REST API, the client polls the hub every 50 ms until the server is ready, then
   stops it. Reported from the client (request to ready) and from the hub's own log ("took N
   seconds to start"). Target: median <= 5 s.
2. Concurrency: ``--sessions`` researchers request their servers at once; when all are ready,
   each starts a kernel and runs a small analysis (pandas: read a 200,000-row extract, group
   by two variables, count, mean and median), all at once. Reported: time until every server
   is ready, per-session analysis time, failures, and the sessions' memory (sum over their
   cgroups). Target: 20 sessions on a 2-core, 24 GB machine.

Needs root. The load average before and after is recorded: other work on the machine slows
every number here.

Usage: sudo python benchmarks/bench_hub.py [--spawns 10] [--sessions 20] [--write PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any

from machine import cpu_and_ram

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from enclave.hub.cgroups import Cgroup  # noqa: E402
from tests.enclave.hub.sandboxhub import SandboxHub, sandbox_hub  # noqa: E402

ROWS = 200_000
ANALYSIS = """
import json, time
started = time.perf_counter()
import pandas as pd
frame = pd.read_csv('/home/{user}/data/survey.csv')
table = frame.groupby(['region', 'sex'])['income'].agg(['count', 'mean', 'median'])
print(json.dumps({{"cells": len(table), "seconds": time.perf_counter() - started}}))
"""


def write_extract(hub: SandboxHub) -> None:
    """A synthetic survey extract in project alpha's data directory (read-only, as built)."""
    path = hub.settings.data_dir / "projects" / "alpha" / "data" / "survey.csv"
    lines = ["region,sex,income"]
    lines += [f"r{i % 12},{'FM'[i % 2]},{20_000 + (i * 7919) % 50_000}" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o444)


def wait_ready(hub: SandboxHub, user: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = hub.server(user, "alpha")
        if server and server["ready"]:
            return
        if not server or not server.get("pending"):
            raise RuntimeError(f"{user}/alpha did not start")
        time.sleep(0.05)
    raise RuntimeError(f"{user}/alpha not ready in {timeout} s")


def spawn_latency(hub: SandboxHub, count: int) -> dict[str, Any]:
    client: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        response = hub.api("POST", "/users/researcher/servers/alpha")
        if response.status_code not in (201, 202):
            raise RuntimeError(f"spawn refused: {response.status_code} {response.text}")
        wait_ready(hub, "researcher")
        client.append(time.perf_counter() - started)
        hub.stop_server("researcher", "alpha")
    took = [float(x) for x in re.findall(r"researcher:alpha took ([0-9.]+) seconds", hub.log())]
    return {"client": client, "hub": took[-count:]}


def concurrent_sessions(hub: SandboxHub, sessions: int) -> dict[str, Any]:
    users = [f"r{i:02d}" for i in range(1, sessions + 1)]
    started = time.perf_counter()
    for user in users:
        response = hub.api("POST", f"/users/{user}/servers/alpha")
        if response.status_code not in (201, 202):
            raise RuntimeError(f"{user}: {response.status_code} {response.text}")
    with ThreadPoolExecutor(max_workers=sessions) as pool:
        list(pool.map(lambda u: wait_ready(hub, u), users))
    all_ready = time.perf_counter() - started

    def analyse(user: str) -> dict[str, Any]:
        began = time.perf_counter()
        try:
            kernel = hub.kernel(user, "alpha")
            outcome = kernel.value(ANALYSIS.format(user=user), timeout=300)
        except Exception as error:  # a failed session is a result, not a crash
            return {"user": user, "failed": str(error)[:200]}
        return {"user": user, "wall": time.perf_counter() - began, **outcome}

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=sessions) as pool:
        results = list(pool.map(analyse, users))
    analysis_wall = time.perf_counter() - began
    memory = 0
    for user in users:
        server = hub.server(user, "alpha")
        if server and server.get("state", {}).get("cgroup"):
            group = Cgroup.from_state(server["state"]["cgroup"])
            usage = group.paths[0] / "memory.usage_in_bytes"
            if not usage.exists():
                usage = group.paths[0] / "memory.current"
            memory += int(usage.read_text())
    return {
        "all_ready": all_ready,
        "analysis_wall": analysis_wall,
        "results": results,
        "memory_bytes": memory,
    }


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def report(spawns: dict[str, Any], crowd: dict[str, Any], args: argparse.Namespace) -> str:
    cpu, ram = cpu_and_ram()
    bwrap = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.split()
    ok = [r for r in crowd["results"] if "failed" not in r]
    failed = [r for r in crowd["results"] if "failed" in r]
    client, took = spawns["client"], spawns["hub"]
    median = statistics.median(client)
    lines = [
        "# Sandboxed sessions benchmark",
        "",
        f"Machine: nproc {os.cpu_count()}, cpu {cpu}, ram {ram}, python "
        f"{platform.python_version()}, jupyterhub {version('jupyterhub')}, bubblewrap "
        f"{bwrap[-1]}"
        f", cgroup {'v2' if Path('/sys/fs/cgroup/cgroup.controllers').exists() else 'v1'}. "
        f"Load average before: {args.load_before}; after: {_load()} (above nproc, other work "
        "competed for the CPUs).",
        "",
        f"Command: `sudo python benchmarks/bench_hub.py --spawns {args.spawns} --sessions "
        f"{args.sessions} --write PATH`",
        "",
        "## Spawn latency (request to ready server)",
        "",
        "| measured by | n | median s | min s | max s | target |",
        "|---|---|---|---|---|---|",
        f"| client (POST, poll every 50 ms) | {len(client)} | {median:.2f} | {min(client):.2f} | "
        f"{max(client):.2f} | median <= 5 s: {'met' if median <= 5 else 'NOT met'} |",
    ]
    if took:
        lines.append(
            f'| hub log ("took N seconds to start") | {len(took)} | '
            f"{statistics.median(took):.2f} | {min(took):.2f} | {max(took):.2f} | |"
        )
    walls = [r["wall"] for r in ok]
    inner = [r["seconds"] for r in ok]
    lines += [
        "",
        f"## {args.sessions} concurrent sessions",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| time until all {args.sessions} servers were ready | {crowd['all_ready']:.1f} s |",
        f"| sessions whose analysis succeeded | {len(ok)} of {args.sessions} |",
        f"| analysis, all at once (kernel start + run), wall | {crowd['analysis_wall']:.1f} s |",
    ]
    if walls:
        lines += [
            f"| per session, kernel start + analysis: median / max | "
            f"{statistics.median(walls):.1f} s / {max(walls):.1f} s |",
            f"| per session, the analysis alone (pandas import, read, group): median / max | "
            f"{statistics.median(inner):.1f} s / {max(inner):.1f} s |",
        ]
    lines += [
        f"| memory of all sessions after the analysis (sum of cgroups) | "
        f"{crowd['memory_bytes'] / 1024**3:.2f} GiB |",
        "",
        "The analysis: pandas reads a 200,000-row extract (region, sex, income) from the "
        "session's read-only data directory, then groups by region and sex (count, mean, "
        "median). Each session is limited to 1 CPU and 1 GiB.",
    ]
    if failed:
        lines += ["", "Failures: " + "; ".join(f"{r['user']}: {r['failed']}" for r in failed)]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spawns", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--write", type=Path, help="write the markdown report here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_hub needs root (Unix accounts, cgroups, setuid)", file=sys.stderr)
        return 2
    args.load_before = _load()
    try:
        with sandbox_hub(mem_limit=1024**3, extra_researchers=args.sessions) as hub:
            write_extract(hub)
            spawns = spawn_latency(hub, args.spawns)
            crowd = concurrent_sessions(hub, args.sessions)
    finally:  # the benchmark's own researchers' Unix accounts
        for i in range(1, args.sessions + 1):
            subprocess.run(["userdel", f"enc-r{i:02d}"], check=False, capture_output=True)
    text = report(spawns, crowd, args)
    print(text)
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    failed = any("failed" in r for r in crowd["results"])
    return 1 if failed or statistics.median(spawns["client"]) > 5 else 0


if __name__ == "__main__":
    sys.exit(main())
