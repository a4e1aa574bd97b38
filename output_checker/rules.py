"""Primary disclosure rules for tables: pure functions from laid-out evidence to per-cell verdicts.

Each rule takes the :class:`~output_checker.table.LaidTable` and the :class:`Parameters` and
returns a :class:`RuleResult` with a status per cell, the evidence numbers behind it, and the
upper protection level (UPL, spec §9) for cells it finds unsafe. Which rules run for which
output is decided in :mod:`output_checker.registry`, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from output_checker.evidence import FloatArray
from output_checker.parameters import Parameters
from output_checker.status import Status, StatusArray
from output_checker.table import LaidTable

PASS, REVIEW, FAIL = np.int8(Status.PASS), np.int8(Status.REVIEW), np.int8(Status.FAIL)


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict on every cell of a table."""

    rule: str
    status: StatusArray
    details: dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int64]]
    description: str
    protection: FloatArray | None = None
    note: str | None = None  # a table-wide remark (e.g. why ACRO mode set everything to review)


Rule = Callable[[LaidTable, Parameters], RuleResult]


def _statuses(unsafe: npt.NDArray[np.bool_], level: np.int8 = FAIL) -> StatusArray:
    return np.where(unsafe, level, PASS).astype(np.int8)


def _contributors(table: LaidTable) -> npt.NDArray[np.int64]:
    return table.evidence.n_entities


def protection_scale(table: LaidTable) -> FloatArray:
    """Cell values on the scale table protection works on: a mean through its sum."""
    if table.request.aggregation.name == "mean":
        return table.evidence.weighted_value_sum
    return table.value


def _frequency_level(table: LaidTable, params: Parameters) -> FloatArray:
    """Protection level for threshold and class failures: one unit (exact disclosure), or
    tau-Argus's range: a percentage of the cell's value, if larger."""
    scale = np.nan_to_num(np.abs(protection_scale(table)))
    return np.maximum(1.0, params.frequency_range / 100 * scale)


def threshold(table: LaidTable, params: Parameters) -> RuleResult:
    """Minimum frequency: unsafe iff 0 < N < T (canonical) or n < T (ACRO, empty cells too)."""
    ev, t = table.evidence, params.threshold
    if params.conventions == "acro":
        # ACRO counts rows (missing values included) in 2-D tables, non-missing values in 1-D.
        n = ev.n_rows if table.request.columns else ev.n_nonmissing
        unsafe = n < t
    else:
        n = _contributors(table)
        unsafe = (n > 0) & (n < t)
    return RuleResult(
        "threshold",
        _statuses(unsafe),
        {"n": n},
        f"fewer than {t} contributors",
        protection=np.where(unsafe, _frequency_level(table, params), 0.0),
    )


def _dominance_basis(table: LaidTable, params: Parameters) -> tuple[FloatArray, FloatArray]:
    """Total X and the top contributions the dominance rules compare, honouring weights."""
    ev = table.evidence
    if table.request.weights is None:
        return ev.total, ev.top
    if params.weights_mode == "sample_top":
        return ev.weighted_total, ev.top
    return ev.weighted_total, replicate_top(ev.top, ev.top_weight)


def replicate_top(top: FloatArray, weight: FloatArray) -> FloatArray:
    """Top contributions after replicating each unit ``weight`` times (sdcTable convention).

    Non-integer weights are rounded alternately up and down, largest contribution first.
    The loops run over the few top places, never over cells.
    """
    depth = top.shape[1]
    fractional = weight != np.floor(weight)
    rank = np.cumsum(fractional, axis=1) - fractional  # fractional weights seen before
    copies = np.where(
        fractional, np.where(rank % 2 == 0, np.ceil(weight), np.floor(weight)), weight
    )
    copies = np.maximum(copies, np.where(weight > 0, 1, 0)).astype(np.int64)
    out = np.zeros_like(top)
    filled = np.zeros(top.shape[0], dtype=np.int64)
    rows = np.arange(top.shape[0])
    for j in range(depth):
        for _ in range(depth):
            take = (copies[:, j] > 0) & (filled < depth)
            out[rows[take], filled[take]] = top[take, j]
            filled[take] += 1
            copies[take, j] -= 1
    return out


def _negatives_review(table: LaidTable, params: Parameters, name: str) -> RuleResult | None:
    """ACRO mode: a negative anywhere turns the dominance rules into ``review`` everywhere."""
    if params.conventions != "acro" or not (table.evidence.n_negative > 0).any():
        return None
    status = np.full(table.n_cells, REVIEW, dtype=np.int8)
    return RuleResult(
        name,
        status,
        {},
        "negative values present",
        note="negative values in the table: dominance rules not applied (ACRO convention)",
    )


def nk_dominance(table: LaidTable, params: Parameters) -> RuleResult:
    """(n,k) rules: unsafe iff x1+..+xn > k% of X (canonical, strict) or >= (ACRO)."""
    skipped = _negatives_review(table, params, "nk")
    if skipped:
        return skipped
    total, top = _dominance_basis(table, params)
    unsafe = np.zeros(table.n_cells, dtype=bool)
    protection = np.zeros(table.n_cells)
    details: dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int64]] = {}
    for rule in params.nk_rules:
        top_n = top[:, : rule.n].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(total > 0, top_n / total, np.nan)
        if params.conventions == "acro":
            failing = (total > 0) & (top_n >= rule.k / 100 * total)
        else:
            failing = (total > 0) & (top_n > rule.k / 100 * total)
        details[f"ratio_{rule.key}"] = ratio
        protection = np.maximum(protection, np.where(failing, 100 / rule.k * top_n - total, 0))
        unsafe |= failing
    rules = ", ".join(f"({r.n},{r.k:g})" for r in params.nk_rules)
    return RuleResult("nk", _statuses(unsafe), details, f"dominance {rules}", protection)


def p_percent(table: LaidTable, params: Parameters) -> RuleResult:
    """p% (and p/q) rule: unsafe iff X - x1 - (x2..x_{c+1}) < p/100 * x1, strict."""
    skipped = _negatives_review(table, params, "p_percent")
    if skipped:
        return skipped
    total, top = _dominance_basis(table, params)
    x1 = top[:, 0]
    others = top[:, 1 : params.coalition + 1].sum(axis=1)
    remainder = total - x1 - others
    limits = [p for p in (params.p_percent,) if p is not None]
    if params.pq is not None:
        limits.append(100 * params.pq[0] / params.pq[1])
    p = max(limits, default=0.0)
    if params.conventions == "acro":
        empty = table.evidence.n_entities == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(x1 > 0, remainder / x1, remainder)
        ratio = np.where(empty, 1.0, ratio)
        unsafe = ratio < p / 100
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(x1 > 0, remainder / x1, np.nan)
        unsafe = remainder < p / 100 * x1
    protection = np.where(unsafe, p / 100 * x1 - remainder, 0.0)
    return RuleResult(
        "p_percent", _statuses(unsafe), {"ratio": ratio}, f"p% rule with p = {p:g}", protection
    )


def class_disclosure(table: LaidTable, params: Parameters) -> RuleResult:
    """Group-attribute disclosure: a cell holds > share of its row or column total.

    For a mode, the share is the modal category's share of the group.
    """
    share_limit = params.class_share
    n = _contributors(table).astype(np.float64)
    if share_limit is None:
        return RuleResult("class_disclosure", _statuses(np.zeros(table.n_cells, bool)), {}, "off")
    if table.request.aggregation.name == "mode":
        assert table.ties is not None
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(n > 0, table.ties / n, 0.0)
    else:
        share = np.zeros(table.n_cells)
        for totals in (table.row_total, table.col_total):
            # A total over a single category teaches nothing: everyone in it is in that category
            # by definition (a one-row or ungrouped table); only totals over 2+ cells count.
            children = np.bincount(totals[totals >= 0], minlength=table.n_cells)
            has = (totals >= 0) & (children[np.maximum(totals, 0)] >= 2)
            denominator = np.where(has, n[np.maximum(totals, 0)], 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.maximum(share, np.where(denominator > 0, n / denominator, 0.0))
    unsafe = share > share_limit
    return RuleResult(
        "class_disclosure",
        _statuses(unsafe),
        {"share": share},
        f"more than {share_limit:.0%} of a group in one cell",
        protection=np.where(unsafe, _frequency_level(table, params), 0.0),
    )


def zeros(table: LaidTable, params: Parameters) -> RuleResult:
    """Non-structural empty cells: ``review`` by default, ``fail`` by policy (and in ACRO mode,
    where a 2-D cell is empty only when it has no rows at all)."""
    ev = table.evidence
    n = ev.n_rows if params.conventions == "acro" and table.request.columns else ev.n_nonmissing
    empty = (n == 0) & ~table.structural_zero
    level = FAIL if params.zeros == "fail" else REVIEW
    return RuleResult("zero", _statuses(empty, level), {}, "empty cell (a zero may disclose)")


def missing(table: LaidTable, params: Parameters) -> RuleResult:
    """Missing values are never contributors; with ``check_missing`` a cell holding any is
    sent to review (ACRO's MissingCheck)."""
    n_missing = table.evidence.n_missing
    flagged = (n_missing > 0) & params.check_missing
    return RuleResult(
        "missing",
        _statuses(flagged, REVIEW),
        {"n_missing": n_missing},
        "cell contains missing values",
    )


def negative(table: LaidTable, params: Parameters) -> RuleResult:
    """Negative contributions: canonical mode applies dominance to |x| and keeps the count as
    evidence; ACRO mode sends the whole table to review."""
    n_negative = table.evidence.n_negative
    if params.conventions == "acro" and (n_negative > 0).any():
        status = np.full(table.n_cells, REVIEW, dtype=np.int8)
    else:
        status = _statuses(np.zeros(table.n_cells, bool))
    return RuleResult("negative", status, {"n_negative": n_negative}, "negative contributions")


def quantile_rule(table: LaidTable, params: Parameters) -> RuleResult:
    """A q-quantile needs q·N >= T and (1-q)·N >= T, and must not be one unit's own value
    unless at least T units share it (spec §6)."""
    q = table.request.aggregation.q or 0.5
    n = _contributors(table)
    ties = table.ties if table.ties is not None else np.zeros(table.n_cells, np.int64)
    t = params.threshold
    own_value = (ties > 0) & (ties < t)
    unsafe = (n > 0) & ((q * n < t) | ((1 - q) * n < t) | own_value)
    return RuleResult(
        "quantile",
        _statuses(unsafe),
        {"ties": ties},
        f"quantile not protected by {t} units on each side",
    )


def extreme(table: LaidTable, params: Parameters) -> RuleResult:
    """Raw minima and maxima are one unit's value: unsafe unless >= T units share it."""
    n = _contributors(table)
    ties = table.ties if table.ties is not None else np.zeros(table.n_cells, np.int64)
    unsafe = (n > 0) & (ties < params.threshold)
    return RuleResult(
        "extreme",
        _statuses(unsafe),
        {"ties": ties},
        f"extreme value shared by fewer than {params.threshold} units",
    )


def dof(table: LaidTable, params: Parameters) -> RuleResult:
    """ACRO's per-cell degrees of freedom for dispersion tables: count - 1 < threshold."""
    dof_values = table.evidence.n_nonmissing - 1
    unsafe = dof_values < params.dof_threshold
    return RuleResult(
        "dof",
        _statuses(unsafe),
        {"dof": dof_values},
        f"fewer than {params.dof_threshold} degrees of freedom",
    )


RULES: dict[str, Rule] = {
    "threshold": threshold,
    "nk": nk_dominance,
    "p_percent": p_percent,
    "class_disclosure": class_disclosure,
    "zero": zeros,
    "missing": missing,
    "negative": negative,
    "quantile": quantile_rule,
    "extreme": extreme,
    "dof": dof,
}
