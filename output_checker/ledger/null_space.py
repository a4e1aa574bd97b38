"""Proof that a hidden cell is protected, along a change the published rows cannot see (spec
§11, issue 11 item 2(b)).

The LP audit's exact interval needs the LP of the hidden cell's whole connected component.
When every release covers its own filtered population, the ledger is one component of about a
million entities, which HiGHS does not settle in minutes. This module proves protection
without that LP.

Let d change the entities' values so that no published row changes (A d = 0) and the hidden
cell's sum rises by 1. Then the database x* + s·d shows the attacker exactly what the truth
shows, for every step s that keeps each value within its a-priori bounds, while the hidden
cell reads a + s. The attacker's interval therefore contains [a − s_down, a + s_up], the
largest steps the bounds allow each way. When that inner interval meets the protection rule,
the cell is protected; when it does not, nothing follows, and the cell goes on to the exact
LP.

The change used is the target row projected onto the null space of the published rows,
restricted to the entities strictly inside their bounds (one at a bound cannot move both
ways): d ∝ t − Aᵀy with y the least-squares solution of Aᵀy ≈ t, found by LSQR from
matrix-vector products alone. The projection spreads the change over the whole component, so
each entity's share is small and the bounds are far: over 500 random releases of 20,000
entities each, every |d_e| stays below 0.1 where a count's entity can fall by 1.

Rows are scaled to unit length first (the null space is the same): a grand total over 20,000
entities beside cells of 20 otherwise slows LSQR a hundredfold. A row implied by others (a
margin equal to the sum of the cells under it, :func:`implied_rows`) constrains nothing they
do not, so the solve leaves it out; afterwards every published row is checked, and the step is
capped where floating-point residue in any row would exceed the LP audit's tolerance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.sparse.linalg import LinearOperator, lsqr

from output_checker.ledger.aggregates import Aggregates

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# LSQR's stopping tolerance; the residual that matters is checked on every row afterwards.
LSQR_TOL = 1e-8
LSQR_ITERATIONS = 1000


class _OutOfTime(Exception):
    pass


@dataclass(frozen=True)
class NullSpace:
    """What a change must keep and may move: ``rows`` (0/1, over every entity) span the
    published rows; ``residual(d)`` is the largest change of any published row under ``d``;
    ``room_up`` and ``room_down`` are how far each entity's value may rise and fall within
    its bounds; ``tol`` is how far a published row may drift (the LP audit's tolerance).
    After ``deadline`` (a ``time.monotonic()`` value) no solve runs on."""

    rows: sparse.csr_matrix
    residual: Callable[[FloatArray], float]
    room_up: FloatArray
    room_down: FloatArray
    tol: float
    deadline: float = np.inf

    def direction(self, target: IntArray) -> FloatArray | None:
        """A change that moves the sum of the entities ``target`` by exactly 1 and the
        spanning rows by (almost) nothing, zero on every entity at a bound; None when there
        is none (the target's sum is a combination of published rows) or time ran out."""
        movable = (self.room_up > self.tol) & (self.room_down > self.tol)
        t = np.zeros(self.rows.shape[1])
        t[target] = 1.0
        t *= movable
        if not t.any():
            return None
        try:
            d = _projection(self.rows, movable, t, self.deadline)
        except _OutOfTime:
            return None
        moved = float(d[target].sum())
        if not moved > self.tol:  # the target's own row lies (nearly) in the row space
            return None
        return d / moved

    def reach(self, d: FloatArray, residue: float) -> tuple[float, float]:
        """How far a sum that ``d`` moves by 1 can rise and fall along ``d`` (the steps up
        and down), within every entity's bounds and with the published rows' drift
        (``residue`` per unit step, from :attr:`residual`) within the tolerance."""
        cap = np.inf if residue == 0 else self.tol / residue
        rising, falling = d > 0, d < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            up = min(
                _least(self.room_up[rising] / d[rising]),
                _least(self.room_down[falling] / -d[falling]),
            )
            down = min(
                _least(self.room_down[rising] / d[rising]),
                _least(self.room_up[falling] / -d[falling]),
            )
        return min(up, cap), min(down, cap)


def _least(values: FloatArray) -> float:
    return float(values.min()) if values.shape[0] else np.inf


def _projection(
    rows: sparse.csr_matrix, movable: BoolArray, t: FloatArray, deadline: float
) -> FloatArray:
    """``t`` projected onto the null space of ``rows`` within the movable coordinates: the
    residual t − Bᵀy of the least-squares problem Bᵀy ≈ t, with B the rows scaled to unit
    length and the fixed entities' columns dropped. (Two threads, half the rows each, were
    measured no faster: the products are bound by memory.)"""
    sizes = np.asarray(rows.multiply(rows).sum(axis=1)).ravel()
    scale = 1.0 / np.sqrt(np.where(sizes > 0, sizes, 1.0))
    keep = movable.astype(np.float64)
    by_row = rows.T  # a free transposed view (a copied transpose measured no faster)

    def spread(y: FloatArray) -> FloatArray:
        if time.monotonic() >= deadline:
            raise _OutOfTime
        return np.asarray(keep * (by_row @ (scale * np.ravel(y))))

    def gather(v: FloatArray) -> FloatArray:
        if time.monotonic() >= deadline:
            raise _OutOfTime
        return np.asarray(scale * (rows @ (keep * np.ravel(v))))

    operator = LinearOperator(
        (rows.shape[1], rows.shape[0]), matvec=spread, rmatvec=gather, dtype=np.float64
    )
    y = lsqr(operator, t, atol=LSQR_TOL, btol=LSQR_TOL, iter_lim=LSQR_ITERATIONS)[0]
    return np.asarray(t - spread(y))


def implied_rows(aggregates: Aggregates) -> BoolArray:
    """Per row, whether it is the sum of the other rows of its output and quantity that lie
    under it (a margin over cells all present): such a row adds no constraint beyond them.

    Compared through two random projections of the weights, so a row could in principle be
    flagged by chance; that is harmless, since a proof is checked against every published row
    afterwards and fails if it ignored a real constraint. A margin over a cell left out of the
    ledger (suppressed) differs from the sum of the cells present and stays a constraint."""
    n = aggregates.n_rows
    implied = np.zeros(n, dtype=bool)
    if n == 0 or not aggregates.grids:
        return implied
    codes = _codes(aggregates)
    inner = (codes != -1).all(axis=1)
    if inner.all() or not inner.any():
        return implied
    probes = np.random.default_rng(0).standard_normal((aggregates.n_entities, 2))
    hashed = aggregates.weights @ probes
    sizes = np.diff(aggregates.weights.indptr).astype(np.float64)
    signature = np.column_stack([hashed, sizes])
    margins = np.flatnonzero(~inner)
    cells = np.flatnonzero(inner)
    key = np.column_stack([aggregates.grid_of, aggregates.quantity_of, codes])
    patterns, pattern_of = np.unique(codes[margins] == -1, axis=0, return_inverse=True)
    for p, free in enumerate(patterns):  # one pass per kind of margin (row, column, grand)
        mine = margins[pattern_of.ravel() == p]
        cell_key = key[cells].copy()
        cell_key[:, 2:][:, free] = -1  # the key of the margin each cell lies under
        ids = _row_ids(np.vstack([key[mine], cell_key]))
        margin_ids, cell_ids = ids[: mine.shape[0]], ids[mine.shape[0] :]
        order = np.argsort(margin_ids, kind="stable")
        at = np.minimum(np.searchsorted(margin_ids[order], cell_ids), mine.shape[0] - 1)
        under = margin_ids[order][at] == cell_ids
        parent = order[at[under]]
        total = np.zeros((mine.shape[0], signature.shape[1]))
        np.add.at(total, parent, signature[cells[under]])
        scale = np.maximum(1.0, np.abs(signature[mine]).max(axis=1))
        close = np.abs(total - signature[mine]).max(axis=1) <= 1e-9 * scale
        implied[mine] = close & (np.bincount(parent, minlength=mine.shape[0]) > 0)
    return implied


def _row_ids(keys: IntArray) -> IntArray:
    """One number per row of ``keys``, equal exactly for equal rows: the rows' place in a
    mixed-radix count when that fits in 62 bits (sorting numbers is fast), else their rank."""
    low = keys.min(axis=0)
    span = keys.max(axis=0) - low + 1
    if float(np.prod(span.astype(np.float64))) < 2.0**62:
        return np.asarray(np.ravel_multi_index(tuple((keys - low).T), tuple(span)), np.int64)
    return np.asarray(np.unique(keys, axis=0, return_inverse=True)[1], np.int64).ravel()


def _codes(aggregates: Aggregates) -> IntArray:
    """Each row's level codes in its grid, padded with -2 where its grid has fewer
    variables (so a padding column never reads as a margin)."""
    depth = max(len(grid.variables) for grid in aggregates.grids)
    codes = np.full((aggregates.n_rows, depth), -2, dtype=np.int64)
    order = np.argsort(aggregates.grid_of, kind="stable")
    starts = np.searchsorted(aggregates.grid_of[order], np.arange(len(aggregates.grids) + 1))
    for g, grid in enumerate(aggregates.grids):  # a vectorised copy per output
        rows = order[starts[g] : starts[g + 1]]
        if rows.shape[0]:
            grid_codes = np.asarray(grid.codes, dtype=np.int64)
            codes[rows, : grid_codes.shape[1]] = grid_codes[aggregates.cell_of[rows]]
    return codes
