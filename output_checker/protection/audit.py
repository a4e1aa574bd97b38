"""LP audit of a suppression pattern (tau-Argus "audit", spec §10.2 and §10.5).

Published cells are fixed at their values; suppressed cells are free within their a-priori
bounds, subject to the table's relations. For every suppressed cell the attacker's feasibility
interval [lo, hi] comes from two LPs (min and max of that cell), solved with HiGHS (``highspy``).
Only the suppressed cells are variables and only the relations that touch them are rows, split
into independent blocks (cells linked through relations), so an LP's size follows the pattern,
not the table. Each block's LP is built once and kept: a request only changes one cost, and
HiGHS starts from the previous basis, so most solves take a few pivots (spec §10.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from output_checker.errors import InputError
from output_checker.protection.model import BoolArray, FloatArray, IntArray, TableModel

LP_TOL = 1e-7  # relative to max(1, largest absolute value in the table)
Scenario = tuple[int, tuple[int, ...]]  # (primary cell, cells whose values the attacker knows)


# ----- input normalisation ---------------------------------------------------------------------
def as_mask(cells: npt.ArrayLike | None, n: int, name: str) -> BoolArray:
    """A boolean mask over n cells from a mask or a list of cell indices (None = no cells)."""
    if cells is None:
        return np.zeros(n, dtype=bool)
    arr = np.asarray(cells)
    if arr.dtype == bool:
        if arr.ravel().shape[0] != n:
            raise InputError(f"{name}: a mask of {arr.size} cells for a table of {n} cells")
        return arr.ravel().copy()
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name}: give a boolean mask or integer cell indices")
    idx = arr.astype(np.intp).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InputError(f"{name}: cell index out of range for a table of {n} cells")
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return mask


def per_cell(value: npt.ArrayLike, n: int, name: str) -> FloatArray:
    """A scalar or one value per cell, as a float array over n cells."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.ravel().shape[0] != n:
        raise InputError(f"{name}: {arr.size} values for a table of {n} cells")
    return arr.ravel().copy()


def apriori_bounds(
    values: FloatArray, lower: npt.ArrayLike | None, upper: npt.ArrayLike | None
) -> tuple[FloatArray, FloatArray]:
    """The attacker's a-priori bounds [L0, U0] per cell.

    Defaults: 0 and the largest value (the grand total of a non-negative table with totals).
    Raises InputError for negative values without both bounds, or a value outside its bounds."""
    n = values.shape[0]
    if (lower is None or upper is None) and (values < 0).any():
        raise InputError("the table has negative values: give both a-priori bounds")
    lo = np.zeros(n) if lower is None else per_cell(lower, n, "lower")
    hi = (
        np.full(n, float(values.max(initial=0.0))) if upper is None else per_cell(upper, n, "upper")
    )
    if np.isnan(lo).any() or np.isnan(hi).any():
        raise InputError("a-priori bounds must not be missing")
    if (values < lo).any() or (values > hi).any():
        raise InputError("a cell value lies outside its a-priori bounds")
    return lo, hi


def tolerance(values: FloatArray) -> float:
    """The absolute LP tolerance for a table."""
    return LP_TOL * max(1.0, float(np.abs(values).max(initial=0.0)))


# ----- the attacker LP -------------------------------------------------------------------------
@dataclass(frozen=True)
class Bound:
    """One attacker LP's optimum and its duals (one per relation of the table; 0 where the
    relation was left out). ``ok`` is False when HiGHS did not reach an optimum."""

    value: float
    duals: FloatArray
    ok: bool


def highs_model(
    matrix: sp.csc_matrix,
    lower: FloatArray,
    upper: FloatArray,
    row_lo: FloatArray,
    row_hi: FloatArray,
) -> Any:
    """A HiGHS model of ``row_lo ≤ matrix @ x ≤ row_hi``, ``lower ≤ x ≤ upper``, zero cost."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
    lp.col_cost_ = np.zeros(matrix.shape[1])
    lp.col_lower_, lp.col_upper_ = lower, upper
    lp.row_lower_, lp.row_upper_ = row_lo, row_hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = lp.num_col_, lp.num_row_
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    # The bare class: highspy.Highs() prints a banner and installs Python callbacks. After a
    # cost change the old basis is still primal feasible: primal simplex needs a few pivots
    # from it, dual simplex would start over.
    solver = highspy._Highs()  # type: ignore[attr-defined]
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("simplex_strategy", 4)
    solver.passModel(lp)
    return solver


class AttackerLP:
    """The attacker's LPs for one pattern: free cells within [L0, U0], known and published
    cells fixed. The equality system is built once; requests differ only in the objective."""

    def __init__(
        self,
        model: TableModel,
        values: FloatArray,
        free: BoolArray,
        lower: FloatArray,
        upper: FloatArray,
    ) -> None:
        matrix = model.constraints()
        self.n_rows = matrix.shape[0]
        self.cells: IntArray = np.flatnonzero(free)
        sub = matrix[:, self.cells].tocsr()
        self.rows: IntArray = np.flatnonzero(np.diff(sub.indptr) > 0)
        self.a_eq = sub[self.rows].tocsc()
        # Published cells move to the right-hand side at their published values.
        self.b_eq = -(matrix[self.rows] @ np.where(free, 0.0, values))
        self.bounds = np.column_stack([lower[self.cells], upper[self.cells]])
        self.position = np.full(values.shape[0], -1, dtype=np.intp)
        self.position[self.cells] = np.arange(self.cells.shape[0])
        self.values = values
        self._models: dict[int, Any] = {}
        # The feasible points found (block-local LP solutions) where each free cell was seen
        # at its smallest and largest: a sum of cells already seen beyond its goal at one of
        # them needs no LP (see ``solve_sums``). -1 is the published table.
        self._points: list[FloatArray] = []
        self._extreme_point = np.full((2, self.cells.shape[0]), -1, dtype=np.intp)

    @cached_property
    def _blocks(self) -> tuple[IntArray, int]:
        """Block label per free cell: cells linked through a relation share a block."""
        link = (self.a_eq.T @ self.a_eq).astype(bool)
        _, labels = connected_components(sp.csr_matrix(link), directed=False)
        return np.asarray(labels, dtype=np.intp), int(labels.max(initial=-1)) + 1

    @cached_property
    def _block_parts(self) -> list[tuple[IntArray, IntArray, sp.csc_matrix]]:
        """Per block: its free cells (LP columns), its relations (LP rows) and their matrix."""
        labels, n_blocks = self._blocks
        by_row = self.a_eq.tocsr()
        row_block = labels[by_row.indices[by_row.indptr[:-1]]]  # every LP row has an entry
        col_order = np.argsort(labels, kind="stable")
        row_order = np.argsort(row_block, kind="stable")
        col_starts = np.searchsorted(labels[col_order], np.arange(n_blocks + 1))
        row_starts = np.searchsorted(row_block[row_order], np.arange(n_blocks + 1))
        parts = []
        for b in range(n_blocks):
            cols = col_order[col_starts[b] : col_starts[b + 1]]
            rows = row_order[row_starts[b] : row_starts[b + 1]]
            parts.append((cols, rows, by_row[rows][:, cols].tocsc()))
        return parts

    def solve(self, cell: int, maximise: bool) -> Bound:
        """Minimum (or maximum) of a free cell's value; raises InputError for a fixed cell."""
        return self.solve_many(np.array([cell]), np.array([maximise]))[0]

    def solve_many(
        self, cells: IntArray, maximise: BoolArray, goal: FloatArray | None = None
    ) -> list[Bound]:
        """One bound per (cell, direction) request, in request order.

        Every solution found is a point the attacker cannot rule out, so the extremes seen so
        far bound each optimum from inside. A request whose cell has already been seen at its
        ``goal`` (≥ for a maximum, ≤ for a minimum) is answered with that value and zero duals
        without an LP; by default the goal is the cell's a-priori bound, which makes the
        answer the exact optimum. Raises InputError for a cell that is not free."""
        pos = self.position[np.asarray(cells, dtype=np.intp)]
        if (pos < 0).any():
            raise InputError("the attacker LP was asked about a cell that is not free")
        flags = np.asarray(maximise, dtype=bool)
        target = (
            self.bounds[pos, flags.astype(np.intp)]
            if goal is None
            else np.asarray(goal, dtype=np.float64)
        )
        labels = self._blocks[0]
        out: list[Bound] = []
        for p, up, want in zip(pos, flags, target, strict=True):
            seen = self._seen[1 if up else 0]
            reached = seen[p] >= want if up else seen[p] <= want
            if reached:
                out.append(Bound(float(seen[p]), np.zeros(self.n_rows), True))
            else:
                out.append(self._solve_one(int(labels[p]), int(p), bool(up)))
        return out

    @cached_property
    def _seen(self) -> tuple[FloatArray, FloatArray]:
        """Smallest and largest value seen per free cell in a feasible point (at first the
        published table itself)."""
        start = self.values[self.cells]
        return start.copy(), start.copy()

    def _highs(self, block: int) -> Any:
        """The block's HiGHS model, built on first use and kept with its last basis so that
        each later solve starts warm and only its objective changes."""
        solver = self._models.get(block)
        if solver is None:
            cols, rows, a_eq = self._block_parts[block]
            b_eq = self.b_eq[rows]
            solver = highs_model(a_eq, self.bounds[cols, 0], self.bounds[cols, 1], b_eq, b_eq)
            self._models[block] = solver
        return solver

    def solve_sums(
        self, groups: Sequence[IntArray], maximise: BoolArray, goal: FloatArray | None = None
    ) -> list[Bound]:
        """Minimum (or maximum) of the sum of each group of free cells (each group within one
        block, i.e. linked through the relations), in request order. Raises InputError for a
        cell that is not free or a group spanning unlinked parts of the table.

        With ``goal``, a sum already seen at or beyond its goal (≥ for a maximum) is answered
        with that value and zero duals, without an LP. The points looked at are those where
        one of the group's cells was at its own extreme in that direction."""
        labels = self._blocks[0]
        out = []
        flags = np.asarray(maximise, dtype=bool)
        for i, cells in enumerate(groups):
            up = bool(flags[i])
            pos = self.position[np.asarray(cells, dtype=np.intp)]
            if (pos < 0).any():
                raise InputError("the attacker LP was asked about a cell that is not free")
            block = int(labels[pos[0]])
            if (labels[pos] != block).any():
                raise InputError("a sum of cells in unlinked parts of the table")
            if goal is not None:
                best = self._seen_sum(block, pos, up)
                if (best >= goal[i]) if up else (best <= goal[i]):
                    out.append(Bound(best, self._no_duals, True))
                    continue
            out.append(self._solve_one(block, pos, up))
        return out

    def _seen_sum(self, block: int, pos: IntArray, maximise: bool) -> float:
        """The most extreme sum of the cells at ``pos`` among the points where one of them was
        seen at its own extreme in that direction (the published table included)."""
        local = np.searchsorted(self._block_parts[block][0], pos)
        sums = [float(self.values[self.cells[pos]].sum())]
        for point in set(self._extreme_point[int(maximise), pos].tolist()) - {-1}:
            sums.append(float(self._points[point][local].sum()))
        return max(sums) if maximise else min(sums)

    @cached_property
    def _no_duals(self) -> FloatArray:
        zeros = np.zeros(self.n_rows)
        zeros.flags.writeable = False
        return zeros

    def _solve_one(self, block: int, pos: int | IntArray, maximise: bool) -> Bound:
        """The bound of one free cell, or of the sum of several cells of the block."""
        cols, rows, _ = self._block_parts[block]
        if rows.shape[0] == 0:  # a cell in no relation is bounded by its a-priori bounds only
            value = float(self.bounds[pos, int(maximise)].sum())
            return Bound(value, np.zeros(self.n_rows), True)
        solver = self._highs(block)
        j = np.atleast_1d(np.searchsorted(cols, pos)).astype(np.int32)
        solver.changeColsCost(j.shape[0], j, np.full(j.shape[0], -1.0 if maximise else 1.0))
        solver.run()
        if solver.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            solver.clearSolver()  # a warm start gone wrong: try once more from scratch
            solver.run()
        ok = solver.getModelStatus() == highspy.HighsModelStatus.kOptimal
        solution = solver.getSolution()
        solver.changeColsCost(j.shape[0], j, np.zeros(j.shape[0]))
        if not ok:
            solver.clearSolver()
            return Bound(np.nan, np.zeros(self.n_rows), False)
        x = np.asarray(solution.col_value, dtype=np.float64)
        low, high = self._seen
        self._points.append(x)
        lower_seen, higher_seen = x < low[cols], x > high[cols]
        self._extreme_point[0, cols[lower_seen]] = len(self._points) - 1
        self._extreme_point[1, cols[higher_seen]] = len(self._points) - 1
        low[cols] = np.minimum(low[cols], x)
        high[cols] = np.maximum(high[cols], x)
        duals = np.zeros(self.n_rows)
        duals[self.rows[rows]] = np.asarray(solution.row_dual, dtype=np.float64)
        return Bound(float(x[j].sum()), duals, True)


# ----- audit -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditResult:
    """Feasibility intervals [lo, hi] of the audited suppressed cells (``cells``, ascending).
    Cells the attacker knows (``known``) are fixed and not audited. ``lo``/``hi`` are NaN
    where HiGHS failed; such a cell never counts as protected."""

    n_cells: int
    cells: IntArray
    value: FloatArray
    lo: FloatArray
    hi: FloatArray
    known: IntArray
    tol: float

    def interval(self, cell: int) -> tuple[float, float]:
        """[lo, hi] of one audited cell; raises InputError for a cell that was not audited."""
        pos = np.searchsorted(self.cells, cell)
        if pos >= self.cells.shape[0] or self.cells[pos] != cell:
            raise InputError("that cell was not audited")
        return float(self.lo[pos]), float(self.hi[pos])

    @property
    def exact(self) -> BoolArray:
        """Per audited cell: the attacker learns its value exactly (lo = hi)."""
        return np.asarray(~(self.hi - self.lo > self.tol), dtype=bool)

    def protected(
        self,
        primary: npt.ArrayLike,
        upl: npt.ArrayLike,
        lpl: npt.ArrayLike,
        spl: npt.ArrayLike = 0.0,
    ) -> BoolArray:
        """For each primary cell, in ascending cell order: does it meet hi ≥ a + UPL,
        lo ≤ a − LPL and hi − lo ≥ SPL, without exact disclosure? Levels are scalars or one
        value per cell. A primary that was not audited (published or known) is not protected."""
        cells = np.flatnonzero(as_mask(primary, self.n_cells, "primary"))
        if not self.cells.shape[0]:
            return np.zeros(cells.shape[0], dtype=bool)
        levels = [
            per_cell(x, self.n_cells, name)[cells]
            for x, name in ((upl, "upl"), (lpl, "lpl"), (spl, "spl"))
        ]
        pos = np.minimum(np.searchsorted(self.cells, cells), self.cells.shape[0] - 1)
        audited = self.cells[pos] == cells
        a, lo, hi, t = self.value[pos], self.lo[pos], self.hi[pos], self.tol
        with np.errstate(invalid="ignore"):  # NaN (failed LP) compares False: not protected
            ok = (hi >= a + levels[0] - t) & (lo <= a - levels[1] + t)
            ok &= (hi - lo >= levels[2] - t) & (hi - lo > t)
        return np.asarray(audited & ok, dtype=bool)

    def to_dict(self, model: TableModel | None = None) -> dict[str, Any]:
        """JSON-able intervals, with each cell's codes when the model is given."""
        return {
            "intervals": [
                {
                    "cell": int(c),
                    **({"codes": list(model.labels(int(c)))} if model is not None else {}),
                    "lo": None if np.isnan(lo) else float(lo),
                    "hi": None if np.isnan(hi) else float(hi),
                }
                for c, lo, hi in zip(self.cells, self.lo, self.hi, strict=True)
            ],
            "known": [int(c) for c in self.known],
        }


def audit(
    model: TableModel,
    values: npt.ArrayLike,
    suppressed: npt.ArrayLike,
    *,
    lower: npt.ArrayLike | None = None,
    upper: npt.ArrayLike | None = None,
    known: npt.ArrayLike | None = None,
    targets: npt.ArrayLike | None = None,
) -> AuditResult:
    """Audit a suppression pattern: [lo, hi] for every suppressed cell (or only ``targets``).

    ``known`` cells are fixed at their values even when suppressed (an attacker who knows them,
    §10.5). Raises InputError for a non-additive table, bad masks or bounds."""
    a = model.check_additive(values)
    n = model.n_cells
    lower0, upper0 = apriori_bounds(a, lower, upper)
    known_mask = as_mask(known, n, "known")
    free = as_mask(suppressed, n, "suppressed") & ~known_mask
    wanted = free if targets is None else free & as_mask(targets, n, "targets")
    cells = np.flatnonzero(wanted)
    lp = AttackerLP(model, a, free, lower0, upper0)
    found = lp.solve_many(np.concatenate([cells, cells]), np.repeat([False, True], cells.shape[0]))
    bounds = np.array([b.value for b in found], dtype=np.float64).reshape(2, -1)
    lo, hi = bounds[0], bounds[1]
    return AuditResult(n, cells, a[cells], lo, hi, np.flatnonzero(known_mask), tolerance(a))


def singleton_scenarios(
    model: TableModel, primary: npt.ArrayLike, singletons: npt.ArrayLike
) -> list[Scenario]:
    """One attacker scenario per (primary, singleton ≠ primary) pair sharing a relation: the
    singleton's contributor knows its cell's value (§10.5)."""
    single = as_mask(singletons, model.n_cells, "singletons")
    return owner_scenarios(model, primary, np.where(single, np.arange(model.n_cells), -1))


def owner_scenarios(
    model: TableModel, primary: npt.ArrayLike, owner: npt.ArrayLike
) -> list[Scenario]:
    """Attacker scenarios from sole contributors (§10.5). ``owner`` gives, per cell, an id of
    its only contributor (-1: several or none). A contributor knows every cell it alone makes
    up, all at once; each primary it does not own that shares a relation with one of them is
    audited with those cells known."""
    n = model.n_cells
    prim = as_mask(primary, n, "primary")
    ids = np.asarray(owner).ravel()
    if ids.shape[0] != n:
        raise InputError(f"owner: {ids.shape[0]} values for a table of {n} cells")
    known_cells = np.flatnonzero(ids >= 0)
    incidence = (model.constraints() != 0).astype(np.int8).tocsc()
    prim_cells = np.flatnonzero(prim)
    shared = (incidence[:, prim_cells].T @ incidence[:, known_cells]).tocoo()
    by_owner: dict[int, tuple[int, ...]] = {}
    for cell in known_cells.tolist():
        by_owner[int(ids[cell])] = (*by_owner.get(int(ids[cell]), ()), cell)
    pairs = {
        (int(prim_cells[i]), int(ids[known_cells[k]]))
        for i, k in zip(shared.row, shared.col, strict=True)
        if ids[prim_cells[i]] != ids[known_cells[k]]
    }
    return [(cell, by_owner[who]) for cell, who in sorted(pairs)]


def scenario_list(n: int, scenarios: Sequence[tuple[int, Sequence[int]]] | None) -> list[Scenario]:
    """Validated explicit scenarios as (primary, known cells) tuples."""
    out: list[Scenario] = []
    for primary, known in scenarios or ():
        cells = tuple(int(c) for c in np.flatnonzero(as_mask(list(known), n, "scenario")))
        if not 0 <= int(primary) < n:
            raise InputError(f"scenario: cell index out of range for a table of {n} cells")
        out.append((int(primary), cells))
    return out
