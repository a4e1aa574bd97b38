"""The result of a protection run: the pattern, its full audit and the verdict."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from output_checker.protection.audit import AttackerLP, AuditResult, audit
from output_checker.protection.cuts import Key
from output_checker.protection.model import BoolArray, FloatArray, TableModel
from output_checker.protection.problem import Problem
from output_checker.status import Status


@dataclass(frozen=True)
class ScenarioAudit:
    """A primary's interval when the attacker knows the ``known`` cells."""

    cell: int
    known: tuple[int, ...]
    lo: float
    hi: float
    protected: bool


@dataclass(frozen=True)
class SumAudit:
    """The attacker's interval for the sum of a group of primaries (§10.5). Where the sum
    meets its level, ``lo``/``hi`` are values the attacker cannot rule out (the true interval
    is at least this wide); where it does not, they are the attacker's exact bounds."""

    cells: tuple[int, ...]
    lo: float
    hi: float
    level: float
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
    lower_bound: float | None = None  # proved bound on the least cost (exact method only)
    sums: tuple[SumAudit, ...] = ()

    @property
    def optimal(self) -> bool:
        """The exact method proved this pattern the cheapest for the costs."""
        return self.lower_bound is not None and self.cost <= self.lower_bound + 1e-9 * max(
            1.0, self.cost
        )

    @property
    def secondary(self) -> BoolArray:
        return np.asarray(self.suppressed & ~self.primary, dtype=bool)

    def summary(self) -> str:
        """One line: what was suppressed and whether the audit protects every primary."""
        if self.reason:
            return self.reason
        quality = ""
        if self.lower_bound is not None and not self.optimal:
            gap = (self.cost - self.lower_bound) / max(self.cost, 1e-300)
            quality = f", cost at most {gap:.0%} above the optimum"
        return (
            f"{int(self.primary.sum())} primary and {int(self.secondary.sum())} secondary "
            f"cells suppressed ({self.method}, {self.rounds} rounds{quality}); every primary "
            "passes the audit"
        )

    def to_dict(self, model: TableModel | None = None) -> dict[str, Any]:
        """JSON-able summary: status, pattern, cost, rounds and every audited interval."""
        return {
            "method": self.method,
            "status": self.status.label,
            "reason": self.reason,
            "rounds": self.rounds,
            "cost": self.cost,
            "lower_bound": self.lower_bound,
            "optimal": self.optimal,
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
            "sums": [
                {"cells": list(g.cells), "lo": g.lo, "hi": g.hi, "protected": g.protected}
                for g in self.sums
            ],
        }


def assess(
    p: Problem,
    x: BoolArray,
    *,
    method: str,
    rounds: int,
    notes: Sequence[str] = (),
    failed: Collection[Key] = (),
    lower_bound: float | None = None,
) -> ProtectionResult:
    """Audit pattern x in full (plain, every scenario and every group sum) and give the
    verdict. A primary counts as protected only if its groups' sums are too.

    FAIL if some primary or group sum cannot be protected (``failed``), REVIEW if there are
    ``notes`` or the audit finds an unprotected primary, else PASS."""
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
    sums = _audit_sums(p, x)
    for group in sums:
        if not group.protected:
            ok[np.searchsorted(prim, group.cells)] = False
    reasons = list(notes)
    if failed:
        names = ", ".join(_name(p, key) for key in sorted(failed, key=_order))
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
        lower_bound,
        sums,
    )


def _audit_sums(p: Problem, x: BoolArray) -> tuple[SumAudit, ...]:
    if not p.sums:
        return ()
    lp = AttackerLP(p.model, p.values, x, p.lower, p.upper)
    groups = [np.array(cells, dtype=np.intp) for cells, _ in p.sums]
    totals = np.array([p.values[g].sum() for g in groups])
    levels = np.array([level for _, level in p.sums])
    # Each end is solved only as far as the level: a point beyond it settles the question.
    low = lp.solve_sums(groups, np.zeros(len(groups), dtype=bool), totals - levels + p.tol)
    high = lp.solve_sums(groups, np.ones(len(groups), dtype=bool), totals + levels - p.tol)
    out = []
    for (cells, level), a, lo, hi in zip(p.sums, totals, low, high, strict=True):
        t = p.tol
        good = lo.ok and hi.ok and hi.value >= a + level - t and lo.value <= a - level + t
        out.append(SumAudit(cells, lo.value, hi.value, level, bool(good)))
    return tuple(out)


def _order(key: Key) -> tuple[int, ...]:
    return key if isinstance(key, tuple) else (key,)


def _name(p: Problem, key: Key) -> str:
    if isinstance(key, tuple):
        return "the sum of " + " and ".join(repr(p.model.labels(c)) for c in key)
    return repr(p.model.labels(key))
