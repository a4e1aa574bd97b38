"""Benchmark secondary cell suppression (output_checker.protection, spec §10.4 and §10.6).

Four synthetic tables with totals, each protected by the method the brief names and fully
audited, beside a hypercube baseline on the same table (``heuristic.hypercube_start``: each
primary's cheapest hypercube, no repair), audited with the same LP audit:

1. 2-D 50 x 50 frequency table (51 x 51 cells), ``protect_exact`` (target < 10 s);
2. 3-D 10 x 10 x 10 frequency table with every margin (11^3 cells), ``protect`` (target < 30 s);
3. 2-D 200 x 200 frequency table (201 x 201 cells), ``protect_heuristic`` (target < 60 s);
4. 2-D 30 x 30 magnitude table (sums), p%-style levels of 30 % of the value on 5 % of cells.

Counts are Poisson with Zipf row/column (/layer) effects and log-normal noise; the scale is
solved so that the expected share of inner cells with 0 < n < T = 10 is ``PRIMARY_SHARE``.
Those cells are the primaries, with UPL = LPL = 1.

Each protection run is timed (wall, best of ``runs``) under a probe that wraps, without
changing them, ``master.Master.integer`` (the master MIP), ``cuts.attacker_cuts`` (one audit
round of the cut, repair or prune loops), ``audit.AttackerLP.solve_many`` (attacker bounds
asked for) and the single LP solve inside it (see ``_lp_hook``), so the report says where the
time went. A run that exceeds ``--budget-factor`` x its target is stopped there (the whole
benchmark has to fit in about 5 minutes); its verdict is then "not met, more than N s", with
the work it had done by then and an estimate of what is left. Results follow the working tree:
the report names the commit, any uncommitted change to the protection package and a hash of
its sources.

Usage: python benchmarks/bench_protection.py [--quick] [--seed 1] [--write PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from machine import load_average, machine_summary
from scipy.sparse.csgraph import connected_components
from scipy.stats import poisson

from output_checker.protection import (
    ProtectionResult,
    TableModel,
    audit,
    protect,
    protect_exact,
    protect_heuristic,
)
from output_checker.protection.heuristic import EXACT_MAX_CELLS
from output_checker.protection.hypercube import hypercube_start
from output_checker.protection.problem import prepare
from output_checker.status import Status

# The package re-exports the functions ``audit`` and ``protect_exact``, which shadow their
# modules as attributes of the package: take the modules themselves.
audit_mod: Any = sys.modules["output_checker.protection.audit"]
exact_mod: Any = sys.modules["output_checker.protection.exact"]
cuts_mod: Any = sys.modules["output_checker.protection.cuts"]
result_mod: Any = sys.modules["output_checker.protection.result"]
master_mod: Any = sys.modules["output_checker.protection.master"]

COMMAND = "python benchmarks/bench_protection.py"
THRESHOLD = 10  # frequency rule: 0 < n < T is primary
PRIMARY_SHARE = 0.07  # expected share of primary inner cells in the frequency tables
ZIPF_EXPONENT = 0.6
NOISE_SIGMA = 0.8
MAGNITUDE_SHARE = 0.05  # primaries in the magnitude table
MAGNITUDE_LEVEL = 0.30  # UPL = LPL = this share of the primary's value
QUICK_BUDGET = 5.0  # seconds per run in --quick mode
SAMPLE_PRIMARIES = 40  # primaries audited when a full baseline audit would not fit the budget

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


# ----- data ------------------------------------------------------------------------------------
def _zipf_means(rng: np.random.Generator, shape: tuple[int, ...]) -> FloatArray:
    """Relative cell means: a product of shuffled Zipf effects per dimension, log-normal noise."""
    mu = np.ones(shape)
    for d, n in enumerate(shape):
        w = 1.0 / np.arange(1, n + 1) ** ZIPF_EXPONENT
        w = rng.permutation(w / w.mean())
        mu = mu * w.reshape([n if k == d else 1 for k in range(len(shape))])
    return mu * rng.lognormal(-(NOISE_SIGMA**2) / 2, NOISE_SIGMA, shape)


def _scale_for_share(mu: FloatArray, share: float) -> float:
    """The scale s (on the decreasing branch) with mean P(0 < Poisson(s·mu) < T) = share."""

    def expected(s: float) -> float:
        lam = s * mu
        return float((poisson.cdf(THRESHOLD - 1, lam) - poisson.pmf(0, lam)).mean())

    grid = np.geomspace(0.1, 1e7, 100)
    lo = float(grid[int(np.argmax([expected(s) for s in grid]))])
    hi = 1e7
    for _ in range(60):
        mid = float(np.sqrt(lo * hi))
        lo, hi = (mid, hi) if expected(mid) > share else (lo, mid)
    return hi


@dataclass(frozen=True)
class Table:
    model: TableModel
    values: FloatArray
    primary: BoolArray
    upl: FloatArray | float
    describe: str


def frequency_table(rng: np.random.Generator, shape: tuple[int, ...]) -> Table:
    """Counts with every margin; primaries are the cells with 0 < n < T, UPL = LPL = 1."""
    mu = _zipf_means(rng, shape)
    counts = rng.poisson(_scale_for_share(mu, PRIMARY_SHARE) * mu)
    model = TableModel.with_totals(list(shape))
    values = model.complete(counts)
    primary = (values > 0) & (values < THRESHOLD)
    inner = counts.ravel()
    share, zeros = float(((inner > 0) & (inner < THRESHOLD)).mean()), float((inner == 0).mean())
    describe = f"counts, {share:.1%} of inner cells primary, {zeros:.1%} zero"
    return Table(model, values, primary, 1.0, describe)


def magnitude_table(rng: np.random.Generator, shape: tuple[int, ...]) -> Table:
    """Sums of log-normal contributions (Poisson numbers of contributors per cell). The
    primaries are the MAGNITUDE_SHARE of inner cells where the largest contributor has the
    largest share of the cell (where a p% or dominance rule bites first), with
    UPL = LPL = MAGNITUDE_LEVEL x value."""
    mu = _zipf_means(rng, shape)
    n = rng.poisson(20.0 * mu).ravel()
    owner = np.repeat(np.arange(n.size), n)
    contrib = rng.lognormal(3.0, 1.2, owner.size)
    sums = np.bincount(owner, weights=contrib, minlength=n.size)
    top = np.zeros(n.size)
    np.maximum.at(top, owner, contrib)
    share = np.divide(top, sums, out=np.zeros(n.size), where=sums > 0)
    k = round(MAGNITUDE_SHARE * n.size)
    sensitive = np.zeros(n.size, dtype=bool)
    sensitive[np.argsort(-share, kind="stable")[:k]] = True
    model = TableModel.with_totals(list(shape))
    values = model.complete(sums.reshape(shape))
    primary = np.zeros(model.n_cells, dtype=bool)
    primary[~model.is_total] = sensitive  # inner cells, in row-major order as ``complete``
    upl = np.where(primary, MAGNITUDE_LEVEL * values, 0.0)
    return Table(model, values, primary, upl, f"sums, {k} primaries, levels 30% of value")


# ----- probe -----------------------------------------------------------------------------------
class OverBudget(Exception):
    """Raised by the probe when a run exceeds its time budget."""


def _lp_hook() -> tuple[Any, str, Callable[[tuple[Any, ...]], int]]:
    """Where single LP solves can be seen in ``audit``, and how many LPs one call solves.

    The audit's LP back end is being tuned (a warm-started ``highspy`` model per block, or
    batched ``linprog`` calls), so the probe takes whichever hook the installed code has."""
    attacker = audit_mod.AttackerLP
    if hasattr(attacker, "_solve_one"):
        return attacker, "_solve_one", lambda args: 1
    if hasattr(audit_mod, "linprog"):
        # One objective entry of ±1 per LP in a block-diagonal batch.
        return audit_mod, "linprog", lambda args: int(np.count_nonzero(args[0]))
    raise RuntimeError("no LP hook found in output_checker.protection.audit")


@dataclass
class Probe:
    """Time spent in the master MILP, in attacker bounds and in LP solves during one run."""

    budget: float = float("inf")
    start: float = 0.0
    master_calls: int = 0
    master_time: float = 0.0
    master_times: list[float] = field(default_factory=list)
    master_cuts: int = 0
    lower_bound: float = float("nan")  # the last master solve's bound on the secondary cost
    rounds: int = 0
    cuts_found: list[int] = field(default_factory=list)
    bounds_asked: int = 0
    bounds_time: float = 0.0  # in AttackerLP.solve_many (LP solves included)
    lps: int = 0
    lp_time: float = 0.0
    phase: str = "start"  # what the run was doing last: for a run stopped over budget
    open_bounds: int = 0  # bounds asked by the unfinished solve_many call (0: none)
    open_lps: int = 0  # LPs solved before that call

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def _check(self) -> None:
        if self.elapsed() > self.budget:
            raise OverBudget

    @contextmanager
    def attached(self) -> Iterator[Probe]:
        """Wrap the hooks for the duration of the block (restored afterwards)."""
        lp_owner, lp_name, lps_per_call = _lp_hook()
        attacker = audit_mod.AttackerLP
        originals = [
            (master_mod.Master, "integer", master_mod.Master.integer),
            (exact_mod, "attacker_cuts", exact_mod.attacker_cuts),
            (cuts_mod, "attacker_cuts", cuts_mod.attacker_cuts),
            (result_mod, "audit", result_mod.audit),  # the final audit of ``assess``
            (attacker, "solve_many", attacker.solve_many),
            (lp_owner, lp_name, getattr(lp_owner, lp_name)),
        ]
        orig_master, orig_cuts, _, orig_audit, orig_many, orig_lp = (o[2] for o in originals)

        def master(solver: Any, seconds: float) -> Any:
            self.phase = f"master MILP {self.master_calls + 1}"
            self._check()
            t = time.perf_counter()
            solution = orig_master(solver, seconds)
            dt = time.perf_counter() - t
            self.master_calls += 1
            self.master_time += dt
            self.master_times.append(dt)
            self.master_cuts = len(solver.keys)
            self.lower_bound = solution.bound
            return solution

        def cuts(*args: Any, **kwargs: Any) -> Any:
            self.phase = f"audit round {self.rounds + 1} of the cut/repair loop"
            self._check()
            out = orig_cuts(*args, **kwargs)
            self.rounds += 1
            self.cuts_found.append(len(out[0]))
            return out

        def final_audit(*args: Any, **kwargs: Any) -> Any:
            self.phase = "the final full audit"
            self._check()
            return orig_audit(*args, **kwargs)

        def many(lp: Any, cells: Any, *args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            self.open_bounds, self.open_lps = len(cells), self.lps
            self.bounds_asked += len(cells)
            try:
                out = orig_many(lp, cells, *args, **kwargs)
            finally:
                self.bounds_time += time.perf_counter() - t
            self.open_bounds = 0
            return out

        def solve(*args: Any, **kwargs: Any) -> Any:
            self._check()
            t = time.perf_counter()
            res = orig_lp(*args, **kwargs)
            self.lp_time += time.perf_counter() - t
            # For a method, args[0] is the AttackerLP; linprog's first argument is c.
            self.lps += lps_per_call(args)
            return res

        wrappers: tuple[Callable[..., Any], ...] = (master, cuts, cuts, final_audit, many, solve)
        for (owner, name, _), wrapper in zip(originals, wrappers, strict=True):
            setattr(owner, name, wrapper)
        self.start = time.perf_counter()
        try:
            yield self
        finally:
            for owner, name, original in originals:
                setattr(owner, name, original)


# ----- cases -----------------------------------------------------------------------------------
Method = Callable[..., ProtectionResult]
METHODS: dict[str, Method] = {
    "protect_exact": protect_exact,
    "protect": protect,
    "protect_heuristic": protect_heuristic,
}


@dataclass(frozen=True)
class Case:
    label: str
    kind: str  # "frequency" | "magnitude"
    shape: tuple[int, ...]
    method: str
    runs: int
    target: float | None = None  # seconds
    fallback: str | None = None  # method to run when the first one is over budget


FREQ, MAG, EXACT, AUTO, HEUR = (
    "frequency",
    "magnitude",
    "protect_exact",
    "protect",
    "protect_heuristic",
)
QUICK_CASES = (
    Case("2-D 20x20, exact", FREQ, (20, 20), EXACT, 2, 10.0),
    Case("3-D 4x4x4, protect()", FREQ, (4, 4, 4), AUTO, 1, 30.0, HEUR),
    Case("2-D 40x40, heuristic", FREQ, (40, 40), HEUR, 1, 60.0),
    Case("2-D 15x15 sums, exact", MAG, (15, 15), EXACT, 1),
)
FULL_CASES = (
    Case("2-D 50x50, exact", FREQ, (50, 50), EXACT, 3, 10.0),
    Case("2-D 50x50, heuristic (same table)", FREQ, (50, 50), HEUR, 2),
    Case("3-D 10x10x10, protect()", FREQ, (10, 10, 10), AUTO, 1, 30.0, HEUR),
    Case("3-D 5x5x5, exact (smaller, for the cost ratio)", FREQ, (5, 5, 5), EXACT, 1),
    Case("2-D 200x200, heuristic", FREQ, (200, 200), HEUR, 1, 60.0),
    Case("2-D 30x30 sums, exact", MAG, (30, 30), EXACT, 1),
)


@dataclass
class Attempt:
    method: str
    time: float  # best completed run, or elapsed when stopped
    runs: int
    probe: Probe
    result: ProtectionResult | None  # None when stopped over budget
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # profile findings for a stopped run


def attempt(table: Table, method: str, runs: int, budget: float) -> Attempt:
    """Best of ``runs`` runs of a protection method, each checked; stops over budget."""
    best: Attempt | None = None
    for _ in range(runs):
        probe = Probe(budget)
        try:
            with probe.attached():
                result = METHODS[method](
                    table.model, table.values, table.primary, table.upl, table.upl
                )
        except OverBudget:
            stopped = probe.elapsed()
            return Attempt(method, stopped, 1, probe, None)
        elapsed = probe.elapsed()
        if best is None or elapsed < best.time:
            best = Attempt(method, elapsed, runs, probe, result, verify(table, result))
    assert best is not None
    return best


def verify(table: Table, r: ProtectionResult) -> list[str]:
    """What is wrong with a finished result (empty if it passes, fully audited)."""
    problems = []
    if r.status is not Status.PASS:
        problems.append(f"status {r.status.label}: {r.reason}")
    if not r.protected.all():
        problems.append(f"{int((~r.protected).sum())} primaries unprotected in its own audit")
    if not np.array_equal(r.audit.cells, np.flatnonzero(r.suppressed)):
        problems.append("the audit does not cover every suppressed cell")
    if not r.suppressed[table.primary].all():
        problems.append("a primary is published")
    return problems


@dataclass
class Baseline:
    time: float
    secondaries: int
    cost: float
    totals: int
    audit_time: float
    audited: int  # primaries audited (all, or a sample)
    unprotected: int  # among the audited
    ms_per_lp: float
    blocks: int  # independent LP blocks of the pattern (cells linked through relations)


def lp_blocks(model: TableModel, suppressed: BoolArray) -> int:
    """How many independent attacker LPs the suppressed cells split into."""
    sub = model.constraints()[:, np.flatnonzero(suppressed)]
    link = (abs(sub).T @ abs(sub)).tocsr()
    return int(connected_components(link, directed=False)[0])


def baseline(table: Table, budget: float, rng: np.random.Generator) -> Baseline:
    """The hypercube pattern before repair, its cost and its audit: of every primary, or only
    of a sample when the sample's time says auditing them all would take over budget / 3."""
    t = time.perf_counter()
    p = prepare(table.model, table.values, table.primary, table.upl, table.upl)
    x = hypercube_start(p)
    built = time.perf_counter() - t
    prim = np.flatnonzero(table.primary)
    targets = np.sort(rng.choice(prim, size=min(SAMPLE_PRIMARIES, prim.size), replace=False))
    probe = Probe()
    with probe.attached():
        res = audit(table.model, table.values, x, targets=targets)
    full_estimate = probe.elapsed() * prim.size / max(targets.size, 1)
    if targets.size < prim.size and full_estimate < budget / 3:
        targets, probe = prim, Probe()
        with probe.attached():
            res = audit(table.model, table.values, x, targets=targets)
    ok = res.protected(targets, table.upl, table.upl)
    sec = x & ~p.primary
    return Baseline(
        built,
        int(sec.sum()),
        float(p.costs[sec].sum()),
        int((sec & table.model.is_total).sum()),
        probe.elapsed(),
        int(targets.size),
        int((~ok).sum()),
        1000 * probe.lp_time / max(probe.lps, 1),
        lp_blocks(table.model, x),
    )


@dataclass
class Outcome:
    case: Case
    table: Table
    attempts: list[Attempt]
    base: Baseline


def run_case(
    case: Case,
    seed: int,
    budget_factor: float,
    quick: bool,
    done: dict[Any, tuple[Table, Baseline]],
) -> Outcome:
    """Protect one case's table (built and baselined once per kind and shape, see ``done``)."""
    budget = budget_factor * case.target if case.target else 120.0
    if quick:
        budget = min(budget, QUICK_BUDGET)
    key = (case.kind, case.shape)
    if key not in done:
        # The same seed, kind and shape give the same table, whatever the other cases.
        rng = np.random.default_rng([seed, case.kind == MAG, *case.shape])
        make = frequency_table if case.kind == FREQ else magnitude_table
        table = make(rng, case.shape)
        done[key] = (table, baseline(table, budget, rng))
    table, base = done[key]
    first = attempt(table, case.method, case.runs, budget)
    attempts = [first]
    if first.result is None and case.fallback:
        attempts.append(attempt(table, case.fallback, 1, budget))
    return Outcome(case, table, attempts, base)


# ----- report ----------------------------------------------------------------------------------
def _machine() -> str:
    return machine_summary("numpy", "scipy", "highspy")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _sources_digest() -> str:
    """A short hash of the protection package's sources, as found on disk now."""
    digest = hashlib.sha256()
    for source in sorted(Path(audit_mod.__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def _code_state() -> str:
    """The commit, and whether the protection package differs from it (results follow the
    working tree, which other work may be changing)."""
    package = Path(audit_mod.__file__).parent  # the code actually imported
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=package,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
            cwd=package,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return f"{package} (not in a git work tree)"
    files = [line[3:] for line in changed if line.strip()]
    return (
        f"commit {head}"
        + (f", with uncommitted changes to {', '.join(files)}" if files else "")
        + f" (sha256 of protection/*.py: {_sources_digest()})"
    )


_load = load_average


def _method_name(o: Outcome, a: Attempt) -> str:
    if a.method == "protect":
        picked = "exact" if o.table.model.n_cells <= EXACT_MAX_CELLS else "heuristic"
        return f"protect ({picked})"
    return a.method


def result_rows(outcomes: list[Outcome]) -> list[list[str]]:
    rows = []
    for o in outcomes:
        m, base = o.table.model, o.base
        for a in o.attempts:
            r = a.result
            cells = f"{m.n_cells:,}"
            head = [o.case.label, cells, f"{int(o.table.primary.sum())}", _method_name(o, a)]
            if r is None:
                rows.append([*head, "stopped", f"> {a.time:.2f}", "1", "", "", "", "", "", ""])
                continue
            ratio = f"{r.cost / base.cost:.2f}" if base.cost > 0 else ""
            bound = ""
            if r.lower_bound is not None:
                bound = "optimal" if r.optimal else f"{r.lower_bound:,.0f}"
            rows.append(
                [
                    *head,
                    r.status.label,
                    f"{a.time:.2f}",
                    str(a.runs),
                    str(int(r.secondary.sum())),
                    f"{r.cost:,.0f}",
                    str(int((r.secondary & m.is_total).sum())),
                    str(int((~r.protected).sum())),
                    ratio,
                    bound,
                ]
            )
    return rows


def baseline_rows(outcomes: list[Outcome]) -> list[list[str]]:
    rows = []
    seen = set()
    for o in outcomes:
        b = o.base
        key = (o.case.kind, o.case.shape)
        if key in seen:
            continue
        seen.add(key)
        audited = f"{b.audited}" + (" (sample)" if b.audited < o.table.primary.sum() else "")
        rows.append(
            [
                o.case.label.split(",")[0],
                o.table.describe,
                f"{b.time:.2f}",
                str(b.secondaries),
                f"{b.cost:,.0f}",
                str(b.totals),
                f"{b.audit_time:.2f}",
                audited,
                str(b.unprotected),
                f"{b.ms_per_lp:.1f}",
                str(b.blocks),
            ]
        )
    return rows


def profile_rows(outcomes: list[Outcome]) -> list[list[str]]:
    rows = []
    for o in outcomes:
        for a in o.attempts:
            p = a.probe
            other = a.time - p.master_time - p.bounds_time
            rows.append(
                [
                    o.case.label,
                    _method_name(o, a),
                    f"{a.time:.2f}",
                    str(p.rounds),
                    f"{p.master_calls}",
                    f"{p.master_time:.2f}",
                    f"{max(p.master_times, default=0.0):.2f}",
                    str(p.master_cuts),
                    f"{p.bounds_asked:,}",
                    f"{p.lps:,}",
                    f"{p.lp_time:.2f}",
                    f"{1000 * p.lp_time / max(p.lps, 1):.1f}",
                    f"{p.bounds_time - p.lp_time:.2f}",
                    f"{other:.2f}",
                ]
            )
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def verdicts(outcomes: list[Outcome], quick: bool) -> list[str]:
    out = []
    for o in outcomes:
        first = o.attempts[0]
        r = first.result
        if o.case.target is None:
            continue
        name = f"{o.case.label} ({o.table.model.n_cells:,} cells)"
        if quick:
            out.append(f"- {name}: smoke run, {first.time:.2f} s; full-size targets not assessed")
            continue
        if r is None:
            out.append(
                f"- {name}: {first.time:.0f}+ s, stopped before finishing "
                f"(target < {o.case.target:.0f} s): **not met**"
            )
        else:
            met = first.time < o.case.target and not first.problems
            word = "met" if met else "not met"
            out.append(
                f"- {name}: {first.time:.2f} s, status {r.status.label} "
                f"(target < {o.case.target:.0f} s): **{word}**"
            )
    return out


def diagnosis(outcomes: list[Outcome]) -> list[str]:
    """Plain-language notes on the runs that were stopped: where the time went, what is left."""
    lines = []
    for o in outcomes:
        for a in o.attempts:
            if a.result is not None:
                continue
            p, m = a.probe, o.table.model
            n_prim = int(o.table.primary.sum())
            lines.append(f"- **{o.case.label}, {_method_name(o, a)}**, stopped at {a.time:.1f} s:")
            per_lp = p.lp_time / max(p.lps, 1)
            milp = (
                f"{p.master_time:.1f} s in {p.master_calls} master MILP solves, "
                if p.master_calls
                else ""
            )
            lines.append(
                f"  {milp}{p.bounds_time:.1f} s answering {p.bounds_asked:,} attacker bound "
                f"requests, of which {p.lp_time:.1f} s in {p.lps:,} LP solves "
                f"({1000 * per_lp:.1f} ms per LP), "
                f"{a.time - p.master_time - p.bounds_time:.1f} s elsewhere. "
                f"It was stopped at: {p.phase}."
            )
            if p.open_bounds:
                solved = p.lps - p.open_lps
                left = p.open_bounds - solved
                lines.append(
                    f"  That step asked for {p.open_bounds:,} bounds (2 per audited cell) and "
                    f"had solved {solved:,} LPs for them; if each bound left needs its own LP "
                    f"at {1000 * per_lp:.1f} ms, it needs about {left * per_lp:,.1f} s more, "
                    f"so the run would take at least {a.time + left * per_lp:,.1f} s. The "
                    f"{int(o.table.primary.sum()) + o.base.secondaries:,}+ suppressed cells "
                    f"of the {m.n_cells:,}-cell table form {o.base.blocks} LP block(s) "
                    "(hypercube start)."
                )
            if p.master_calls:
                times = ", ".join(f"{t:.2f}" for t in p.master_times)
                done = [b.result for b in o.attempts if b.result is not None]
                bracket = (
                    f" The optimum therefore lies in [{p.lower_bound:,.0f}, "
                    f"{done[0].cost:,.0f}] ({done[0].method}'s cost), i.e. at least "
                    f"{p.lower_bound / o.base.cost:.2f} x the hypercube baseline."
                    if done and o.base.cost > 0
                    else ""
                )
                every = all(c == 2 * n_prim for c in p.cuts_found)
                lines.append(
                    f"  Violated cuts found per audit round: {p.cuts_found} ({n_prim} primaries: "
                    f"at most {2 * n_prim}, one per primary and direction"
                    + ("; every round, every primary still failed both ways). " if every else "). ")
                    + f"Master MILP time per round (s): {times}, the last with {p.master_cuts:,} "
                    f"cuts. Lower bound on the optimal cost so far (last master optimum): "
                    f"{p.lower_bound:,.0f}.{bracket}"
                )
            lines.extend(f"  {note}" for note in a.notes)
    return lines


def report(
    outcomes: list[Outcome], args: argparse.Namespace, wall: float, loads: str, code: str
) -> str:
    mode = " --quick" if args.quick else ""
    problems = [
        f"- {o.case.label}, {a.method}: {'; '.join(a.problems)}"
        for o in outcomes
        for a in o.attempts
        if a.problems
    ]
    parts = [
        "# Table protection benchmark",
        "",
        f"Machine: {_machine()}. Wall time of the whole benchmark: {wall:.0f} s. "
        f"Load average (1 min) at start and end: {loads}. Code measured: {code}.",
        "",
        f"Command: `{COMMAND}{mode} --seed {args.seed} --write PATH` "
        f"(budget factor {args.budget_factor}).",
        "",
        "## Method",
        "",
        f"- Frequency tables: Poisson counts with shuffled Zipf (exponent {ZIPF_EXPONENT}) effects "
        f"per dimension and log-normal noise (sigma {NOISE_SIGMA}); the scale is solved so that "
        f"{PRIMARY_SHARE:.0%} of inner cells are expected to have 0 < n < {THRESHOLD}. Those "
        "cells are primary (UPL = LPL = 1); every 1-D and 2-D margin is part of the table.",
        f"- Magnitude table: sums of log-normal contributions; the {MAGNITUDE_SHARE:.0%} of inner "
        "cells with the largest top-contributor share are primary, UPL = LPL = "
        f"{MAGNITUDE_LEVEL:.0%} of the value.",
        "- Costs: the package default (cell value, plus 1000 x the largest value on totals). "
        "A-priori bounds: the default [0, grand total]. Cost = sum of the secondaries' costs.",
        "- Time: wall time of the whole call (validation, pattern, final full audit), best of "
        "Runs. Status must be pass with every primary protected in the result's own audit, and "
        "that audit must cover every suppressed cell (checked; the run fails otherwise).",
        "- Baseline: `heuristic.hypercube_start` (each primary's cheapest hypercube, no repair) "
        "on the same table, audited with `audit`. Where auditing every primary would not fit in "
        f"the budget, a random sample of {SAMPLE_PRIMARIES} primaries is audited (each sampled "
        "LP is still over the whole pattern, so its interval is exact).",
        "- Ratio = cost of the method / cost of the baseline (below 1: cheaper than hypercubes).",
        "- Proved lower bound (exact method): 'optimal' when the cut loop proved the pattern "
        "the cheapest; otherwise the search stopped at its time limit (default "
        f"{exact_mod.TIME_LIMIT:.0f} s) and no pattern can cost less than this bound.",
        "- A run over budget-factor x its target is stopped by the probe; cases with a fallback "
        "then run it, for a protected pattern and its cost.",
        "",
        "## Results",
        "",
        markdown_table(
            [
                "Case",
                "Cells",
                "Primaries",
                "Method",
                "Status",
                "Time (s)",
                "Runs",
                "Secondaries",
                "Cost",
                "Totals suppressed",
                "Unprotected",
                "Cost / baseline",
                "Proved lower bound",
            ],
            result_rows(outcomes),
        ),
        "",
        "## Hypercube baseline (before repair)",
        "",
        markdown_table(
            [
                "Table",
                "Data",
                "Time (s)",
                "Secondaries",
                "Cost",
                "Totals suppressed",
                "Audit (s)",
                "Primaries audited",
                "Unprotected",
                "ms per LP",
                "LP blocks",
            ],
            baseline_rows(outcomes),
        ),
        "",
        "## Where the time goes",
        "",
        markdown_table(
            [
                "Case",
                "Method",
                "Time (s)",
                "Audit rounds",
                "MILP solves",
                "MILP (s)",
                "Slowest MILP (s)",
                "Cuts",
                "Bounds asked",
                "LPs solved",
                "LP solves (s)",
                "ms per LP",
                "Bounds, not LP (s)",
                "Other (s)",
            ],
            profile_rows(outcomes),
        ),
        "",
        *diagnosis(outcomes),
        "",
        "## Verdicts",
        "",
        *verdicts(outcomes, args.quick),
        *(["", "## Problems", "", *problems] if problems else []),
        "",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small tables, a smoke run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--budget-factor",
        type=float,
        default=1.5,
        help="stop a run after this many times its target",
    )
    parser.add_argument("--write", type=Path, help="write the markdown report here")
    args = parser.parse_args(argv)
    loads, code, digest = _load(), _code_state(), _sources_digest()  # as imported
    start = time.perf_counter()
    outcomes = []
    done: dict[Any, tuple[Table, Baseline]] = {}
    for case in QUICK_CASES if args.quick else FULL_CASES:
        outcome = run_case(case, args.seed, args.budget_factor, args.quick, done)
        for a in outcome.attempts:
            state = a.result.status.label if a.result else "stopped"
            print(f"{case.label}: {a.method} {a.time:.2f} s, {state}", file=sys.stderr)
        outcomes.append(outcome)
    wall = time.perf_counter() - start
    text = report(outcomes, args, wall, f"{loads}, {_load()}", code)
    if _sources_digest() != digest:
        text += "\nWarning: the protection sources changed during the run (the results are for "
        text += "the version imported at the start).\n"
    if args.write:
        args.write.write_text(text)
    print(text)
    failed = [a for o in outcomes for a in o.attempts if a.problems]
    assert not failed, "some protection result failed its checks (see Problems)"
    return 0


if __name__ == "__main__":
    sys.exit(main())
