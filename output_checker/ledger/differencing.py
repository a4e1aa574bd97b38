"""Exact differencing check: pairs of published cells whose populations differ by a few
entities (spec §11, issue 11 item 2(a)).

Two published cells of one quantity with contributor sets A and B give away
``value(A) - value(B)``, the aggregate over A \\ B minus that over B \\ A. When the sets share
entities and their symmetric difference holds between 1 and T-1 entities, that difference is
the count or the total of fewer than T entities: the subpopulation attack (B ⊂ A, so
``A - B`` is exactly the total of A \\ B), overlapping bands (0-15 against 0-16), or a
category merged in one release and not in another. A pair that shares no entity is left to
the primary rules and the LP audit: subtracting it isolates nobody on its own.

Intersections come from sparse products of the binary patterns (new rows times the
entity-major pattern of the other rows), and set sizes from the rows' entry counts, so no
pair is visited in Python; only the findings are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from output_checker.errors import InputError
from output_checker.ledger.aggregates import Aggregates, CellRef, Quantity

IntArray = npt.NDArray[np.int64]

# Bound on the intersection entries computed at once, so memory stays bounded when a new
# cell (a grand total, say) overlaps every released cell.
PAIR_BUDGET = 1 << 24


@dataclass(frozen=True)
class DifferencingFinding:
    """A new cell and another published cell whose difference isolates ``isolated`` entities:
    ``new_only`` of them contribute only to the new cell, ``other_only`` only to the other."""

    new: CellRef
    other: CellRef
    other_is_new: bool  # the other cell belongs to the output under review too
    new_only: int
    other_only: int

    @property
    def isolated(self) -> int:
        return self.new_only + self.other_only

    @property
    def nested(self) -> bool:
        """One population contains the other, so the difference is exactly the aggregate of
        the isolated entities."""
        return self.new_only == 0 or self.other_only == 0


@dataclass(frozen=True)
class IndexedRows:
    """Rows prepared for the check: their entity-major 0/1 pattern (entities × rows) and
    sizes. Preparing the released ledger costs O(nnz); do it once per release, not per check."""

    aggregates: Aggregates
    by_entity: sparse.csr_matrix
    size: IntArray


def index_rows(aggregates: Aggregates) -> IndexedRows:
    """The entity-major pattern of ``aggregates``, for :func:`differencing_findings`."""
    return IndexedRows(
        aggregates,
        _pattern(aggregates.weights).T.tocsr(),
        np.diff(aggregates.weights.indptr).astype(np.int64),
    )


def differencing_findings(
    released: Aggregates | IndexedRows | None,
    new: Aggregates,
    threshold: int,
    pair_budget: int = PAIR_BUDGET,
) -> tuple[DifferencingFinding, ...]:
    """Every pair (new cell, released or other new cell) of one quantity that shares entities
    and whose contributor sets differ by between 1 and ``threshold - 1`` entities.

    A pair of two new cells is reported once. Cells without contributors are skipped (a
    published zero isolates nobody by subtraction). Pass the released rows already indexed
    (:func:`index_rows`) to keep the O(nnz) transposition of the ledger out of the check.

    Complexity: with ``r_e`` the number of new rows entity e contributes to (the table's
    nesting depth: 4 for a two-way table with margins) and ``c_e`` the number of released and
    new rows it contributes to, time is O(Σ_e r_e·c_e) ≤ O(max_e r_e · nnz) for the products,
    linear in the size of the ledger, plus O(k) for the k overlapping pairs they produce and
    O(nnz(new)) to index the new rows; memory is that of the patterns plus ``pair_budget``
    intersection entries at a time.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise InputError("the threshold must be a positive whole number of entities")
    if pair_budget < 1:
        raise InputError("pair_budget must be positive")
    indexed_new = index_rows(new)
    groups = [indexed_new]
    if released is not None:
        groups.insert(0, released if isinstance(released, IndexedRows) else index_rows(released))
    quantities = sorted({q for group in groups for q in group.aggregates.quantities})
    new_pattern = _pattern(new.weights)
    new_quantity = _quantity_codes(new, quantities)
    n_other = sum(group.aggregates.n_rows for group in groups)
    chunk = max(1, pair_budget // max(n_other, 1))

    findings: list[DifferencingFinding] = []
    for group in groups:
        other_is_new = group is indexed_new
        other_quantity = _quantity_codes(group.aggregates, quantities)
        for start in range(0, new.n_rows, chunk):
            block = _fit_columns(new_pattern[start : start + chunk], group.by_entity.shape[0])
            shared = (block @ group.by_entity).tocoo()
            row = shared.row.astype(np.int64) + start
            col = shared.col.astype(np.int64)
            common = shared.data.astype(np.int64)
            new_only = indexed_new.size[row] - common
            other_only = group.size[col] - common
            isolated = new_only + other_only
            keep = (
                (common > 0)
                & (isolated > 0)
                & (isolated < threshold)
                & (new_quantity[row] == other_quantity[col])
            )
            if other_is_new:
                keep &= col > row  # a pair of new cells once, never a cell with itself
            findings.extend(
                DifferencingFinding(
                    new=new.ref(int(r)),
                    other=group.aggregates.ref(int(c)),
                    other_is_new=other_is_new,
                    new_only=int(a),
                    other_only=int(b),
                )
                for r, c, a, b in zip(
                    row[keep], col[keep], new_only[keep], other_only[keep], strict=True
                )
            )
    return tuple(findings)


def _pattern(weights: sparse.csr_matrix) -> sparse.csr_matrix:
    """The 0/1 contributor pattern of ``weights`` in exact integer arithmetic; explicit zeros
    (an entity contributing 0 to a sum) stay contributors."""
    return sparse.csr_matrix(
        (np.ones(weights.nnz, dtype=np.int32), weights.indices, weights.indptr),
        shape=weights.shape,
    )


def _fit_columns(block: sparse.csr_matrix, width: int) -> sparse.csr_matrix:
    """``block`` over the first ``width`` entities: entities the other rows never saw are
    shared with none of them, and later entities simply add empty columns."""
    if block.shape[1] > width:
        return block[:, :width].tocsr()
    if block.shape[1] < width:
        return sparse.csr_matrix(
            (block.data, block.indices, block.indptr), shape=(block.shape[0], width)
        )
    return block


def _quantity_codes(aggregates: Aggregates, quantities: list[Quantity]) -> IntArray:
    """Per row, the position of its quantity in ``quantities``."""
    position = {q: i for i, q in enumerate(quantities)}
    codes = np.asarray([position[q] for q in aggregates.quantities], dtype=np.int64)
    return codes[aggregates.quantity_of]
