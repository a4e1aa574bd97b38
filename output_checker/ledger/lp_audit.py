"""LP audit of hidden cells against every published linear aggregate (spec §11, issue 11
item 2(b)).

A new output hides some cells (suppressed or sensitive). The attacker sees every released cell
and the new output's published cells, each the sum of its contributors' values, and knows
which entities contribute to which cell. Each entity's value is a variable within a-priori
bounds; the attacker's interval for a hidden cell is the minimum and maximum of its sum subject
to every published equation, solved with HiGHS (``highspy``).

Model: in the rows of one quantity an entity contributes one value (x*_e, 1 for a count, its
total for a sum), so row r shows Σ_{e ∈ r} x*_e. Only rows of the target's quantity constrain
it (a count and a sum share no variable). Default bounds: a count's entity lies in [0, ∞) —
the attacker knows which populations overlap, not how many entities they hold (with [0, 1]
every x*_e = 1 sits at its upper bound, so every hidden count would be pinned from above by
construction); a sum's entity lies in [0, largest cell value of that quantity].

Reductions (exact): link an entity and a published row when the entity contributes to it. The
LP splits into the connected components of that graph: a component's equations involve only
its entities, and each component is feasible on its own (the truth satisfies it). So the
target's extremes depend only on the components holding its entities; the other components
can be dropped without changing them. Keeping only the rows overlapping the target (one hop)
is *not* exact: a chain t={1}, {1,2}, {2,3}, {3} pins x1 only through {3}. A released grand
total joins every entity into one component, so the second reduction matters more: entities
in the same rows are interchangeable and merge into one variable (see :func:`merge_atoms`).

Solving (spec §10.4's warm start): each component gets one HiGHS model, built when a target
first needs it and kept. Every target of the quantity whose entities lie in that component
changes only the objective (its atoms' costs, +1 to minimise, −1 to maximise) and starts from
the basis the previous solve left, so after the first solve most take a few pivots.
Before that, each target gets a local LP over the small published rows touching it. Dropping
rows only widens the interval, so when the local LP already pins the target to a point, that
point is exact (unlike the one-hop reduction above, which is used for nothing else): a cell
pinned by its released twin never waits for its component's model. A cell the local LP leaves
open then gets a proof of protection along a change no published row sees
(:mod:`output_checker.ledger.null_space`), then an inner LP in which only the people around
it move; only the cells neither proves need their component's model.

Rounded rows (spec §11): a row published rounded (or otherwise perturbed) tells the attacker
only that its sum lies in [shown − slack, shown + slack], an interval constraint instead of an
equation. Components and atoms stay exact: they depend only on which entities share rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from output_checker.errors import InputError
from output_checker.ledger.aggregates import Aggregates, CellRef, Kind, Quantity, stack, widen
from output_checker.ledger.differencing import IndexedRows, bucket_counts, index_rows
from output_checker.ledger.null_space import NullSpace
from output_checker.ledger.ratios import resolve_ratios
from output_checker.protection.audit import LP_TOL, as_mask, highs_model, per_cell

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Rows of up to this many variables (or 4 × the target's) enter a target's local LP.
LOCAL_ROW_SIZE = 64


@dataclass(frozen=True)
class Interval:
    """The attacker's [lo, hi] for one target row (NaN where HiGHS failed, ±inf where
    unbounded) and the published rows whose equations carry a non-zero dual in either LP."""

    lo: float
    hi: float
    binding: IntArray


@dataclass(frozen=True)
class LPFinding:
    """A hidden cell of the new output the attacker pins too closely: ``value`` lies in
    [``lo``, ``hi``], which the published cells in ``binding`` imply."""

    cell: CellRef
    value: float
    lo: float
    hi: float
    binding: tuple[CellRef, ...]

    @property
    def earlier_outputs(self) -> tuple[str, ...]:
        """The earlier outputs among the binding rows, sorted (the new output left out)."""
        return tuple(sorted({ref.output for ref in self.binding} - {self.cell.output}))


def components(pattern: sparse.csr_matrix, published: BoolArray) -> IntArray:
    """Component label per entity: entities linked through published rows share a label."""
    rows = pattern[np.flatnonzero(published)]
    m, n = rows.shape
    if m == 0:
        return np.arange(n, dtype=np.int64)
    graph = sparse.bmat([[None, rows.T], [rows, None]], format="csr", dtype=np.int8)
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels[:n], dtype=np.int64)


@dataclass(frozen=True)
class _RowBox:
    """Each row's interval and each variable's bounds, by row and variable number."""

    row_lo: FloatArray
    row_hi: FloatArray
    lower: FloatArray
    upper: FloatArray


class ComponentLPs:
    """The attacker's LPs over the rows of one quantity: ``pattern`` (rows × variables, 0/1),
    published rows within [``row_lo``, ``row_hi``] (equal for an exact row), each variable
    within [``lower``, ``upper``]. One HiGHS model per connected component (``labels``, from
    :func:`components`; all variables in one when omitted), built on first use and kept with
    its last basis: every later target in that component changes only the objective.

    Before its component's LP, a target gets a local one: only the published rows of at most
    ``LOCAL_ROW_SIZE`` (or 4 × the target's) variables that touch it. Dropping rows only
    widens the interval, so when the local LP already pins the target to a point, that point
    is the exact answer and the (possibly huge) component LP is skipped. After ``deadline``
    (a ``time.monotonic()`` value) no LP is started and bounds not found are NaN."""

    def __init__(
        self,
        pattern: sparse.csr_matrix,
        published: BoolArray,
        row_lo: FloatArray,
        row_hi: FloatArray,
        lower: FloatArray,
        upper: FloatArray,
        labels: IntArray | None = None,
        deadline: float = np.inf,
    ) -> None:
        self.pattern = pattern
        self.labels = np.zeros(pattern.shape[1], np.int64) if labels is None else labels
        self.row_lo, self.row_hi, self.lower, self.upper = row_lo, row_hi, lower, upper
        self.deadline = deadline
        n_labels = int(self.labels.max(initial=-1)) + 1
        self._col_order = np.argsort(self.labels, kind="stable")
        self._col_starts = np.searchsorted(self.labels[self._col_order], np.arange(n_labels + 1))
        self._sizes = np.diff(pattern.indptr)
        self._live = published & (self._sizes > 0)
        # every live row lies in one component: that of its first entity
        live = np.flatnonzero(self._live)
        row_label = self.labels[pattern.indices[pattern.indptr[live]]]
        order = np.argsort(row_label, kind="stable")
        self._row_order = live[order]
        self._row_starts = np.searchsorted(row_label[order], np.arange(n_labels + 1))
        self._column = np.empty(pattern.shape[1], dtype=np.int32)
        self._column[self._col_order] = np.arange(pattern.shape[1]) - np.repeat(
            self._col_starts[:-1], np.diff(self._col_starts)
        )
        self._by_variable = pattern.tocsc()
        scale = np.abs(np.concatenate([row_lo[live], row_hi[live]]))
        self.tol = LP_TOL * max(1.0, float(scale[np.isfinite(scale)].max(initial=0.0)))
        self._models: dict[int, Any] = {}

    def interval(self, target: int) -> Interval:
        """Min and max of row ``target``'s sum (see :meth:`intervals`)."""
        return self.intervals([target])[0]

    def intervals(self, targets: Sequence[int], local: bool = True) -> list[Interval]:
        """Min and max of each target row's sum, in order. Every target's local LP comes
        first (unless ``local`` is False: the caller tried them), so the cheap answers are in
        before any component LP spends the time left."""
        pinned = [self._pinned_locally(self._variables(t)) if local else None for t in targets]
        return [
            found if found is not None else self._by_component(self._variables(t))
            for t, found in zip(targets, pinned, strict=True)
        ]

    def _variables(self, target: int) -> IntArray:
        start, stop = self.pattern.indptr[target : target + 2]
        return np.asarray(self.pattern.indices[start:stop])

    def _by_component(self, variables: IntArray) -> Interval:
        """Per component holding the target's variables, one solve each way, added up (the
        components' LPs are independent)."""
        own = self.labels[variables]
        ends, binding = [0.0, 0.0], [np.zeros(0, dtype=np.int64)]
        for label in np.unique(own).tolist():
            in_component = variables[own == label]
            rows = self._row_order[self._row_starts[label] : self._row_starts[label + 1]]
            for side, maximise in enumerate((False, True)):
                if rows.shape[0] == 0:  # no published row: only the a-priori bounds hold
                    bound = self.upper if maximise else self.lower
                    ends[side] += float(bound[in_component].sum())
                    continue
                solver = self._models.get(label)
                if solver is None and time.monotonic() >= self.deadline:
                    ends[side] = np.nan  # no time left to build the model
                    continue
                if solver is None:
                    solver = self._component_model(label, rows)
                j = self._column[in_component]
                value, duals = _solve(solver, j, maximise, self.deadline, self.tol)
                ends[side] += value
                binding.append(rows[duals])
        return Interval(ends[0], ends[1], np.unique(np.concatenate(binding)))

    def _pinned_locally(self, variables: IntArray) -> Interval | None:
        """The target's interval from the small published rows touching it, if that already
        is a single point (see the class docstring); None otherwise."""
        if variables.shape[0] == 0:  # a cell without contributors is known to be empty
            return Interval(0.0, 0.0, np.zeros(0, dtype=np.int64))
        cap = max(LOCAL_ROW_SIZE, 4 * variables.shape[0])
        touching = self._by_variable[:, variables].indices
        live = np.unique(touching[self._live[touching]])
        small = self._sizes[live] <= cap
        rows, large = live[small], live[~small]
        box = _RowBox(self.row_lo, self.row_hi, self.lower, self.upper)
        big = _LargeRows.of(self.pattern[large], large)
        return _local_point(self.pattern[rows], rows, box, variables, self.tol, self.deadline, big)

    def _component_model(self, label: int, rows: IntArray) -> Any:
        cols = self._col_order[self._col_starts[label] : self._col_starts[label + 1]]
        solver = highs_model(
            self.pattern[rows][:, cols].tocsc(),
            self.lower[cols],
            self.upper[cols],
            self.row_lo[rows],
            self.row_hi[rows],
        )
        self._models[label] = solver
        return solver


def _solve(
    solver: Any, j: npt.NDArray[np.int32], maximise: bool, deadline: float, tol: float
) -> tuple[float, BoolArray]:
    """The min (or max) of the sum of the model's columns ``j``, and which rows carry a
    non-zero dual (beyond ``tol``) at the optimum. ±inf when unbounded, NaN when HiGHS failed
    or the ``deadline`` (a ``time.monotonic()`` value) passed."""
    no_duals = np.zeros(solver.getNumRow(), dtype=bool)
    left = deadline - time.monotonic()
    if left <= 0:
        return np.nan, no_duals
    # HiGHS compares its limit with the model's run time summed over every run
    solver.setOptionValue("time_limit", float(min(solver.getRunTime() + left, 1e30)))
    solver.changeColsCost(j.shape[0], j, np.full(j.shape[0], -1.0 if maximise else 1.0))
    solver.run()
    status = solver.getModelStatus()
    if status not in _SETTLED and status != highspy.HighsModelStatus.kTimeLimit:
        solver.clearSolver()  # a warm start gone wrong: once more from scratch
        solver.run()
        status = solver.getModelStatus()
    solution = solver.getSolution()
    solver.changeColsCost(j.shape[0], j, np.zeros(j.shape[0]))
    if status != highspy.HighsModelStatus.kOptimal:
        solver.clearSolver()  # leave no odd basis to the next target
        # the truth is feasible, so "unbounded or infeasible" means unbounded
        value = (np.inf if maximise else -np.inf) if status in _SETTLED else np.nan
        return value, no_duals
    value = float(np.asarray(solution.col_value, dtype=np.float64)[j].sum())
    return value, np.abs(np.asarray(solution.row_dual, dtype=np.float64)) > tol


def _local_point(
    pattern: sparse.csr_matrix,
    rows: IntArray,
    box: _RowBox,
    variables: IntArray,
    tol: float,
    deadline: float,
    big: _LargeRows | None = None,
    inside: BoolArray | None = None,
) -> Interval | None:
    """The interval of the sum of ``variables`` under only the given rows (``pattern``, the
    rows numbered ``rows`` in ``box``), when it is a single point; None otherwise. Fewer rows
    only widen an interval, so such a point is the exact answer under every row.

    ``big`` are the large rows touching the variables: too large to enter themselves, but
    any two of them that differ by a few variables imply a small row, their difference (a
    margin released with and without a few people), which does enter. Implied rows keep the
    LP a relaxation, so the rule above still holds.

    ``inside`` marks the variables whose true value lies strictly within their bounds; with
    it, rows that such a variable can balance on its own are peeled off first
    (:func:`_peels_off`), and when that frees the target no LP is solved."""
    cap = max(LOCAL_ROW_SIZE, 4 * variables.shape[0])
    matrix, row_lo, row_hi = pattern, box.row_lo[rows], box.row_hi[rows]
    sources = np.column_stack([rows, rows])
    if big is not None:
        derived, first, second = _differences(big, cap)
        matrix = sparse.vstack([matrix, derived], format="csr")
        one, two = big.rows[first], big.rows[second]
        row_lo = np.concatenate([row_lo, box.row_lo[one] - box.row_hi[two]])
        row_hi = np.concatenate([row_hi, box.row_hi[one] - box.row_lo[two]])
        sources = np.concatenate([sources, np.column_stack([one, two])])
    if matrix.shape[0] == 0:
        return None
    if inside is not None and _peels_off(matrix, variables, inside):
        return None
    cols = np.union1d(matrix.indices, variables)
    solver = highs_model(matrix[:, cols].tocsc(), box.lower[cols], box.upper[cols], row_lo, row_hi)
    j = np.searchsorted(cols, variables).astype(np.int32)
    lo, low_duals = _solve(solver, j, False, deadline, tol)
    hi, high_duals = _solve(solver, j, True, deadline, tol)
    if not hi - lo <= tol:  # NaN (no answer) is no point either
        return None
    return Interval(lo, hi, np.unique(sources[low_duals | high_duals]).astype(np.int64))


def _peels_off(matrix: sparse.csr_matrix, variables: IntArray, inside: BoolArray) -> bool:
    """Whether the rows cannot pin the sum of ``variables``, shown by peeling: drop every row
    that holds a non-target variable strictly within its bounds and held by no other row
    left, until none is dropped. If then no row left holds a target variable, nudge a target
    variable a little; undo the dropped rows in the reverse order of dropping, each through
    its own such variable (no row dropped after it holds that variable), and every row holds
    again: the sum moves, so the interval is not a point."""
    absorbs = inside.copy()
    absorbs[variables] = False
    row_of_entry = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    alive = np.ones(matrix.shape[0], dtype=bool)
    while True:
        live = alive[row_of_entry]
        held = np.bincount(matrix.indices[live], minlength=inside.shape[0])
        private = live & absorbs[matrix.indices] & (held[matrix.indices] == 1)
        if not private.any():
            break
        alive[row_of_entry[private]] = False
    target = np.zeros(inside.shape[0], dtype=bool)
    target[variables] = True
    freed = not (alive[row_of_entry] & target[matrix.indices]).any()
    return freed and bool(inside[variables].any())


def _inner_interval(
    neighbourhood: _Neighbourhood,
    variables: IntArray,
    free: IntArray,
    usable: BoolArray,
    box: _RowBox,
    tol: float,
    deadline: float,
) -> Interval | None:
    """An interval inside the sum's true one: the LP in which only the ``free`` entities (the
    target's and those around it) move and every other entity keeps its true value. Fixing
    variables can only narrow an interval, so when this one already meets the protection
    rule, so does the true one, without the whole ledger's LP. None when it has no rows."""
    rows = neighbourhood.rows(free)
    rows = rows[usable[rows]]
    if rows.shape[0] == 0:
        return None
    weights = neighbourhood.weights(rows)
    inside = weights[:, free].tocsr()
    fixed = np.asarray(weights.sum(axis=1)).ravel() - np.asarray(inside.sum(axis=1)).ravel()
    solver = highs_model(
        _ones(inside).tocsc(),
        box.lower[free],
        box.upper[free],
        box.row_lo[rows] - fixed,
        box.row_hi[rows] - fixed,
    )
    j = np.searchsorted(free, variables).astype(np.int32)
    lo, _ = _solve(solver, j, False, deadline, tol)
    hi, _ = _solve(solver, j, True, deadline, tol)
    return Interval(lo, hi, np.zeros(0, dtype=np.int64))


def _ones(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """The 0/1 pattern of ``matrix``: explicit zeros (a contribution of 0) count."""
    return sparse.csr_matrix(
        (np.ones(matrix.nnz), matrix.indices, matrix.indptr), shape=matrix.shape
    )


@dataclass(frozen=True)
class _LargeRows:
    """Published rows touching a target that are too large to enter its local LP: their
    numbers, sizes and :func:`bucket_counts`, and the patterns of some of them (by
    position), read only for the pairs that pass the screens of :func:`_differences`."""

    rows: IntArray
    sizes: IntArray
    buckets: npt.NDArray[np.int32]
    pattern: Callable[[IntArray], sparse.csr_matrix]

    @classmethod
    def of(cls, pattern: sparse.csr_matrix, rows: IntArray) -> _LargeRows:
        """The rows numbered ``rows`` whose pattern is ``pattern`` (one row each)."""
        sizes = np.diff(pattern.indptr).astype(np.int64)
        return cls(rows, sizes, bucket_counts(pattern), lambda at: pattern[at])


def _differences(large: _LargeRows, cap: int) -> tuple[sparse.csr_matrix, IntArray, IntArray]:
    """Every difference of two ``large`` rows that is not empty and has at most ``cap``
    variables, as a ±1 row, with the two rows' positions.

    Two such rows differ in size by at most ``cap``, and so do their bucket counts summed
    over the buckets. Only the pairs that pass both screens have their patterns read and
    their exact overlap computed, so rows over different populations (two grand totals of
    equal size) cost a comparison of counts, not a sparse product over all their entities."""
    firsts, seconds = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    counts = large.buckets
    for one, two in _close_pairs(large.sizes, cap):
        near = np.abs(counts[one] - counts[two]).sum(axis=1) <= cap
        firsts.append(one[near])
        seconds.append(two[near])
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    involved, position = np.unique(np.concatenate([first, second]), return_inverse=True)
    pattern = large.pattern(involved)
    a, b = position[: first.shape[0]], position[first.shape[0] :]
    common = np.asarray(pattern[a].multiply(pattern[b]).sum(axis=1)).ravel()
    differ = large.sizes[first] + large.sizes[second] - 2 * common
    keep = (differ > 0) & (differ <= cap)
    derived = (pattern[a[keep]] - pattern[b[keep]]).tocsr()
    derived.eliminate_zeros()
    return derived, first[keep], second[keep]


_PAIR_BLOCK = 256  # rows whose pairs are screened at once: memory stays O(256 × rows)


def _close_pairs(sizes: IntArray, cap: int) -> Iterator[tuple[IntArray, IntArray]]:
    """Every pair of positions i < j whose sizes differ by at most ``cap``, a block of rows
    at a time."""
    order = np.argsort(sizes, kind="stable")
    ranked = sizes[order]
    ends = np.searchsorted(ranked, ranked + cap, side="right")
    for start in range(0, ranked.shape[0], _PAIR_BLOCK):
        rows = np.arange(start, min(start + _PAIR_BLOCK, ranked.shape[0]))
        counts = np.maximum(ends[rows] - rows - 1, 0)
        low = np.repeat(rows, counts)
        offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        high = low + 1 + offset
        a, b = order[low], order[high]
        yield np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)


_SETTLED = (
    highspy.HighsModelStatus.kOptimal,
    highspy.HighsModelStatus.kUnbounded,
    highspy.HighsModelStatus.kUnboundedOrInfeasible,
)


def attacker_interval(
    pattern: sparse.csr_matrix,
    values: FloatArray,
    published: BoolArray,
    target: int,
    lower: FloatArray,
    upper: FloatArray,
    labels: IntArray | None = None,
) -> Interval:
    """Min and max of row ``target`` of ``pattern @ x`` (a 0/1 matrix) subject to
    ``pattern[published] @ x = values[published]`` and ``lower ≤ x ≤ upper``. With ``labels``
    (from :func:`components`) only the components holding the target's entities enter the
    LP (exact, see the module's docstring); without, the full LP. To ask about many targets,
    build one :class:`ComponentLPs` and keep it."""
    lps = ComponentLPs(pattern, published, values, values, lower, upper, labels)
    return lps.interval(target)


def merge_atoms(
    pattern: sparse.csr_matrix, lower: FloatArray, upper: FloatArray
) -> tuple[sparse.csr_matrix, FloatArray, FloatArray]:
    """One column per distinct 0/1 column of ``pattern`` (an atom: entities in exactly the
    same rows), bounded by the sums of its entities' bounds. Exact for every LP over these
    rows: atom entities enter each equation and objective only through their sum, and a sum
    of boxed variables ranges over exactly the sum of the boxes. The LP's size then follows
    the tables' structure (the distinct populations), not the number of entities."""
    by_entity = pattern.tocsc()
    by_entity.sort_indices()
    n_rows, n_entities = by_entity.shape
    # Each column's set of rows, hashed as a wrapping sum of random 64-bit row weights (two
    # independent ones), so grouping equal columns is one np.unique, not a loop per entity.
    weights = np.random.default_rng(0).integers(1, 2**63, size=(n_rows, 2), dtype=np.uint64)
    column = np.repeat(np.arange(n_entities), np.diff(by_entity.indptr))
    keys = np.zeros((n_entities, 2), dtype=np.uint64)
    np.add.at(keys, column, weights[by_entity.indices])
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    atom = inverse.ravel()
    if _collided(by_entity, first[atom]):  # never seen; be exact all the same
        raise RuntimeError("entity patterns collided in merge_atoms")
    low = np.zeros(len(first))
    high = np.zeros(len(first))
    np.add.at(low, atom, lower)
    np.add.at(high, atom, upper)
    return by_entity[:, first].tocsr(), low, high


def _collided(by_entity: sparse.csc_matrix, representative: IntArray) -> bool:
    """Whether some column's rows differ from those of its atom's representative (indices
    sorted), compared entry by entry in one pass over the entries."""
    starts, counts = by_entity.indptr[:-1], np.diff(by_entity.indptr)
    if (counts[representative] != counts).any():
        return True
    within = np.arange(by_entity.indices.shape[0]) - np.repeat(starts, counts)
    twin = np.repeat(starts[representative], counts) + within
    return bool((by_entity.indices != by_entity.indices[twin]).any())


def lp_findings(
    released: Aggregates | IndexedRows | None,
    new: Aggregates,
    hidden: npt.ArrayLike,
    upl: npt.ArrayLike,
    lpl: npt.ArrayLike,
    spl: npt.ArrayLike = 0.0,
    bounds: Mapping[Quantity, tuple[float, float]] | None = None,
    released_slack: npt.ArrayLike = 0.0,
    new_slack: npt.ArrayLike = 0.0,
    released_shown: npt.ArrayLike | None = None,
    new_shown: npt.ArrayLike | None = None,
    time_limit: float | None = None,
) -> tuple[LPFinding, ...]:
    """Every hidden cell of ``new`` (a mask or row indices) whose attacker interval [lo, hi]
    fails hi ≥ a + UPL, lo ≤ a − LPL, hi − lo ≥ SPL or is a single point (the protection
    audit's rule). Levels are scalars or one value per row of ``new``. ``bounds`` overrides the
    a-priori bounds of each entity's value per quantity.

    Each hidden cell first gets a local LP over the small rows touching its entities; the
    cells it does not pin get the null-space and inner proofs of protection; only the cells
    still open build the atoms, components and component LPs of the whole ledger.
    Pass the released rows indexed (:func:`index_rows`, once per release) so that a cell the
    local LP pins costs work in its neighbourhood only, not in the size of the ledger.

    A published row is known within [shown − slack, shown + slack]: ``*_shown`` is the value
    published (default: the exact one) and ``*_slack`` a half-width, 0 for an exact row (a
    scalar or one per row of ``released`` / ``new``). A count rounded to base b (to the
    nearest, ties up) is ``shown = r − 0.5``, ``slack = b/2 − 0.5`` for the published r.

    ``time_limit`` bounds the audit's wall seconds, from this call: once spent, no LP is
    started and the cells not yet audited get NaN bounds, so they are findings (not shown to
    be protected).

    Raises InputError when an entity contributes different totals to rows of one sum (the
    one-value-per-entity model fails), or a row's interval leaves out its true value."""
    if time_limit is not None and not time_limit >= 0:
        raise InputError("the time limit must be a non-negative number of seconds")
    deadline = np.inf if time_limit is None else time.monotonic() + time_limit
    indexed = [index_rows(new)]
    if released is not None:
        indexed.insert(0, released if isinstance(released, IndexedRows) else index_rows(released))
    parts = [group.aggregates for group in indexed]
    offset = sum(part.n_rows for part in parts[:-1])
    n_rows, n_entities = offset + new.n_rows, max(part.n_entities for part in parts)
    hidden_mask = as_mask(hidden, new.n_rows, "hidden")
    levels = [
        per_cell(level, new.n_rows, name)
        for level, name in ((upl, "upl"), (lpl, "lpl"), (spl, "spl"))
    ]
    published = np.ones(n_rows, dtype=bool)
    published[offset:][hidden_mask] = False
    values = np.concatenate([np.asarray(p.weights.sum(axis=1)).ravel() for p in parts])
    sizes = np.concatenate([group.size for group in indexed])
    row_lo, row_hi = _row_ranges(
        values, offset, (released_slack, new_slack), (released_shown, new_shown)
    )
    stacked: Aggregates | None = None  # the whole ledger, built only when needed
    if any(q.is_ratio for part in parts for q in part.quantities):
        # a mean or percentage whose denominator is published is its numerator; one whose
        # denominator is not stays a ratio, which constrains no sum or count
        stacked = resolve_ratios(stack(parts), known=published)
        quantities, quantity_of = list(stacked.quantities), stacked.quantity_of
    else:
        quantities = sorted({q for part in parts for q in part.quantities})
        quantity_of = np.concatenate(
            [np.asarray([quantities.index(q) for q in p.quantities])[p.quantity_of] for p in parts]
        )
    neighbourhood = _Neighbourhood(indexed, n_entities)
    # rows the others imply constrain nothing more; the new output's margins may lie over
    # its hidden cells, so none of its rows counts as implied
    implied = np.concatenate(
        [group.implied for group in indexed[:-1]] + [np.zeros(new.n_rows, bool)]
    )

    def ref(row: int) -> CellRef:
        return parts[0].ref(row) if row < offset else new.ref(row - offset)

    findings: list[LPFinding] = []
    for code, quantity in enumerate(quantities):
        in_quantity = quantity_of == code
        targets = np.flatnonzero(in_quantity[offset:] & hidden_mask)
        if not targets.shape[0] or quantity.is_ratio:
            continue
        rows = np.flatnonzero(in_quantity)
        if quantity.kind is Kind.SUM:  # the check reads every entry of the quantity
            stacked = stacked or stack(parts)
            _check_one_value_per_entity(stacked.weights[rows], quantity)
        lower, upper = _bounds(quantity, values[rows], n_entities, bounds)
        counting = quantity.kind is Kind.COUNT
        stage = _Stage(
            new=new,
            neighbourhood=neighbourhood,
            sizes=sizes,
            usable=published & in_quantity,
            box=_RowBox(row_lo, row_hi, lower, upper),
            tol=LP_TOL * max(1.0, float(np.abs(values[rows]).max(initial=0.0))),
            deadline=deadline,
            counting=counting,
            # a count's entity is 1; a sum's value is not at hand here, so no peeling
            inside=(lower < 1) & (upper > 1) if counting else None,
        )
        truth = values[offset:]
        found = _local_stage(stage, targets)
        found.update(_null_space_stage(stage, implied, found, truth, levels))
        found.update(_inner_stage(stage, targets, found, truth, levels))
        open_targets = [t for t, interval in found.items() if interval is None]
        if open_targets:
            stacked = stacked or stack(parts)
            found.update(
                _component_stage(
                    stage, stacked.weights[rows], rows, published, offset, open_targets
                )
            )
        for t in targets.tolist():
            answer = found[t]
            assert answer is not None
            a = float(truth[t])
            up, down, width = (float(level[t]) for level in levels)
            if not protects(answer, a, up, down, width, stage.tol):
                binding = tuple(ref(int(b)) for b in answer.binding)
                findings.append(LPFinding(ref(offset + t), a, answer.lo, answer.hi, binding))
    return tuple(findings)


class _Neighbourhood:
    """The published rows around some entities, read from the parts' entity-major indexes
    (rows numbered through the parts in order) without stacking the ledger."""

    def __init__(self, indexed: Sequence[IndexedRows], n_entities: int) -> None:
        self.indexed = indexed
        self.n_entities = n_entities
        self.starts = np.cumsum([0] + [group.aggregates.n_rows for group in indexed])

    def rows(self, entities: npt.NDArray[np.integer[Any]]) -> IntArray:
        """Every row any of ``entities`` contributes to."""
        found = []
        for group, start in zip(self.indexed, self.starts, strict=False):
            inside = entities[entities < group.by_entity.shape[0]]
            found.append(group.by_entity[inside].indices.astype(np.int64) + start)
        return np.unique(np.concatenate(found))

    def weights(self, rows: IntArray) -> sparse.csr_matrix:
        """The contributions to ``rows`` (sorted) over every entity."""
        blocks = []
        for group, start, stop in zip(self.indexed, self.starts, self.starts[1:], strict=False):
            inside = rows[(rows >= start) & (rows < stop)] - start
            blocks.append(widen(group.aggregates.weights[inside], self.n_entities))
        return sparse.vstack(blocks, format="csr")

    def pattern(self, rows: IntArray) -> sparse.csr_matrix:
        """The 0/1 pattern of ``rows`` (sorted) over every entity."""
        return _ones(self.weights(rows))

    def large_rows(self, rows: IntArray, sizes: IntArray) -> _LargeRows:
        """``rows`` (sorted) with their ``sizes``, their bucket counts read from the parts'
        indexes, and their patterns read only when asked for."""
        buckets = np.concatenate(
            [
                group.buckets[rows[(rows >= start) & (rows < stop)] - start]
                for group, start, stop in zip(
                    self.indexed, self.starts, self.starts[1:], strict=False
                )
            ]
        )
        return _LargeRows(rows, sizes, buckets, lambda at: self.pattern(rows[at]))

    def products(self, values: FloatArray, counts: bool = False) -> FloatArray:
        """Every row's sum of ``values`` (one per entity) over its contributors. Only the
        count rows' sums are right with ``counts``, which reads the rows' own weights (1 per
        contributor, already floats) instead of converting the integer pattern."""
        return np.concatenate(
            [
                group.aggregates.weights @ values[: group.aggregates.n_entities]
                if counts
                else group.by_entity.T @ values[: group.by_entity.shape[0]]
                for group in self.indexed
            ]
        )


@dataclass(frozen=True)
class _Stage:
    """What every stage of one quantity's audit reads: the new output, the released rows
    around its entities, each ledger row's size and whether it is a published row of the
    quantity, the rows' intervals and variables' bounds, the tolerance, the deadline and
    which entities lie strictly within their bounds (when known)."""

    new: Aggregates
    neighbourhood: _Neighbourhood
    sizes: IntArray
    usable: BoolArray
    box: _RowBox
    tol: float
    deadline: float
    counting: bool = False  # the quantity is a count: every row's weights are 1
    inside: BoolArray | None = None  # per entity, true value strictly within its bounds

    def entities(self, target: int) -> IntArray:
        weights = self.new.weights
        start, stop = weights.indptr[target : target + 2]
        return np.asarray(weights.indices[start:stop], dtype=np.int64)


def _local_stage(stage: _Stage, targets: IntArray) -> dict[int, Interval | None]:
    """Stage 1, per target: the exact point the small rows around it (and the small
    differences of large ones) pin it to, or None (see :func:`_local_point`)."""
    found: dict[int, Interval | None] = {}
    for t in targets.tolist():
        entities = stage.entities(t)
        if entities.shape[0] == 0:  # a cell without contributors is known to be empty
            found[t] = Interval(0.0, 0.0, np.zeros(0, dtype=np.int64))
            continue
        touching = stage.neighbourhood.rows(entities)
        cap = max(LOCAL_ROW_SIZE, 4 * entities.shape[0])
        live = touching[stage.usable[touching]]
        near, large = live[stage.sizes[live] <= cap], live[stage.sizes[live] > cap]
        found[t] = _local_point(
            stage.neighbourhood.pattern(near),
            near,
            stage.box,
            entities,
            stage.tol,
            stage.deadline,
            stage.neighbourhood.large_rows(large, stage.sizes[large]),
            stage.inside,
        )
    return found


def _null_space_stage(
    stage: _Stage,
    implied: BoolArray,
    found: Mapping[int, Interval | None],
    truth: FloatArray,
    levels: Sequence[FloatArray],
) -> dict[int, Interval]:
    """Stage 2, for the targets stage 1 left open: an inner interval along a change that no
    published row sees (:mod:`output_checker.ledger.null_space`) proves protection when it
    meets the rule; the others stay open. One change often serves several targets (a
    rectangle of hidden cells moves together), so each is tried before a new solve."""
    targets = [t for t, interval in found.items() if interval is None]
    if not targets:
        return {}
    weights = stage.neighbourhood.weights(np.flatnonzero(stage.usable & ~implied))
    rows = _ones(weights)
    value = _entity_values(weights, rows, stage, targets)
    usable = stage.usable

    def residual(change: FloatArray) -> float:
        sums = stage.neighbourhood.products(change, counts=stage.counting)
        return float(np.abs(sums[usable]).max(initial=0.0))

    space = NullSpace(
        rows, residual, stage.box.upper - value, value - stage.box.lower, stage.tol, stage.deadline
    )
    changes: list[tuple[FloatArray, float]] = []  # each change found, with its residue
    proven: dict[int, Interval] = {}
    for t in targets:
        entities = stage.entities(t)
        a = float(truth[t])
        up, down, width = (float(level[t]) for level in levels)
        for change, residue in _reusable(space, changes, entities):
            rise, fall = space.reach(change, residue)
            inner = Interval(a - fall, a + rise, np.zeros(0, dtype=np.int64))
            if protects(inner, a, up, down, width, stage.tol):
                proven[t] = inner
                break
    return proven


def _reusable(
    space: NullSpace, changes: list[tuple[FloatArray, float]], entities: IntArray
) -> Iterator[tuple[FloatArray, float]]:
    """Changes that move the sum of ``entities`` by 1, each with its residue (the largest
    change of a published row): first those found for earlier targets that move it too (a
    rectangle of hidden cells moves together), then a new one, kept in ``changes`` for the
    targets after."""
    for change, residue in list(changes):
        moved = float(change[entities].sum())
        if abs(moved) > space.tol:
            yield change / moved, residue / abs(moved)
    found = space.direction(entities)
    if found is not None:
        changes.append((found, space.residual(found)))
        yield changes[-1]


def _entity_values(
    weights: sparse.csr_matrix, rows: sparse.csr_matrix, stage: _Stage, targets: Sequence[int]
) -> FloatArray:
    """Each entity's true value in the quantity (its one contribution), read from the rows
    it is in and, for an entity in no published row, from the targets."""
    value = np.zeros(stage.neighbourhood.n_entities)
    count = np.asarray(rows.sum(axis=0)).ravel()
    seen = count > 0
    value[seen] = np.asarray(weights.sum(axis=0)).ravel()[seen] / count[seen]
    for t in targets:
        start, stop = stage.new.weights.indptr[t : t + 2]
        entities = stage.new.weights.indices[start:stop]
        value[entities] = stage.new.weights.data[start:stop]
    return value


def _inner_stage(
    stage: _Stage,
    targets: IntArray,
    found: Mapping[int, Interval | None],
    truth: FloatArray,
    levels: Sequence[FloatArray],
) -> dict[int, Interval]:
    """Stage 3, for the targets stages 1 and 2 left open: an inner interval that already
    meets the protection rule proves it (see :func:`_inner_interval`); the others stay open."""
    # who may move: the people of every hidden cell, and of the small published cells
    # around them (so a move can be balanced inside such a cell)
    hidden_people = np.unique(stage.new.weights[targets].indices).astype(np.int64)
    near = stage.neighbourhood.rows(hidden_people)
    near = near[stage.usable[near] & (stage.sizes[near] <= LOCAL_ROW_SIZE)]
    free = np.union1d(hidden_people, stage.neighbourhood.pattern(near).indices)
    proven: dict[int, Interval] = {}
    for t in (t for t, interval in found.items() if interval is None):
        inner = _inner_interval(
            stage.neighbourhood,
            stage.entities(t),
            free,
            stage.usable,
            stage.box,
            stage.tol,
            stage.deadline,
        )
        up, down, width = (float(level[t]) for level in levels)
        if inner is not None and protects(inner, float(truth[t]), up, down, width, stage.tol):
            proven[t] = inner
    return proven


def _component_stage(
    stage: _Stage,
    weights: sparse.csr_matrix,
    rows: IntArray,
    published: BoolArray,
    offset: int,
    targets: Sequence[int],
) -> dict[int, Interval]:
    """Stage 4, for the targets still open: the exact interval from the LP of each target's
    connected component of the whole ledger (``weights``: the quantity's ledger ``rows``)."""
    pattern = sparse.csr_matrix(
        (np.ones(weights.nnz), weights.indices, weights.indptr),
        shape=weights.shape,
        dtype=np.float64,
    )
    # atoms over all rows of the quantity (hidden ones too) refine those of any sub-LP, so
    # one merge serves every target
    pattern, atom_lower, atom_upper = merge_atoms(pattern, stage.box.lower, stage.box.upper)
    sub_published = published[rows]
    lps = ComponentLPs(
        pattern,
        sub_published,
        stage.box.row_lo[rows],
        stage.box.row_hi[rows],
        atom_lower,
        atom_upper,
        components(pattern, sub_published),
        stage.deadline,
    )
    local = np.searchsorted(rows, offset + np.asarray(targets))
    intervals = lps.intervals(local.tolist(), local=False)
    return {
        t: Interval(found.lo, found.hi, rows[found.binding])
        for t, found in zip(targets, intervals, strict=True)
    }


def protects(
    interval: Interval, value: float, up: float, down: float, width: float, tol: float
) -> bool:
    """The protection audit's rule: the attacker's interval reaches ``up`` above and ``down``
    below the cell's value, is at least ``width`` wide and is not a point (NaN: no answer,
    so not shown to protect)."""
    lo, hi = interval.lo, interval.hi
    with np.errstate(invalid="ignore"):
        reaches = bool(hi >= value + up - tol) and bool(lo <= value - down + tol)
        return reaches and bool(hi - lo >= width - tol) and bool(hi - lo > tol)


def _row_ranges(
    values: FloatArray,
    offset: int,
    slacks: tuple[npt.ArrayLike, npt.ArrayLike],
    shown: tuple[npt.ArrayLike | None, npt.ArrayLike | None],
) -> tuple[FloatArray, FloatArray]:
    """Per ledger row, the interval [lo, hi] the attacker knows its sum lies in."""
    parts = ((slice(0, offset), "released"), (slice(offset, values.shape[0]), "new"))
    centre, slack = values.copy(), np.zeros_like(values)
    for (part, name), half, given in zip(parts, slacks, shown, strict=True):
        n = part.stop - part.start
        if n == 0:
            continue
        slack[part] = per_cell(half, n, f"{name}_slack")
        if given is not None:
            centre[part] = per_cell(given, n, f"{name}_shown")
    if np.isnan(slack).any() or (slack < 0).any() or np.isnan(centre).any():
        raise InputError("a row's slack must be a non-negative number and its value given")
    lo, hi = centre - slack, centre + slack
    tol = LP_TOL * max(1.0, float(np.abs(values).max(initial=0.0)))
    if ((values < lo - tol) | (values > hi + tol)).any():
        raise InputError("a published value and its slack leave out the row's true value")
    return lo, hi


def _bounds(
    quantity: Quantity,
    values: FloatArray,
    n_entities: int,
    given: Mapping[Quantity, tuple[float, float]] | None,
) -> tuple[FloatArray, FloatArray]:
    """Per entity, the attacker's a-priori bounds on its value in rows of ``quantity``."""
    if given is not None and quantity in given:
        low, high = given[quantity]
        if not low <= high:
            raise InputError("an a-priori lower bound exceeds its upper bound")
    elif quantity.kind is Kind.COUNT:
        low, high = 0.0, np.inf
    elif (values < 0).any():
        raise InputError(f"the sum of {quantity.measure} has negative cells: give its bounds")
    else:
        low, high = 0.0, float(values.max(initial=0.0))
    return np.full(n_entities, float(low)), np.full(n_entities, float(high))


def _check_one_value_per_entity(weights: sparse.csr_matrix, quantity: Quantity) -> None:
    """Every entity's non-empty entries in rows of one quantity must be equal."""
    if quantity.kind is Kind.COUNT or weights.nnz == 0:
        return
    by_entity = weights.tocsc()
    by_entity.sort_indices()
    counts = np.diff(by_entity.indptr)
    entity = np.repeat(np.arange(by_entity.shape[1]), counts)
    first = by_entity.data[by_entity.indptr[:-1][counts > 0]]
    spread = np.abs(by_entity.data - np.repeat(first, counts[counts > 0]))
    scale = max(1.0, float(np.abs(by_entity.data).max()))
    if (spread > LP_TOL * scale).any():
        who = int(entity[np.argmax(spread)])
        raise InputError(
            f"entity {who} contributes different totals to cells of the sum of "
            f"{quantity.measure}: the LP audit needs one value per entity"
        )
