"""Optimal secondary suppression: the Fischetti–Salazar model solved by cut generation (§10.3).

The master problem picks a binary x per cell (1 = suppressed) of least cost subject to the
capacity cuts found so far (``scipy.optimize.milp``). For the master's pattern, attacker LPs
bound each primary from above and below; each bound that misses its protection level yields a
capacity cut from the LP's duals. By weak duality a cut never excludes a protecting pattern, so
when a round adds no cut the pattern is optimal for the costs. The values are never altered:
the result is a suppression mask, with a full audit of it attached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from output_checker.errors import InputError
from output_checker.protection.audit import (
    AttackerLP,
    AuditResult,
    Scenario,
    apriori_bounds,
    as_mask,
    audit,
    per_cell,
    scenario_list,
    singleton_scenarios,
    tolerance,
)
from output_checker.protection.model import BoolArray, FloatArray, TableModel
from output_checker.status import Status

TOTAL_COST_FACTOR = 1000.0  # (sub)totals cost this many times the largest value, on top


@dataclass(frozen=True)
class Problem:
    """A validated protection problem: table, primaries with levels, costs, bounds, scenarios."""

    model: TableModel
    values: FloatArray
    primary: BoolArray
    upl: FloatArray
    lpl: FloatArray
    costs: FloatArray
    lower: FloatArray
    upper: FloatArray
    scenarios: tuple[Scenario, ...]
    tol: float

    @property
    def allowed(self) -> BoolArray:
        """Cells that may be suppressed: primaries and every non-zero cell."""
        return np.asarray(self.primary | (self.values != 0), dtype=bool)


def default_costs(model: TableModel, values: FloatArray) -> FloatArray:
    """Cell value (absolute), plus a large surcharge on totals and subtotals."""
    big = TOTAL_COST_FACTOR * max(1.0, float(np.abs(values).max(initial=0.0)))
    return np.abs(values) + np.where(model.is_total, big, 0.0)


def prepare(
    model: TableModel,
    values: npt.ArrayLike,
    primary: npt.ArrayLike,
    upl: npt.ArrayLike,
    lpl: npt.ArrayLike,
    *,
    costs: npt.ArrayLike | None = None,
    lower: npt.ArrayLike | None = None,
    upper: npt.ArrayLike | None = None,
    singletons: npt.ArrayLike | None = None,
    scenarios: Sequence[tuple[int, Sequence[int]]] | None = None,
) -> Problem:
    """Validate the inputs of a protection run. Raises InputError for a non-additive table,
    bad masks, bounds or costs, or a missing or non-positive protection level of a primary."""
    a = model.check_additive(values)
    n = model.n_cells
    prim = as_mask(primary, n, "primary")
    up, lp = per_cell(upl, n, "upl"), per_cell(lpl, n, "lpl")
    if not (np.isfinite(up[prim]) & np.isfinite(lp[prim])).all():
        raise InputError("every primary needs finite protection levels")
    if ((up[prim] <= 0) | (lp[prim] <= 0)).any():
        raise InputError("protection levels of primaries must be positive")
    cost = default_costs(model, a) if costs is None else per_cell(costs, n, "costs")
    if not np.isfinite(cost).all() or (cost < 0).any():
        raise InputError("costs must be finite and non-negative")
    lo, hi = apriori_bounds(a, lower, upper)
    found = [] if singletons is None else singleton_scenarios(model, prim, singletons)
    explicit = scenario_list(n, scenarios)
    if any(not prim[cell] for cell, _ in explicit):
        raise InputError("scenario: its cell is not a primary")
    chosen = tuple(dict.fromkeys([*found, *explicit]))
    tol = tolerance(a)
    # A level below the audit's tolerance could never be told apart from exact disclosure;
    # raising it to twice the tolerance keeps the cut loop and the final audit in agreement.
    up, lp = np.maximum(up, 2 * tol), np.maximum(lp, 2 * tol)
    return Problem(model, a, prim, up, lp, cost, lo, hi, chosen, tol)


@dataclass(frozen=True)
class Cut:
    """A capacity cut ``coef · x ≥ level`` for one primary."""

    cell: int
    coef: FloatArray
    level: float


def attacker_cuts(
    p: Problem, x: BoolArray, skip: frozenset[int] = frozenset()
) -> tuple[list[Cut], int]:
    """The capacity cuts that pattern x violates (one per primary, scenario and direction),
    and the number of attacker LPs HiGHS could not solve."""
    if not x[p.primary].all():
        raise InputError("a primary cell is not suppressed in the pattern")
    matrix_t = p.model.constraints().T.tocsr()
    attackers: dict[tuple[int, ...], list[int]] = {(): [int(c) for c in np.flatnonzero(p.primary)]}
    for target, known in p.scenarios:
        attackers.setdefault(known, []).append(target)
    cuts, failed = [], 0
    for known, wanted in attackers.items():
        cells = np.array([c for c in wanted if c not in skip and c not in known], dtype=np.intp)
        if not cells.size:
            continue
        free = x.copy()
        free[list(known)] = False
        lp = AttackerLP(p.model, p.values, free, p.lower, p.upper)
        upward = np.repeat([True, False], cells.shape[0])
        both = np.concatenate([cells, cells])
        # A bound already seen to meet its level needs no LP: it yields no cut.
        goal = np.concatenate(
            [p.values[cells] + p.upl[cells], p.values[cells] - p.lpl[cells]]
        ) + np.where(upward, -p.tol, p.tol)
        found = lp.solve_many(both, upward, goal)
        for cell, up, bound in zip(both, upward, found, strict=True):
            if not bound.ok:
                failed += 1
                continue
            cut = _capacity_cut(p, int(cell), bool(up), bound.value, matrix_t @ bound.duals)
            if cut is not None:
                cut.coef[list(known)] = 0.0  # suppressing a cell the attacker knows is no help
                cuts.append(cut)
    return cuts, failed


def _capacity_cut(
    p: Problem, cell: int, upward: bool, value: float, shift: FloatArray
) -> Cut | None:
    """The cut from one attacker bound, or None if the bound meets the protection level.

    ``shift`` is Mᵀπ for the LP's duals π, so r = e_i ± Mᵀπ is the change of the bound when
    both a-priori bounds of each cell move by one (for free cells this is the sum of HiGHS's
    lower and upper marginals, sign-flipped for the maximum)."""
    a = p.values[cell]
    level = float(p.upl[cell] if upward else p.lpl[cell])
    if (value >= a + level - p.tol) if upward else (value <= a - level + p.tol):
        return None
    r = shift if upward else -shift
    r[cell] += 1.0
    pos, neg = np.maximum(r, 0.0), np.maximum(-r, 0.0)
    ub, lb = p.upper - p.values, p.values - p.lower
    coef = pos * ub + neg * lb if upward else pos * lb + neg * ub
    coef[coef < 1e-9 * level] = 0.0
    # Capping a coefficient at the right-hand side is valid for binary x and tightens the cut.
    return Cut(cell, np.minimum(coef, level), level)


def solve_master(p: Problem, cuts: Sequence[Cut]) -> BoolArray | None:
    """The cheapest pattern satisfying every cut (None if none does)."""
    allowed = p.allowed
    lower = p.primary.astype(np.float64)
    upper = allowed.astype(np.float64)
    if not cuts:
        return p.primary.copy()
    a_cut = sp.csr_matrix(np.vstack([c.coef for c in cuts]))
    rhs = np.array([c.level for c in cuts]) - p.tol
    res = milp(
        p.costs,
        integrality=np.ones(p.values.shape[0]),
        bounds=Bounds(lower, upper),
        constraints=LinearConstraint(a_cut, rhs, np.inf),
        options={"mip_rel_gap": 0.0},
    )
    if res.status != 0 or res.x is None:
        return None
    return np.asarray(res.x > 0.5, dtype=bool)


@dataclass(frozen=True)
class ScenarioAudit:
    """A primary's interval when the attacker knows the ``known`` cells."""

    cell: int
    known: tuple[int, ...]
    lo: float
    hi: float
    protected: bool


@dataclass(frozen=True)
class ProtectionResult:
    """A suppression pattern with its full audit. ``protected`` is per primary (ascending cell
    order) and combines the plain audit with every attacker scenario. Values are unchanged."""

    method: str
    status: Status
    reason: str
    values: FloatArray
    primary: BoolArray
    suppressed: BoolArray
    audit: AuditResult
    scenarios: tuple[ScenarioAudit, ...]
    protected: BoolArray
    rounds: int
    cost: float

    @property
    def secondary(self) -> BoolArray:
        return np.asarray(self.suppressed & ~self.primary, dtype=bool)

    def summary(self) -> str:
        """One line: what was suppressed and whether the audit protects every primary."""
        return self.reason or (
            f"{int(self.primary.sum())} primary and {int(self.secondary.sum())} secondary "
            f"cells suppressed ({self.method}, {self.rounds} rounds); every primary passes "
            "the audit"
        )

    def to_dict(self, model: TableModel | None = None) -> dict[str, Any]:
        """JSON-able summary: status, pattern, cost, rounds and every audited interval."""
        return {
            "method": self.method,
            "status": self.status.label,
            "reason": self.reason,
            "rounds": self.rounds,
            "cost": self.cost,
            "primary": [int(c) for c in np.flatnonzero(self.primary)],
            "secondary": [int(c) for c in np.flatnonzero(self.secondary)],
            "protected": [bool(b) for b in self.protected],
            **self.audit.to_dict(model),
            "scenarios": [
                {
                    "cell": s.cell,
                    "known": list(s.known),
                    "lo": s.lo,
                    "hi": s.hi,
                    "protected": s.protected,
                }
                for s in self.scenarios
            ],
        }


def assess(
    p: Problem,
    x: BoolArray,
    *,
    method: str,
    rounds: int,
    notes: Sequence[str] = (),
    failed: Sequence[int] = (),
) -> ProtectionResult:
    """Audit pattern x in full (plain and every scenario) and give the verdict.

    FAIL if some primary cannot be protected (``failed``), REVIEW if there are ``notes`` or the
    audit finds an unprotected primary, else PASS."""
    full = audit(p.model, p.values, x, lower=p.lower, upper=p.upper)
    ok = full.protected(p.primary, p.upl, p.lpl)
    prim = np.flatnonzero(p.primary)
    checked = []
    for cell, known in p.scenarios:
        if cell in known:
            continue
        res = audit(
            p.model, p.values, x, lower=p.lower, upper=p.upper, known=list(known), targets=[cell]
        )
        good = bool(res.protected([cell], p.upl, p.lpl)[0]) if res.cells.size else False
        lo, hi = res.interval(cell) if res.cells.size else (np.nan, np.nan)
        checked.append(ScenarioAudit(cell, known, lo, hi, good))
        ok[np.searchsorted(prim, cell)] &= good
    reasons = list(notes)
    if failed:
        names = ", ".join(repr(p.model.labels(c)) for c in failed)
        reasons.insert(0, f"cannot be protected by any suppression pattern: {names}")
    status = Status.FAIL if failed else Status.REVIEW if notes else Status.PASS
    if not ok.all() and not failed:
        status = Status.REVIEW
        if not notes:
            reasons.append(f"{int((~ok).sum())} primary cell(s) fail the final audit")
    cost = float(p.costs[x & ~p.primary].sum())
    return ProtectionResult(
        method,
        status,
        "; ".join(reasons),
        p.values,
        p.primary.copy(),
        x,
        full,
        tuple(checked),
        ok,
        rounds,
        cost,
    )


def _drop_hopeless(p: Problem, cuts: list[Cut], hopeless: set[int]) -> list[Cut]:
    """Record primaries whose cut no allowed pattern can meet; return the other cuts."""
    allowed = p.allowed
    hopeless.update(c.cell for c in cuts if c.coef[allowed].sum() < c.level - p.tol)
    return [c for c in cuts if c.cell not in hopeless]


def repair(
    p: Problem, x: BoolArray, hopeless: set[int], notes: list[str], *, max_steps: int = 10_000
) -> tuple[BoolArray, int]:
    """Grow pattern x until every primary (but the ``hopeless``, which are added to) meets
    its level: audit, and for each violated cut add the allowed cells with the lowest cost per
    unit of cut coefficient until the cut holds (§10.4). Returns the pattern and the number of
    audits; problems go to ``notes``."""
    x = x.copy()
    allowed = p.allowed
    # The pattern only grows, and suppressing more cells only widens every attacker interval:
    # a primary that met its levels (in every scenario) keeps them and is not audited again.
    done: set[int] = set()
    for step in range(1, max_steps + 1):
        found, failed_lps = attacker_cuts(p, x, frozenset(hopeless | done))
        if failed_lps:
            notes.append(f"{failed_lps} attacker LP(s) could not be solved")
            return x, step
        done.update(set(np.flatnonzero(p.primary).tolist()) - {c.cell for c in found})
        cuts = _drop_hopeless(p, found, hopeless)
        if not cuts:
            return x, step
        before = int(x.sum())
        for cut in cuts:
            short = cut.level - p.tol - cut.coef @ x
            if short <= 0:  # already met by cells added for an earlier cut
                continue
            cand = np.flatnonzero(allowed & ~x & (cut.coef > 0))
            order = cand[np.argsort(p.costs[cand] / cut.coef[cand], kind="stable")]
            enough = np.searchsorted(np.cumsum(cut.coef[order]), short) + 1
            x[order[:enough]] = True
        if int(x.sum()) == before:
            notes.append("the repair loop stalled on numerical tolerance")
            return x, step
    notes.append(f"the repair loop did not finish within {max_steps} audits")
    return x, max_steps


def protect_exact(
    model: TableModel,
    values: npt.ArrayLike,
    primary: npt.ArrayLike,
    upl: npt.ArrayLike,
    lpl: npt.ArrayLike,
    *,
    costs: npt.ArrayLike | None = None,
    lower: npt.ArrayLike | None = None,
    upper: npt.ArrayLike | None = None,
    max_rounds: int = 500,
    singletons: npt.ArrayLike | None = None,
    scenarios: Sequence[tuple[int, Sequence[int]]] | None = None,
) -> ProtectionResult:
    """The least-cost suppression pattern that gives every primary its protection interval.

    ``upl``/``lpl`` are scalars or one level per cell (only primaries' levels are read).
    ``singletons`` marks single-contributor cells: each primary sharing a relation with one is
    also protected against an attacker who knows that cell; ``scenarios`` adds explicit
    (primary, known cells) attackers. Status FAIL names primaries no pattern can protect (the
    pattern then protects the others). On reaching ``max_rounds`` the last master pattern is
    repaired into a protecting (not necessarily optimal) one and the status is REVIEW; also
    REVIEW if an LP fails. Raises InputError for bad input (see ``prepare``)."""
    p = prepare(
        model,
        values,
        primary,
        upl,
        lpl,
        costs=costs,
        lower=lower,
        upper=upper,
        singletons=singletons,
        scenarios=scenarios,
    )
    x = p.primary.copy()
    cuts: list[Cut] = []
    hopeless: set[int] = set()
    notes: list[str] = []
    rounds = 0
    while True:
        rounds += 1
        new, failed_lps = attacker_cuts(p, x, frozenset(hopeless))
        if failed_lps:
            notes.append(f"{failed_lps} attacker LP(s) could not be solved")
            break
        new = _drop_hopeless(p, new, hopeless)
        cuts = [c for c in cuts if c.cell not in hopeless]
        if not new:
            break
        if rounds >= max_rounds:
            notes.append(f"no optimal pattern within {max_rounds} rounds: repaired heuristically")
            x, _ = repair(p, x, hopeless, notes)
            break
        if all(c.coef @ x >= c.level - p.tol for c in new):
            notes.append("the cut loop stalled on numerical tolerance")
            break
        cuts.extend(new)
        master = solve_master(p, cuts)
        if master is None:
            notes.append("the master problem could not be solved")
            break
        x = master
    return assess(p, x, method="exact", rounds=rounds, notes=notes, failed=sorted(hopeless))
