"""Benchmark the output checker against pandas and ACRO 1.0.2 (spec §14).

For each data size, one 10 x 100 = 1,000-cell table (index ``cat_a``, columns ``cat_b`` and
``cat_c``) is computed by several operations. Every measurement runs in its own fresh Python
process, which regenerates the same synthetic data from the same seed (checked by a checksum),
so one operation's memory never inflates another's peak. Data generation and imports are
excluded from the timings. Time is the best of ``--repeat`` runs; then one more run under
tracemalloc gives the extra peak allocated during the operation (numpy and pandas report their
buffers to tracemalloc).

Usage: python benchmarks/bench_checker.py [--rows 1000000 5000000] [--repeat 3] [--write PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machine import cpu_and_ram

MB = 1e6
COMMAND = "python benchmarks/bench_checker.py"
# ACRO at 5M rows takes ~15 s per table; one run there keeps the whole benchmark near 5 min.
ACRO_SINGLE_RUN_FROM = 2_000_000
TABLE = ("cat_a", ["cat_b", "cat_c"])


@dataclass(frozen=True)
class Op:
    key: str
    label: str
    group: str  # "floor", "pandas", "ours", "acro"
    statistic: str  # "count" or "mean"


OPS = (
    Op("floor", "groupby size/sum/max (floor)", "floor", "mean"),
    Op("crosstab_count", "pd.crosstab count", "pandas", "count"),
    Op("crosstab_mean", "pd.crosstab mean", "pandas", "mean"),
    Op("ours_count", "check_table count (rows as units)", "ours", "count"),
    Op("ours_mean", "check_table mean (rows as units)", "ours", "mean"),
    Op("ours_count_entity", "check_table count, entity=entity_id", "ours", "count"),
    Op("ours_mean_entity", "check_table mean, entity=entity_id", "ours", "mean"),
    Op("acro_count", "ACRO crosstab count", "acro", "count"),
    Op("acro_mean", "ACRO crosstab mean", "acro", "mean"),
)
OP_BY_KEY = {op.key: op for op in OPS}


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # Linux: KiB


def _operation(key: str, df: Any) -> Callable[[], object]:
    """The operation to time, with its library imported and any set-up done beforehand."""
    import pandas as pd

    index, columns = TABLE
    if key == "floor":
        return lambda: df.groupby([index, *columns], observed=True)["income"].agg(
            ["size", "sum", "max"]
        )
    if key == "crosstab_count":
        return lambda: pd.crosstab(df[index], [df[c] for c in columns])
    if key == "crosstab_mean":
        return lambda: pd.crosstab(
            df[index], [df[c] for c in columns], values=df.income, aggfunc="mean"
        )
    if key.startswith("ours"):
        import output_checker

        kwargs: dict[str, Any] = {}
        if key.startswith("ours_mean"):
            kwargs.update(values="income", aggfunc="mean")
        if key.endswith("entity"):
            kwargs["entity"] = "entity_id"
        return lambda: output_checker.check_table(df, index, columns, **kwargs)
    if key.startswith("acro"):
        import acro

        # ACRO configures INFO logging to stderr at import; send it to /dev/null instead of
        # raising the level, so every message is still formatted exactly as in normal use.
        devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(devnull)
        session = acro.ACRO(suppress=False)
        if key == "acro_count":
            return lambda: session.crosstab(df[index], [df[c] for c in columns])
        return lambda: session.crosstab(
            df[index], [df[c] for c in columns], values=df.income, aggfunc="mean"
        )
    raise ValueError(f"unknown operation {key!r}")


def _cells(result: object) -> int:
    """Number of displayed cells, as a sanity check that every operation built the table."""
    table = getattr(result, "table", None)
    if table is not None and hasattr(table, "shown"):
        return int(table.shown.sum())
    shape = getattr(result, "shape", (0, 0))
    if getattr(result, "index", None) is not None and result.index.nlevels > 1:  # type: ignore[attr-defined]
        return int(shape[0])  # the floor: one row per non-empty cell
    return int(shape[0] * shape[1])


def worker(key: str, n_rows: int, seed: int, repeat: int) -> dict[str, Any]:
    """Run one measurement in this (fresh) process and return its numbers."""
    from enclave.synth import generate

    df = generate(n_rows, seed=seed)
    data_bytes = int(df.memory_usage(deep=True).sum())
    checksum = float(df.income.sum()) + float(df.entity_id.sum()) + float(df.cat_c.cat.codes.sum())
    run = _operation(key, df)
    rss_before = _max_rss_mb()
    times = []
    cells = 0
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
        cells = _cells(result)
        del result
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = run()
    extra = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del result
    return {
        "op": key,
        "rows": n_rows,
        "times": times,
        "best": min(times),
        "cells": cells,
        "data_mb": data_bytes / MB,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _max_rss_mb(),
        "extra_mb": extra / MB,
        "checksum": checksum,
    }


def import_worker(module: str) -> dict[str, Any]:
    """Time ``import module`` from a fresh interpreter (its dependencies included)."""
    rss_before = _max_rss_mb()
    start = time.perf_counter()
    __import__(module)
    return {"seconds": time.perf_counter() - start, "rss_mb": _max_rss_mb() - rss_before}


def _spawn(args: list[str], cwd: str) -> dict[str, Any]:
    out = Path(cwd) / "result.json"
    out.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args, "--out", str(out)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"worker {args} failed: " + " | ".join(tail))
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _machine() -> dict[str, str]:
    import numpy
    import pandas

    cpu, ram = cpu_and_ram()
    try:
        from importlib.metadata import version

        acro_version = version("acro")
    except Exception:
        acro_version = "not installed"
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": ram,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "acro": acro_version,
    }


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _fmt(x: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "" if x is None else f"{x:{spec}}{suffix}"


def analyse(results: list[dict[str, Any]]) -> tuple[list[list[str]], list[str]]:
    """Table rows and verdict lines from the raw measurements."""
    by = {(r["rows"], r["op"]): r for r in results}
    rows_out: list[list[str]] = []
    verdicts: list[str] = []
    for n in sorted({r["rows"] for r in results}):
        best = {op.key: by[(n, op.key)]["best"] for op in OPS if (n, op.key) in by}
        for op in OPS:
            r = by.get((n, op.key))
            if r is None:
                continue
            ours = best.get(f"ours_{op.statistic}")
            acro_ratio = (
                _ratio(best.get(f"acro_{op.statistic}"), ours) if op.group == "acro" else None
            )
            rows_out.append(
                [
                    f"{n:,}",
                    op.label,
                    _fmt(r["best"]),
                    str(len(r["times"])),
                    _fmt(_ratio(r["best"], best.get("floor")), ".2f", "x"),
                    _fmt(_ratio(r["best"], best.get(f"crosstab_{op.statistic}")), ".2f", "x"),
                    _fmt(acro_ratio, ".1f", "x"),
                    str(r["cells"]),
                    _fmt(r["data_mb"], ".0f"),
                    _fmt(r["peak_rss_mb"], ".0f"),
                    _fmt(r["extra_mb"], ".0f"),
                    _fmt(r["extra_mb"] / r["data_mb"], ".2f", "x"),
                ]
            )
        speed_target = 20.0 if n <= 1_000_000 else 10.0
        for stat in ("count", "mean"):
            ratio = _ratio(best.get(f"acro_{stat}"), best.get(f"ours_{stat}"))
            if ratio is not None:
                verdicts.append(
                    f"{n:,} rows, {stat}: ACRO/ours = {ratio:.1f}x "
                    f"(target >= {speed_target:.0f}x): "
                    + ("**met**" if ratio >= speed_target else "**not met**")
                )
        floor = by.get((n, "floor"))
        if floor is not None:
            verdicts.append(
                f"{n:,} rows, for reference: the groupby floor itself allocates "
                f"{floor['extra_mb']:.0f} MB = {floor['extra_mb'] / floor['data_mb']:.2f} x data"
            )
        for op in OPS:
            r = by.get((n, op.key))
            if op.group != "ours" or r is None:
                continue
            ratio = _ratio(r["best"], best.get("floor"))
            if ratio is not None:
                verdicts.append(
                    f"{n:,} rows, {op.label}: ours/floor = {ratio:.2f}x (target <= 2x): "
                    + ("**met**" if ratio <= 2.0 else "**not met**")
                )
            share = r["extra_mb"] / r["data_mb"]
            verdicts.append(
                f"{n:,} rows, {op.label}: extra peak {r['extra_mb']:.0f} MB = {share:.2f} x data "
                f"({r['data_mb']:.0f} MB) (target <= 0.5x): "
                + ("**met**" if share <= 0.5 else "**not met**")
            )
    return rows_out, verdicts


HEADER = [
    "Rows",
    "Operation",
    "Time (s)",
    "Runs",
    "vs floor",
    "vs pd.crosstab",
    "ACRO/ours",
    "Cells",
    "Data (MB)",
    "Peak RSS (MB)",
    "Extra peak (MB)",
    "Extra/data",
]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


METHOD = """\
## Method

Data: `enclave.synth.microdata.generate(n, seed={seed})`: three Zipf-weighted (s = 1.1)
Categoricals of 10 levels (`cat_a`, `cat_b`, `cat_c`), a lognormal `income` and an `entity_id`
with about two rows per entity. Table: index `cat_a` by columns `[cat_b, cat_c]`, 10 x 100 =
1,000 cells. Every row of the table below is its own fresh Python process that regenerates the
same data from the seed (a checksum confirms it) and imports only the library it measures, so
peak RSS covers interpreter, imports, data and the operation, and nothing else. Time is the best
of the runs shown, for the operation only (no data generation, no imports, no ACRO session
set-up). "Extra peak" is the tracemalloc peak during one further run of the operation: the
memory it allocates on top of the data (numpy and pandas report their buffers to tracemalloc).
"Data" is `df.memory_usage(deep=True).sum()`. The floor is
`df.groupby(["cat_a","cat_b","cat_c"], observed=True)["income"].agg(["size","sum","max"])`.
Ours is `output_checker.check_table(...)` with default conventions (a count table also checks
class disclosure, which needs the row, column and grand totals); ACRO is
`acro.ACRO(suppress=False).crosstab(...)` run in a temporary working directory. ACRO's logging
was left **on** at its own INFO level, as in the anchor, with the handler's stream sent to
/dev/null, so every message (including the DataFrame debugging string ACRO builds eagerly for
each table) is still formatted. ACRO runs once per size from {acro_from:,} rows.

Anchor (spec §14: ACRO 1.0.2 on a 2 vCPU AMD EPYC, 23 GiB, Python 3.11.7, pandas 2.3.3):
ACRO count 2.81 s / mean 4.55 s at 1M rows (pd.crosstab 0.672 / 0.244 s, groupby 0.285 /
0.157 s); ACRO count 10.8 s / mean 16.2 s at 5M rows (pd.crosstab 3.60 / 1.44 s, groupby 0.61 /
0.65 s); peak RSS 563 / 566 MB at 1M and 1,819 / 1,840 MB at 5M, against 378 / 1,469 MB for the
data alone (inferred from those figures, about 270 bytes a row, so probably string labels;
the Categoricals here weigh 19 bytes a row, which makes "extra/data" a much stricter test);
`import acro` about 1.9 s and 127 MB. Targets: ACRO/ours >= 20x at 1M and >= 10x at 5M;
ours/floor <= 2x; extra peak during the operation <= 0.5 x the data.
"""


OTHER_BENCHMARKS_NOTE = (
    "Other benchmarks, each beside its anchor: table protection (secondary suppression, LP "
    "audit) against the hypercube baseline, `benchmarks/bench_protection.py`, in "
    "[RESULTS-protection.md](RESULTS-protection.md); record linkage against Splink's published "
    "figures, `benchmarks/bench_linkage.py`, in [RESULTS-linkage.md](RESULTS-linkage.md); the "
    "review queue under load, `benchmarks/bench_queue.py`, in "
    "[RESULTS-queue.md](RESULTS-queue.md); sandboxed sessions (spawn latency, 20 at once), "
    "`benchmarks/bench_hub.py`, in [RESULTS-hub.md](RESULTS-hub.md); impact evaluations "
    "(bias, coverage, matching a cohort in a large pool), `benchmarks/bench_datalab.py`, in "
    "[RESULTS-datalab.md](RESULTS-datalab.md); the differencing ledger's audit of a new "
    "output against 500 released tables, `benchmarks/bench_ledger.py`, in "
    "[RESULTS-ledger.md](RESULTS-ledger.md) (with tables over 50,000 people each, in "
    "[RESULTS-ledger-50k.md](RESULTS-ledger-50k.md)); the microdata toolkit (risk measures, local "
    "suppression and MDAV on 1M records) against pycanon, `benchmarks/bench_microdata.py`, in "
    "[RESULTS-microdata.md](RESULTS-microdata.md)."
)


def report(
    machine: dict[str, str],
    command: str,
    rows: list[list[str]],
    verdicts: list[str],
    imports: dict[str, dict[str, float]],
    seed: int,
    elapsed: float,
    load: tuple[str, str],
) -> str:
    import_rows = [
        [name, f"{v['seconds']:.3f}", f"{v['rss_mb']:.0f}"] for name, v in imports.items()
    ]
    import_ratio = _ratio(
        imports.get("acro", {}).get("seconds"), imports.get("output_checker", {}).get("seconds")
    )
    parts = [
        "# Checker benchmark\n",
        OTHER_BENCHMARKS_NOTE + "\n",
        "Machine: "
        + ", ".join(f"{k} {v}" for k, v in machine.items())
        + f". Wall time of the whole benchmark: {elapsed:.0f} s. Load average (1 min) at start "
        + f"{load[0]}, at end {load[1]}: other work on the machine inflates the times.\n",
        f"Command: `{command}`\n",
        markdown_table(HEADER, rows),
        "",
        "Imports (fresh interpreter, dependencies included, best of 3):\n",
        markdown_table(["Module", "Import (s)", "RSS added (MB)"], import_rows),
        "",
        ""
        if import_ratio is None
        else f"`import acro` / `import output_checker` = {import_ratio:.1f}x.\n",
        "## Verdicts\n",
        *[f"- {v}" for v in verdicts],
        "",
        METHOD.format(seed=seed, acro_from=ACRO_SINGLE_RUN_FROM),
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ops", nargs="+", default=[op.key for op in OPS], choices=list(OP_BY_KEY))
    parser.add_argument("--write", type=Path, help="write the markdown report here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--import-module", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.import_module:
        args.out.write_text(json.dumps(import_worker(args.import_module)))
        return 0
    if args.worker:
        result = worker(args.worker, args.rows[0], args.seed, args.repeat)
        args.out.write_text(json.dumps(result))
        return 0

    started = time.perf_counter()
    load_start = _load()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_checker_") as cwd:
        imports: dict[str, dict[str, float]] = {}
        for module in ("output_checker", "acro"):
            runs = [_spawn(["--import-module", module], cwd) for _ in range(3)]
            imports[module] = min(runs, key=lambda r: r["seconds"])
            print(f"import {module}: {imports[module]['seconds']:.3f} s", flush=True)
        for n in args.rows:
            checksums = set()
            for key in args.ops:
                single = OP_BY_KEY[key].group == "acro" and n >= ACRO_SINGLE_RUN_FROM
                repeat = 1 if single else args.repeat
                spec = ["--worker", key, "--rows", str(n), "--seed", str(args.seed)]
                r = _spawn([*spec, "--repeat", str(repeat)], cwd)
                checksums.add(r["checksum"])
                results.append(r)
                print(
                    f"{n:>9,} {OP_BY_KEY[key].label:<40} {r['best']:8.3f} s  cells {r['cells']:>5}"
                    f"  peak RSS {r['peak_rss_mb']:6.0f} MB  extra {r['extra_mb']:6.0f} MB",
                    flush=True,
                )
            if len(checksums) != 1:
                raise RuntimeError(f"workers saw different data at {n:,} rows")
    rows, verdicts = analyse(results)
    print(markdown_table(HEADER, rows))
    print("\n".join(verdicts))
    if args.write:
        command = COMMAND + " " + " ".join(argv if argv is not None else sys.argv[1:])
        args.write.write_text(
            report(
                _machine(),
                command.strip(),
                rows,
                verdicts,
                imports,
                args.seed,
                time.perf_counter() - started,
                (load_start, _load()),
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
