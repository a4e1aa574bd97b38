"""Benchmark the microdata risk measures and methods (output_checker.microdata, issue 13).

Targets (issue 13), on 1M records with 6 key variables: fk/Fk, individual risk and k-anonymity
counts in under 3 s; local suppression to 3-anonymity in under 60 s; MDAV on 100k records x 5
variables in under 30 s; k-anonymity and l-diversity at least 10x faster than the anchor,
pycanon (PyPI), giving the same values.

Data: ``--rows`` synthetic records (seeded) with six categorical key variables of 2, 5, 10, 20,
50 and 100 categories drawn with skewed (Zipf-like) shares, as real keys are (sex, region,
age band, ...), and a sensitive variable of 8 categories whose shares depend on two keys.

Timed (wall, best of ``--runs``): fk/Fk (``frequencies``, unweighted and weighted), individual
risk (``individual_risk`` on the weighted frequencies), k-anonymity counts (#{fk < k} for
k = 2, 3, 5), ``measure_risk`` (weighted, all of the above plus global risk and threshold), and
l-diversity (``ldiversity``: distinct, entropy, recursive) on all rows; SUDA2 on the first
``--suda-rows``; local suppression to 3-anonymity on the first ``--supp-rows`` (all by default:
70 % of these records are below 3-anonymity, so most passes are batched) and MDAV (k = 3) on
``--mdav-rows`` x 5 numeric variables, one run each.

Anchor: pycanon in its own virtualenv (``--pycanon-venv``, made with ``python3 -m venv`` and
``pip install pycanon pyarrow`` when missing), run in a subprocess on the same data written to
a parquet file, timing ``k_anonymity`` and ``l_diversity`` for the six keys and for the first
three (where k and l are larger than 1, so the comparison is not trivial), one run: it loops
over equivalence classes in Python. It runs on the first ``--anchor-rows`` records (default
all); with fewer, our functions are timed again on that subsample for the ratio. The values
are asserted equal.

Usage: python benchmarks/bench_microdata.py [--rows 1000000] [--anchor-rows 1000000]
       [--suda-rows 100000] [--supp-rows 1000000] [--mdav-rows 100000] [--runs 3] [--seed 1]
       [--pycanon-venv /tmp/pycanon-venv] [--write PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from machine import machine_summary, run_and_report

from output_checker.microdata.methods.microaggregation import mdav
from output_checker.microdata.methods.suppression import local_suppression
from output_checker.microdata.risk.frequencies import frequencies
from output_checker.microdata.risk.individual import individual_risk, measure_risk
from output_checker.microdata.risk.ldiversity import ldiversity
from output_checker.microdata.risk.suda2 import suda2

CARDINALITIES = (2, 5, 10, 20, 50, 100)
KEYS = [f"key{c}" for c in CARDINALITIES]
SENSITIVE = "diagnosis"
TARGET_RATIO = 10.0
COMMAND = "python benchmarks/bench_microdata.py"

# Runs inside pycanon's own virtualenv: argv = parquet file, then JSON list of key lists.
ANCHOR = """
import json, sys, time
import pandas as pd
from pycanon import anonymity
data = pd.read_parquet(sys.argv[1])
out = []
for keys in json.loads(sys.argv[2]):
    t0 = time.perf_counter()
    k = anonymity.k_anonymity(data, keys)
    t1 = time.perf_counter()
    l_div = anonymity.l_diversity(data, keys, [sys.argv[3]])
    t2 = time.perf_counter()
    out.append({"keys": keys, "k": int(k), "l": int(l_div), "k_s": t1 - t0, "l_s": t2 - t1})
print(json.dumps(out))
"""


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    """Skewed categorical keys and a sensitive variable that depends on two of them."""
    rng = np.random.default_rng(seed)
    data = {}
    for name, card in zip(KEYS, CARDINALITIES, strict=True):
        shares = 1.0 / np.arange(1, card + 1) ** 0.8  # Zipf-like: a few large categories
        data[name] = rng.choice(card, size=rows, p=shares / shares.sum()).astype(np.int64)
    base = rng.integers(0, 8, rows)
    shift = (data["key2"] + data["key10"]) % 8
    data[SENSITIVE] = np.where(rng.random(rows) < 0.6, shift, base).astype(np.int64)
    return pd.DataFrame(data)


def _best(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, value = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ours(data: pd.DataFrame, runs: int) -> dict[str, Any]:
    """Time our risk measures on ``data``; values for the anchor comparison."""
    keys = data[KEYS]
    weights = np.full(len(data), 100.0)
    r: dict[str, Any] = {}
    r["fk_s"], freq = _best(lambda: frequencies(keys), runs)
    r["Fk_s"], wfreq = _best(lambda: frequencies(keys, weights), runs)
    r["indiv_s"], _ = _best(lambda: individual_risk(wfreq.fk, wfreq.Fk), runs)
    r["kanon_s"], r["kanon"] = _best(
        lambda: {k: int(np.count_nonzero(frequencies(keys).fk < k)) for k in (2, 3, 5)}, runs
    )
    r["measure_s"], measures = _best(lambda: measure_risk(keys, weights), runs)
    r["expected_reid"] = measures.expected_reidentifications
    r["ldiv_s"], ldiv = _best(lambda: ldiversity(keys, data[SENSITIVE]), runs)
    r["k"] = int(freq.fk.min())
    r["classes"] = round(float(np.sum(1.0 / freq.fk)))  # sum of 1/fk = number of patterns
    r["l"] = int(ldiv[f"{SENSITIVE}_Distinct_Ldiversity"].min())
    three = data[KEYS[:3]]
    r["k3_s"], f3 = _best(lambda: frequencies(three), runs)
    r["l3_s"], l3 = _best(lambda: ldiversity(three, data[SENSITIVE]), runs)
    r["k3"] = int(f3.fk.min())
    r["l3"] = int(l3[f"{SENSITIVE}_Distinct_Ldiversity"].min())
    return r


def pycanon_anchor(data: pd.DataFrame, venv: Path) -> list[dict[str, Any]]:
    """pycanon's k-anonymity and l-diversity on ``data``, in its own virtualenv."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "pycanon", "pyarrow"],
                       check=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.parquet"
        data.to_parquet(path)
        script = Path(tmp) / "anchor.py"
        script.write_text(ANCHOR)
        done = subprocess.run(
            [str(python), str(script), str(path), json.dumps([KEYS, KEYS[:3]]), SENSITIVE],
            check=True,
            capture_output=True,
            text=True,
        )
    result: list[dict[str, Any]] = json.loads(done.stdout)
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('pycanon'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    for row in result:
        row["version"] = version
    return result


def methods(data: pd.DataFrame, args: argparse.Namespace) -> dict[str, Any]:
    """One run each of SUDA2, local suppression and MDAV."""
    r: dict[str, Any] = {}
    _say("SUDA2")
    t0 = time.perf_counter()
    s = suda2(data[KEYS].iloc[: args.suda_rows])
    r["suda_s"] = time.perf_counter() - t0
    r["suda_scored"] = int(np.count_nonzero(s.score))
    _say("local suppression")
    t0 = time.perf_counter()
    supp = local_suppression(data[KEYS].iloc[: args.supp_rows], k=3)
    r["supp_s"] = time.perf_counter() - t0
    r["supp_total"] = int(supp.suppressed.sum())
    r["supp_violations"] = int(np.count_nonzero(frequencies(supp.keys).fk < 3))
    rng = np.random.default_rng(args.seed)
    x = rng.lognormal(size=(args.mdav_rows, 5)) @ rng.uniform(0.2, 1.0, size=(5, 5))
    _say("MDAV")
    t0 = time.perf_counter()
    groups = mdav(x, k=3)
    r["mdav_s"] = time.perf_counter() - t0
    r["mdav_min_group"] = int(np.bincount(groups).min())
    r["peak_mb"] = _peak_mb()
    return r


def report(args: argparse.Namespace, r: dict[str, Any], wall: float, load: tuple[str, str]) -> str:
    """Markdown report."""
    machine = machine_summary("numpy", "pandas")
    command = (
        f"{COMMAND} --rows {args.rows} --anchor-rows {args.anchor_rows} --suda-rows "
        f"{args.suda_rows} --supp-rows {args.supp_rows} --mdav-rows {args.mdav_rows} "
        f"--runs {args.runs} --seed {args.seed} --write PATH"
    )
    full, sub, anchor = r["full"], r["sub"], r["anchor"]
    m = r["methods"]
    ours_6 = sub["fk_s"] + sub["ldiv_s"]
    theirs_6 = anchor[0]["k_s"] + anchor[0]["l_s"]
    ours_3 = sub["k3_s"] + sub["l3_s"]
    theirs_3 = anchor[1]["k_s"] + anchor[1]["l_s"]
    ratio_6, ratio_3 = theirs_6 / ours_6, theirs_3 / ours_3
    met = min(ratio_6, ratio_3) >= TARGET_RATIO
    n = f"{args.rows:,}"
    lines = [
        "# Microdata risk benchmark (issue 13)",
        "",
        f"Machine: {machine}. Wall time of the whole benchmark: {wall:.0f} s. Load average "
        f"(1 min) at start and end: {load[0]}, {load[1]} (other work on the machine inflates "
        "the times).",
        "",
        f"Command: `{command}`",
        "",
        "## Method",
        "",
        f"- Data: {n} seeded synthetic records, six categorical keys of "
        f"{', '.join(map(str, CARDINALITIES))} categories with Zipf-like shares, a sensitive "
        "variable of 8 categories depending on two keys; no missing values (pycanon drops "
        "records with missing keys, sdcMicro treats them as wildcards).",
        f"- Ours: best of {args.runs} runs in this process. k-anonymity = min fk; l-diversity "
        "= min distinct l-diversity (our `ldiversity` also computes entropy and recursive "
        "l-diversity in the same call).",
        f"- Anchor: pycanon {anchor[0]['version']} (`anonymity.k_anonymity`, "
        "`anonymity.l_diversity`) in its own virtualenv on the same data read from parquet "
        f"(reading not timed), one run, on the first {min(args.anchor_rows, args.rows):,} "
        f"records (pycanon loops over the equivalence classes in Python; the six keys give "
        f"{sub['classes']:,} classes there). Our times on the same records give the ratio.",
        "",
        "## Results",
        "",
        f"| Ours on {n} records | Time (s) | Result |",
        "|---|---|---|",
        f"| fk (`frequencies`, unweighted) | {full['fk_s']:.3f} | k = {full['k']} |",
        f"| fk, Fk (`frequencies`, weights) | {full['Fk_s']:.3f} | |",
        f"| individual risk (`individual_risk`, survey formula) | {full['indiv_s']:.3f} | |",
        f"| k-anonymity counts #{{fk < k}}, k = 2, 3, 5 (fk included) | {full['kanon_s']:.3f} | "
        f"{', '.join(f'{v:,}' for v in full['kanon'].values())} |",
        f"| `measure_risk` (weighted: fk, Fk, risk, global risk, threshold) | "
        f"{full['measure_s']:.3f} | expected re-identifications "
        f"{full['expected_reid']:,.1f} |",
        f"| l-diversity (`ldiversity`, distinct + entropy + recursive) | {full['ldiv_s']:.3f} | "
        f"l = {full['l']} |",
        f"| k and l on the first three keys | {full['k3_s'] + full['l3_s']:.3f} | "
        f"k = {full['k3']}, l = {full['l3']} |",
        f"| SUDA2 on the first {args.suda_rows:,} records (64 key subsets) | {m['suda_s']:.2f} | "
        f"{m['suda_scored']:,} records with a score > 0 |",
        f"| local suppression to 3-anonymity (`local_suppression`) on the first "
        f"{min(args.supp_rows, args.rows):,} records | {m['supp_s']:.1f} | "
        f"{m['supp_total']:,} values suppressed, {m['supp_violations']} records left with "
        "fk < 3 |",
        f"| MDAV, k = 3, on {args.mdav_rows:,} x 5 (`mdav`) | {m['mdav_s']:.1f} | smallest "
        f"group {m['mdav_min_group']} |",
        "",
        f"Peak RSS: {m['peak_mb']:,.0f} MB.",
        "",
        *_time_targets(args, full, m),
        "",
        f"| Anchor comparison, first {min(args.anchor_rows, args.rows):,} records | "
        "pycanon (s) | ours (s) | "
        "ratio | values (both) |",
        "|---|---|---|---|---|",
        f"| six keys: k-anonymity | {anchor[0]['k_s']:.2f} | {sub['fk_s']:.3f} | "
        f"{anchor[0]['k_s'] / sub['fk_s']:.0f}x | k = {sub['k']} |",
        f"| six keys: l-diversity | {anchor[0]['l_s']:.2f} | {sub['ldiv_s']:.3f} | "
        f"{anchor[0]['l_s'] / sub['ldiv_s']:.0f}x | l = {sub['l']} |",
        f"| **six keys: both** | {theirs_6:.2f} | {ours_6:.3f} | **{ratio_6:.0f}x** | |",
        f"| three keys: k-anonymity | {anchor[1]['k_s']:.2f} | {sub['k3_s']:.3f} | "
        f"{anchor[1]['k_s'] / sub['k3_s']:.0f}x | k = {sub['k3']} |",
        f"| three keys: l-diversity | {anchor[1]['l_s']:.2f} | {sub['l3_s']:.3f} | "
        f"{anchor[1]['l_s'] / sub['l3_s']:.0f}x | l = {sub['l3']} |",
        f"| **three keys: both** | {theirs_3:.2f} | {ours_3:.3f} | **{ratio_3:.0f}x** | |",
        "",
        f"Target: ours at least {TARGET_RATIO:g}x faster than pycanon with equal values: "
        f"**{'met' if met else 'not met'}**.",
        "",
    ]
    return "\n".join(lines)


def _time_targets(args: argparse.Namespace, full: dict[str, Any], m: dict[str, Any]) -> list[str]:
    """The issue's time targets, each with what was measured against it."""
    risk = full["Fk_s"] + full["indiv_s"] + full["kanon_s"]  # kanon_s includes unweighted fk
    checks = [
        (f"fk/Fk, individual risk and k-anonymity counts on {args.rows:,} records", risk, 3.0),
        (f"local suppression to 3-anonymity on {min(args.supp_rows, args.rows):,} records",
         m["supp_s"], 60.0),
        (f"MDAV on {args.mdav_rows:,} x 5", m["mdav_s"], 30.0),
    ]  # fmt: skip
    verdict = {True: "met", False: "not met"}
    return [
        f"- {what}: {took:.2f} s, target under {limit:g} s: **{verdict[took < limit]}**"
        for what, took, limit in checks
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = synthetic(args.rows, args.seed)
    sub = data.iloc[: args.anchor_rows].reset_index(drop=True)
    _say(f"risk measures on {len(data):,} and {len(sub):,} records")
    result: dict[str, Any] = {"full": ours(data, args.runs)}
    result["sub"] = result["full"] if len(sub) == len(data) else ours(sub, args.runs)
    _say("pycanon")
    result["anchor"] = pycanon_anchor(sub, args.pycanon_venv)
    for got, (k, l_div) in zip(result["anchor"], [("k", "l"), ("k3", "l3")], strict=True):
        if (got["k"], got["l"]) != (result["sub"][k], result["sub"][l_div]):
            raise SystemExit(f"pycanon disagrees: {got} vs ours {result['sub']}")
    result["methods"] = methods(data, args)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--anchor-rows", type=int, default=1_000_000)
    parser.add_argument("--suda-rows", type=int, default=100_000)
    parser.add_argument("--supp-rows", type=int, default=1_000_000)
    parser.add_argument("--mdav-rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pycanon-venv", type=Path, default=Path("/tmp/pycanon-venv"))
    parser.add_argument("--write", type=Path, help="write the markdown report here")
    run_and_report(parser.parse_args(), run, report)


if __name__ == "__main__":
    main()
