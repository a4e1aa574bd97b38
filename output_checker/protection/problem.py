"""A validated protection problem: the table, its primaries with their levels, costs, a-priori
bounds and attacker scenarios (spec §10.1–§10.3, §10.5). Shared by every protection method."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from output_checker.errors import InputError
from output_checker.protection.audit import (
    Scenario,
    apriori_bounds,
    as_mask,
    per_cell,
    scenario_list,
    singleton_scenarios,
    tolerance,
)
from output_checker.protection.model import BoolArray, FloatArray, TableModel

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
