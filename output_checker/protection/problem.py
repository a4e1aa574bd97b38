"""A validated protection problem: the table, its primaries with their levels, costs, a-priori
bounds and attacker scenarios (spec §10.1–§10.3, §10.5). Shared by every protection method."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

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
SumTarget = tuple[tuple[int, ...], float]  # (primary cells, protection level of their sum)


class ProblemOptions(TypedDict, total=False):
    """The optional inputs of every protection method (see :func:`prepare`)."""

    costs: npt.ArrayLike | None
    lower: npt.ArrayLike | None
    upper: npt.ArrayLike | None
    singletons: npt.ArrayLike | None
    scenarios: Sequence[tuple[int, Sequence[int]]] | None
    sums: Sequence[tuple[Sequence[int], float]] | None


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
    sums: tuple[SumTarget, ...] = ()

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
    sums: Sequence[tuple[Sequence[int], float]] | None = None,
) -> Problem:
    """Validate the inputs of a protection run.

    ``upl``/``lpl`` are scalars or one level per cell (only primaries' levels are read);
    ``costs`` one per cell (default: :func:`default_costs`); ``lower``/``upper`` the attacker's
    a-priori bounds (default 0 and the largest value). ``singletons`` marks single-contributor
    cells: each primary sharing a relation with one is also protected against an attacker who
    knows that cell; ``scenarios`` adds explicit (primary, known cells) attackers. ``sums``
    lists groups of primaries whose sum needs protecting too, each with its level (both
    directions), e.g. from :func:`pair_sums`. Raises InputError for a non-additive table, bad
    masks, bounds, costs or groups, or a missing or non-positive level of a primary."""
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
    groups = _sum_targets(prim, sums or (), 2 * tol)
    return Problem(model, a, prim, up, lp, cost, lo, hi, chosen, tol, groups)


def _sum_targets(
    primary: BoolArray, sums: Sequence[tuple[Sequence[int], float]], floor: float
) -> tuple[SumTarget, ...]:
    out: dict[tuple[int, ...], float] = {}
    for cells, level in sums:
        group = tuple(sorted({int(c) for c in cells}))
        if len(group) < 2:
            raise InputError("sums: a group needs at least two cells")
        if min(group) < 0 or max(group) >= primary.shape[0] or not primary[list(group)].all():
            raise InputError("sums: every cell of a group must be a primary")
        if not np.isfinite(level) or level <= 0:
            raise InputError("sums: the protection level of a group must be positive")
        out[group] = max(out.get(group, 0.0), max(float(level), floor))
    return tuple(out.items())


def pair_sums(
    model: TableModel,
    primary: npt.ArrayLike,
    contributors: npt.ArrayLike,
    threshold: float,
    level: npt.ArrayLike,
) -> list[SumTarget]:
    """tau-Argus's extra frequency check (§10.5): two primaries in one relation whose
    contributors together are fewer than ``threshold`` make an unsafe sum, for whoever learns
    it (an attacker who knows every other cell of the relation does). Each such pair, with the
    larger of its cells' levels (``level``: scalar or per cell)."""
    n = model.n_cells
    prim = np.flatnonzero(as_mask(primary, n, "primary"))
    count = per_cell(contributors, n, "contributors")
    levels = per_cell(level, n, "level")
    incidence = (model.constraints() != 0).astype(np.int8).tocsc()[:, prim]
    shared = (incidence.T @ incidence).tocoo()
    pairs = {
        (int(prim[i]), int(prim[j]))
        for i, j in zip(shared.row, shared.col, strict=True)
        if i < j and count[prim[i]] + count[prim[j]] < threshold
    }
    return [((i, j), float(max(levels[i], levels[j]))) for i, j in sorted(pairs)]
