"""LP audit of a suppression pattern (tau-Argus "audit", spec §10.2 and §10.5).

Published cells are fixed at their values; suppressed cells are free within their a-priori
bounds, subject to the table's relations. For every suppressed cell the attacker's feasibility
interval [lo, hi] comes from two LPs (min and max of that cell), solved with HiGHS through
``scipy.optimize.linprog``. Only the suppressed cells are variables and only the relations that
touch them are rows, split into independent blocks, so an LP's size follows the pattern, not
the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components

from output_checker.errors import InputError
from output_checker.protection.model import BoolArray, FloatArray, IntArray, TableModel

LP_TOL = 1e-7  # relative to max(1, largest absolute value in the table)
BATCH_LPS = 64  # LPs solved together as one block-diagonal LP...
BATCH_VARS = 1000  # ...of at most this many variables
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

    def solve_many(self, cells: IntArray, maximise: BoolArray) -> list[Bound]:
        """One bound per (cell, direction) request, in request order.

        Requests on one block are solved together as one block-diagonal LP (its copies are
        independent, so each copy's optimum and duals are those of its own LP): this saves
        the per-call cost of ``linprog``, which dominates on small LPs."""
        pos = self.position[np.asarray(cells, dtype=np.intp)]
        if (pos < 0).any():
            raise InputError("the attacker LP was asked about a cell that is not free")
        flags = np.asarray(maximise, dtype=bool)
        if not pos.size:
            return []
        block = self._blocks[0][pos]
        out: list[Bound] = [Bound(np.nan, np.zeros(self.n_rows), False)] * pos.shape[0]
        order = np.argsort(block, kind="stable")
        bounds_ = np.searchsorted(block[order], np.unique(block), side="right")
        for group in np.split(order, bounds_[:-1]):
            n_vars = self._block_parts[int(block[group[0]])][0].shape[0]
            size = max(1, min(BATCH_LPS, BATCH_VARS // max(n_vars, 1)))
            for start in range(0, group.shape[0], size):
                chunk = group[start : start + size]
                found = self._solve_batch(int(block[chunk[0]]), pos[chunk], flags[chunk])
                for i, bound in zip(chunk, found, strict=True):
                    out[i] = bound
        return out

    def _solve_batch(self, block: int, pos: IntArray, maximise: BoolArray) -> list[Bound]:
        cols, rows, a_eq = self._block_parts[block]
        k, n_vars, n_rows = pos.shape[0], cols.shape[0], rows.shape[0]
        if n_rows == 0:  # a cell in no relation is bounded by its a-priori bounds only
            values = self.bounds[pos, maximise.astype(np.intp)]
            return [Bound(float(v), np.zeros(self.n_rows), True) for v in values]
        where = np.arange(k) * n_vars + np.searchsorted(cols, pos)
        c = np.zeros(k * n_vars)
        c[where] = np.where(maximise, -1.0, 1.0)
        res = linprog(
            c,
            A_eq=sp.kron(sp.identity(k, format="csc"), a_eq, format="csc"),
            b_eq=np.tile(self.b_eq[rows], k),
            bounds=np.tile(self.bounds[cols], (k, 1)),
            method="highs",
        )
        if res.status != 0:
            if k == 1:
                return [Bound(np.nan, np.zeros(self.n_rows), False)]
            # Find out which request failed by solving them one at a time.
            return [
                b
                for i in range(k)
                for b in self._solve_batch(block, pos[i : i + 1], maximise[i : i + 1])
            ]
        duals = np.zeros((k, self.n_rows))
        duals[:, self.rows[rows]] = np.asarray(res.eqlin.marginals).reshape(k, n_rows)
        return [Bound(float(v), d, True) for v, d in zip(res.x[where], duals, strict=True)]


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
    n = model.n_cells
    prim = np.flatnonzero(as_mask(primary, n, "primary"))
    single = np.flatnonzero(as_mask(singletons, n, "singletons"))
    incidence = (model.constraints() != 0).astype(np.int8).tocsc()
    shared = (incidence[:, prim].T @ incidence[:, single]).tocoo()
    pairs = sorted(
        (int(prim[i]), int(single[s]))
        for i, s in zip(shared.row, shared.col, strict=True)
        if prim[i] != single[s]
    )
    return [(p, (s,)) for p, s in pairs]


def scenario_list(n: int, scenarios: Sequence[tuple[int, Sequence[int]]] | None) -> list[Scenario]:
    """Validated explicit scenarios as (primary, known cells) tuples."""
    out: list[Scenario] = []
    for primary, known in scenarios or ():
        cells = tuple(int(c) for c in np.flatnonzero(as_mask(list(known), n, "scenario")))
        if not 0 <= int(primary) < n:
            raise InputError(f"scenario: cell index out of range for a table of {n} cells")
        out.append((int(primary), cells))
    return out
