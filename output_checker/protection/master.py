"""The master problem of the exact method: the cheapest pattern that satisfies the cuts so far.

Two HiGHS models share the cut pool: the LP relaxation (x in [0, 1]), which is cheap and warm
starts after new cuts, and the MIP (x binary). Both are built once and only grow by rows, so
later solves reuse what HiGHS learnt before. The LP relaxation's optimum and the MIP's dual
bound are lower bounds on the optimal cost (for the costs of every suppressed cell, primaries
included: ``fixed_cost`` is what the primaries alone cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np

from output_checker.protection.cuts import Cut, Key
from output_checker.protection.model import FloatArray
from output_checker.protection.problem import Problem


@dataclass(frozen=True)
class MasterSolution:
    """A master optimum (or the best point found when time ran out) and the lower bound on
    the cost of the secondaries that the solve proved. ``x`` is None when HiGHS found none."""

    x: FloatArray | None
    bound: float
    optimal: bool


class Master:
    """The master LP relaxation and MIP over one problem's cells."""

    def __init__(self, p: Problem) -> None:
        self.p = p
        self.n = p.values.shape[0]
        self.fixed_cost = float(p.costs[p.primary].sum())
        self.keys: list[Key] = []  # what each row (cut) protects, in row order
        self.relaxation_model = self._model(integer=False)
        self.integer_model = self._model(integer=True)

    def _model(self, *, integer: bool) -> Any:
        p, n = self.p, self.n
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n, 0
        lp.col_cost_ = p.costs
        lp.col_lower_ = p.primary.astype(np.float64)  # primaries are always suppressed
        lp.col_upper_ = p.allowed.astype(np.float64)  # zero cells never are
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_ = n
        lp.a_matrix_.start_ = np.zeros(n + 1, dtype=np.int32)
        if integer:
            lp.integrality_ = [highspy.HighsVarType.kInteger] * n
        solver = highspy._Highs()  # type: ignore[attr-defined]
        solver.setOptionValue("output_flag", False)
        if integer:
            solver.setOptionValue("mip_rel_gap", 0.0)
            # Measured on cut pools of this problem: restarts and strong branching cost
            # more than the small trees they save (3-4x faster without them).
            solver.setOptionValue("mip_allow_restart", False)
            solver.setOptionValue("mip_pscost_minreliable", 0)
        solver.passModel(lp)
        return solver

    def add(self, cuts: Sequence[Cut]) -> None:
        """Add cuts ``coef · x ≥ level − tol`` to both models."""
        if not cuts:
            return
        support = [np.flatnonzero(c.coef) for c in cuts]
        sizes = np.array([s.shape[0] for s in support])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
        index = np.concatenate(support).astype(np.int32)
        coef = np.concatenate([c.coef[s] for c, s in zip(cuts, support, strict=True)])
        lower = np.array([c.level - self.p.tol for c in cuts])
        upper = np.full(len(cuts), highspy.kHighsInf)
        for solver in (self.relaxation_model, self.integer_model):
            solver.addRows(len(cuts), lower, upper, index.shape[0], starts, index, coef)
        self.keys.extend(c.key for c in cuts)

    def forget(self, keys: set[Key]) -> None:
        """Remove the cuts of primaries (or groups) that no pattern can protect."""
        rows = np.array([i for i, k in enumerate(self.keys) if k in keys], dtype=np.int32)
        if rows.shape[0]:
            for solver in (self.relaxation_model, self.integer_model):
                solver.deleteRows(rows.shape[0], rows)
            self.keys = [k for k in self.keys if k not in keys]

    def relaxation(self) -> MasterSolution:
        """The LP relaxation's optimum (a fractional pattern)."""
        solver = self.relaxation_model
        solver.run()
        if solver.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return MasterSolution(None, 0.0, False)
        x = np.clip(np.asarray(solver.getSolution().col_value, dtype=np.float64), 0.0, 1.0)
        bound = solver.getInfo().objective_function_value - self.fixed_cost
        return MasterSolution(x, bound, True)

    def integer(self, seconds: float) -> MasterSolution:
        """The MIP's optimum, or the best pattern found within ``seconds`` (``optimal`` is
        then False)."""
        # Not given the incumbent as a start: with highspy 1.16, setSolution made HiGHS report
        # the start as optimal with an objective value that was not the start's.
        solver = self.integer_model
        solver.setOptionValue("time_limit", max(seconds, 0.01))
        solver.run()
        status = solver.getModelStatus()
        info = solver.getInfo()
        bound = max(0.0, float(info.mip_dual_bound) - self.fixed_cost)
        if info.primal_solution_status != 2:  # kSolutionStatusFeasible
            return MasterSolution(None, bound, False)
        x = np.asarray(solver.getSolution().col_value, dtype=np.float64)
        optimal = status == highspy.HighsModelStatus.kOptimal
        return MasterSolution(np.asarray(x > 0.5, dtype=np.float64), bound, optimal)
