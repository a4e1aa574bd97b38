"""LP audit of hidden cells against every published linear aggregate (spec §11, issue 11
item 2(b)).

A new output hides some cells (suppressed or sensitive). The attacker sees every released cell
and the new output's published cells, each the sum of its contributors' values, and knows
which entities contribute to which cell. Each entity's value is a variable within a-priori
bounds; the attacker's interval for a hidden cell is the minimum and maximum of its sum subject
to every published equation, solved with HiGHS (``scipy.optimize.linprog``).

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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components

from output_checker.errors import InputError
from output_checker.ledger.aggregates import Aggregates, CellRef, Kind, Quantity, stack
from output_checker.protection.audit import LP_TOL, as_mask, per_cell

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


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
    LP (exact, see the module's docstring); without, the full LP."""
    if pattern[target].nnz == 0:  # a cell without contributors is known to be empty
        return Interval(0.0, 0.0, np.zeros(0, dtype=np.int64))
    pub_rows = np.flatnonzero(published)
    if labels is None:
        cols, rows = np.arange(pattern.shape[1]), pub_rows
    else:
        wanted = np.unique(labels[pattern[target].indices])
        cols = np.flatnonzero(np.isin(labels, wanted))
        sizes = np.diff(pattern.indptr)[pub_rows]
        first = pattern.indices[pattern.indptr[pub_rows[sizes > 0]]]
        rows = pub_rows[sizes > 0][np.isin(labels[first], wanted)]
    cost = np.asarray(pattern[target][:, cols].todense(), dtype=np.float64).ravel()
    a_eq = pattern[rows][:, cols].tocsr() if rows.shape[0] else None
    b_eq = values[rows] if rows.shape[0] else None
    bounds = np.column_stack([lower[cols], upper[cols]])
    tol = LP_TOL * max(1.0, float(np.abs(values).max(initial=0.0)))
    ends, binding = [], np.zeros(rows.shape[0], dtype=bool)
    for sign in (1.0, -1.0):
        result = linprog(sign * cost, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if result.status == 3:  # unbounded: only an infinite a-priori bound allows it
            ends.append(-sign * np.inf)
        elif result.status != 0:
            ends.append(np.nan)
        else:
            ends.append(sign * float(result.fun))
            if rows.shape[0]:
                binding |= np.abs(np.asarray(result.eqlin.marginals)) > tol
    return Interval(ends[0], ends[1], rows[binding].astype(np.int64))


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
    ones = sparse.csc_matrix(
        (np.ones(len(by_entity.indices)), by_entity.indices, by_entity.indptr), by_entity.shape
    )
    if (ones - ones[:, first[atom]]).count_nonzero():  # a hash collision: never seen; be exact
        raise RuntimeError("entity patterns collided in merge_atoms")
    low = np.zeros(len(first))
    high = np.zeros(len(first))
    np.add.at(low, atom, lower)
    np.add.at(high, atom, upper)
    return by_entity[:, first].tocsr(), low, high


def lp_findings(
    released: Aggregates | None,
    new: Aggregates,
    hidden: npt.ArrayLike,
    upl: npt.ArrayLike,
    lpl: npt.ArrayLike,
    spl: npt.ArrayLike = 0.0,
    bounds: Mapping[Quantity, tuple[float, float]] | None = None,
) -> tuple[LPFinding, ...]:
    """Every hidden cell of ``new`` (a mask or row indices) whose attacker interval [lo, hi]
    fails hi ≥ a + UPL, lo ≤ a − LPL, hi − lo ≥ SPL or is a single point (the protection
    audit's rule). Levels are scalars or one value per row of ``new``. ``bounds`` overrides the
    a-priori bounds of each entity's value per quantity. Raises InputError when an entity
    contributes different totals to rows of one sum (the one-value-per-entity model fails)."""
    ledger = new if released is None else stack([released, new])
    offset = ledger.n_rows - new.n_rows
    hidden_mask = as_mask(hidden, new.n_rows, "hidden")
    levels = [
        per_cell(level, new.n_rows, name)
        for level, name in ((upl, "upl"), (lpl, "lpl"), (spl, "spl"))
    ]
    published = np.ones(ledger.n_rows, dtype=bool)
    published[offset:][hidden_mask] = False
    weights = ledger.weights.tocsr()
    values = np.asarray(weights.sum(axis=1), dtype=np.float64).ravel()
    findings: list[LPFinding] = []
    for code, quantity in enumerate(ledger.quantities):
        in_quantity = ledger.quantity_of == code
        targets = np.flatnonzero(in_quantity[offset:] & hidden_mask)
        if not targets.shape[0]:
            continue
        rows = np.flatnonzero(in_quantity)
        sub = weights[rows]
        _check_one_value_per_entity(sub, quantity)
        pattern = sparse.csr_matrix(
            (np.ones(sub.nnz), sub.indices, sub.indptr), shape=sub.shape, dtype=np.float64
        )
        lower, upper = _bounds(quantity, values[rows], sub.shape[1], bounds)
        # atoms over all rows of the quantity (hidden ones too) refine those of any sub-LP,
        # so one merge serves every target
        pattern, lower, upper = merge_atoms(pattern, lower, upper)
        sub_published = published[rows]
        labels = components(pattern, sub_published)
        position = {int(r): i for i, r in enumerate(rows)}
        tol = LP_TOL * max(1.0, float(np.abs(values[rows]).max(initial=0.0)))
        for t in targets.tolist():
            local = position[offset + t]
            found = attacker_interval(
                pattern, values[rows], sub_published, local, lower, upper, labels
            )
            a, lo, hi = float(values[offset + t]), found.lo, found.hi
            up, down, width = (float(level[t]) for level in levels)
            with np.errstate(invalid="ignore"):
                ok = (hi >= a + up - tol) and (lo <= a - down + tol)
                ok = ok and (hi - lo >= width - tol) and (hi - lo > tol)
            if not ok:
                findings.append(
                    LPFinding(
                        cell=ledger.ref(offset + t),
                        value=a,
                        lo=lo,
                        hi=hi,
                        binding=tuple(ledger.ref(int(rows[r])) for r in found.binding),
                    )
                )
    return tuple(findings)


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
