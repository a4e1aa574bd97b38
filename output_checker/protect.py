"""Secondary suppression of a checked table: from its verdicts to a protected, audited pattern.

The bridge between :mod:`output_checker.table` and :mod:`output_checker.protection`. Counts and
sums are protected as they are; a mean through its underlying sum table (spec §10.1), so the
audit intervals of a mean table are on the sum scale. Other statistics are not linear in their
cells, so subtraction cannot recover them: their failing cells are suppressed on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from output_checker.evidence import FloatArray
from output_checker.parameters import Parameters
from output_checker.protection import ProtectionResult, TableModel, pair_sums, protect
from output_checker.protection.audit import owner_scenarios
from output_checker.protection.problem import TOTAL_COST_FACTOR
from output_checker.rules import protection_scale
from output_checker.status import Status
from output_checker.table import LaidTable

ADDITIVE = {"count": "count", "sum": "sum", "mean": "sum"}


@dataclass(frozen=True)
class Protection:
    """The suppression pattern of a table's shown cells and each suppressed cell's interval."""

    suppressed: npt.NDArray[np.bool_]
    lo: FloatArray  # NaN where not suppressed or not audited
    hi: FloatArray
    status: Status
    reason: str
    scale: str | None  # the additive statistic protected ("count", "sum"); None: not linear
    result: ProtectionResult | None = None
    model: TableModel | None = None

    def to_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "status": self.status.label,
            "reason": self.reason,
            "scale": self.scale,
            "suppressed": int(self.suppressed.sum()),
        }
        if self.result is not None:
            summary |= self.result.to_dict(self.model)
        return summary


def protect_table(
    table: LaidTable,
    primary: npt.NDArray[np.bool_],
    protection_level: FloatArray,
    params: Parameters,
) -> Protection:
    """Suppress the primary cells of the shown table and enough others to protect them."""
    n = primary.shape[0]
    scale = ADDITIVE.get(table.request.aggregation.name)
    if scale is None or not primary.any():
        reason = (
            "no cell needs protection"
            if not primary.any()
            else (
                f"{table.request.aggregation.label} is not additive: failing cells suppressed alone"
            )
        )
        nan = np.full(n, np.nan)
        return Protection(primary.copy(), nan, nan.copy(), Status.PASS, reason, scale)
    shown = np.flatnonzero(table.shown)
    values = protection_scale(table)[shown]
    model = model_of(table)
    bounds: dict[str, Any] = {}
    if (values < 0).any():  # no natural lower bound: the absolute total bounds every cell
        limit = float(table.evidence.total.max())
        bounds = {"lower": -limit, "upper": limit}
    # every primary gets at least exact-disclosure protection (a level of one unit)
    level = np.maximum(protection_level, 1.0)
    entities = table.evidence.n_entities[shown]
    owner = table.owner[shown] if table.owner is not None else np.full(shown.shape[0], -1)
    scenarios = owner_scenarios(model, primary, owner) if params.singleton_audit else []
    sums = pair_sums(model, primary, entities, params.threshold, level) if params.pair_audit else []
    result = protect(
        model,
        values,
        primary,
        level,
        level,
        costs=_costs(params.suppression_costs, model, values, table.evidence.n_entities[shown]),
        scenarios=scenarios,
        sums=sums,
        **bounds,
    )
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    lo[result.audit.cells] = result.audit.lo
    hi[result.audit.cells] = result.audit.hi
    return Protection(
        result.suppressed, lo, hi, result.status, result.summary(), scale, result, model
    )


def _costs(
    kind: str, model: TableModel, values: FloatArray, entities: npt.NDArray[np.int64]
) -> FloatArray:
    """Cost of suppressing each cell (spec §10.3): its value by default, or one per cell, its
    contributors, or log(1 + value); totals always cost far more than inner cells."""
    base = {
        "value": np.abs(values),
        "unity": np.ones_like(values),
        "frequency": entities.astype(np.float64),
        "log": np.log1p(np.abs(values)),
    }[kind]
    return base + np.where(model.is_total, TOTAL_COST_FACTOR * max(1.0, float(base.max())), 0.0)


def model_of(table: LaidTable) -> TableModel:
    """The shown table as a two-dimensional model: rows and columns, each with its totals."""
    shown = np.flatnonzero(table.shown)
    rows = np.unique(table.cell_row[shown])
    cols = np.unique(table.cell_col[shown])
    p = len(table.request.index)
    return TableModel.from_dimensions(
        [range(rows.size), range(cols.size)],
        [
            _hierarchy(table.row_keys[rows], table.sizes[:p]),
            _hierarchy(table.col_keys[cols], table.sizes[p:]),
        ],
    )


def _hierarchy(keys: npt.NDArray[np.intp], sizes: list[int]) -> dict[int, list[int]]:
    """Parent → children among ``keys``: a total's children are the keys of the next finer
    level present (the inner keys under pandas margins; the next subtotal when hierarchical)
    that share its leading codes."""
    if not sizes:
        return {}
    depth = (keys < np.asarray(sizes)).cumprod(axis=1).sum(axis=1)  # leading non-"All" codes
    hierarchy: dict[int, list[int]] = {}
    for parent in np.flatnonzero(depth < len(sizes)).tolist():
        level = int(depth[parent])
        finer = depth[depth > level].min()
        same = (keys[:, :level] == keys[parent, :level]).all(axis=1)
        hierarchy[parent] = np.flatnonzero(same & (depth == finer)).tolist()
    return hierarchy
