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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from output_checker.errors import InputError
from output_checker.ledger.aggregates import Aggregates, CellRef, Quantity, stack
from output_checker.ledger.null_space import implied_rows
from output_checker.ledger.ratios import denominator_rows, resolve_ratios, with_numerators

IntArray = npt.NDArray[np.int64]

# Bound on the intersection entries computed at once, so memory stays bounded when a new
# cell (a grand total, say) overlaps every released cell.
PAIR_BUDGET = 1 << 24


@dataclass(frozen=True)
class DifferencingFinding:
    """A new cell and another published cell whose difference isolates ``isolated`` entities:
    ``new_only`` of them contribute only to the new cell, ``other_only`` only to the other.

    With ``ratio``, the new cell is a mean or a percentage and the other the published count
    that gives away its denominator: together they give the numerator, the sum or count of
    its ``new_only`` entities (fewer than T), with ``other_only`` zero.

    ``new`` is a cell of the output under review, or an earlier ratio cell that the output
    under review gives the denominator of (its ``output`` then names the earlier release)."""

    new: CellRef
    other: CellRef
    other_is_new: bool  # the other cell belongs to the output under review too
    new_only: int
    other_only: int
    ratio: bool = False

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
    """Rows prepared for the checks: their entity-major 0/1 pattern (entities × rows), sizes,
    which rows the others imply (:func:`~output_checker.ledger.null_space.implied_rows`),
    their :func:`bucket_counts`, ratios resolved among themselves. Preparing the released
    ledger costs O(nnz); do it once per release, not per check."""

    aggregates: Aggregates
    by_entity: sparse.csr_matrix
    size: IntArray
    implied: npt.NDArray[np.bool_]
    buckets: npt.NDArray[np.int32]  # per row, its entities in each of 64 buckets


def index_rows(aggregates: Aggregates) -> IndexedRows:
    """``aggregates`` prepared for :func:`differencing_findings` and the LP audit."""
    resolved = resolve_ratios(aggregates)
    return IndexedRows(
        resolved,
        _pattern(aggregates.weights).T.tocsr(),
        np.diff(aggregates.weights.indptr).astype(np.int64),
        implied_rows(resolved),
        bucket_counts(aggregates.weights),
    )


BUCKETS = 64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: entity → one of 64 buckets
_ENTRIES_AT_ONCE = 1 << 22


def bucket_counts(matrix: sparse.csr_matrix) -> npt.NDArray[np.int32]:
    """Per row, how many of its entities fall in each of 64 fixed buckets of entities. Two
    rows whose contributors differ by d entities have counts that differ by at most d,
    summed over the buckets: a cheap screen before any overlap is computed."""
    counts = np.zeros((matrix.shape[0], BUCKETS), dtype=np.int32)
    indptr = matrix.indptr
    step = max(1, int(matrix.shape[0] * _ENTRIES_AT_ONCE / max(matrix.nnz, 1)))
    for start in range(0, matrix.shape[0], step):  # bounded temporaries on a large ledger
        stop = min(start + step, matrix.shape[0])
        indices = matrix.indices[indptr[start] : indptr[stop]]
        row = np.repeat(np.arange(stop - start), np.diff(indptr[start : stop + 1]))
        bucket = (indices.astype(np.uint64) * _GOLDEN >> np.uint64(58)).astype(np.int64)
        flat = np.bincount(row * BUCKETS + bucket, minlength=(stop - start) * BUCKETS)
        counts[start:stop] = flat.reshape(stop - start, BUCKETS)
    return counts


@dataclass(frozen=True)
class _Probe:
    """The rows checked against every other: the new output's, then the earlier ratio rows
    it resolves, as indices into the union (released rows first), with what they compare."""

    union: IntArray
    pattern: sparse.csr_matrix
    code: IntArray  # per union row, its compared quantity; -1 for an unresolved ratio
    denominator: IntArray  # per probe row, the union row of its known denominator, or -1
    ref: Callable[[int], CellRef]


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

    Means and percentages are compared as their numerators once their denominators are
    known (:func:`~output_checker.ledger.ratios.resolve_ratios` over released and new rows
    together): an earlier mean that a new count resolves is checked as if new, and a ratio
    whose known denominator gives away a numerator over 1..T-1 entities is a ``ratio``
    finding. Unresolved ratios are compared with nothing.

    Complexity: with ``r_e`` the number of new rows entity e contributes to (the table's
    nesting depth: 4 for a two-way table with margins) and ``c_e`` the number of released and
    new rows it contributes to, time is O(Σ_e r_e·c_e) ≤ O(max_e r_e · nnz) for the products,
    linear in the size of the ledger, plus O(k) for the k overlapping pairs they produce and
    O(nnz(new)) to index the new rows; memory is that of the patterns plus ``pair_budget``
    intersection entries at a time. When an unresolved ratio is present, resolving adds
    O(nnz) to stack and hash the ledger.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise InputError("the threshold must be a positive whole number of entities")
    if pair_budget < 1:
        raise InputError("pair_budget must be positive")
    groups: list[tuple[sparse.csr_matrix, IntArray]] = []
    old = None
    if released is not None:
        indexed = released if isinstance(released, IndexedRows) else index_rows(released)
        old = indexed.aggregates
        groups.append((indexed.by_entity, indexed.size))
    groups.append((_pattern(new.weights).T.tocsr(), np.diff(new.weights.indptr).astype(np.int64)))
    probe = _probe(old, new)
    n_old = 0 if old is None else old.n_rows
    in_probe = np.zeros(probe.code.shape[0], dtype=bool)
    in_probe[probe.union] = True
    probe_size = np.diff(probe.pattern.indptr).astype(np.int64)
    probe_code = probe.code[probe.union]
    n_other = probe.code.shape[0]
    n_probe = probe.union.shape[0]
    chunk = max(1, pair_budget // max(n_other, 1))

    findings: list[DifferencingFinding] = []
    offset = 0
    for by_entity, size in groups:
        for start in range(0, n_probe, chunk):
            block = _fit_columns(probe.pattern[start : start + chunk], by_entity.shape[0])
            shared = (block @ by_entity).tocoo()
            row = shared.row.astype(np.int64) + start
            other = shared.col.astype(np.int64) + offset
            common = shared.data.astype(np.int64)
            new_only = probe_size[row] - common
            other_only = size[other - offset] - common
            isolated = new_only + other_only
            keep = (
                (common > 0)
                & (isolated > 0)
                & (isolated < threshold)
                & (probe_code[row] == probe.code[other])
                & (probe_code[row] >= 0)
                & (~in_probe[other] | (other > probe.union[row]))  # a probe pair once
            )
            findings.extend(
                DifferencingFinding(
                    new=probe.ref(int(probe.union[r])),
                    other=probe.ref(int(c)),
                    other_is_new=int(c) >= n_old,
                    new_only=int(a),
                    other_only=int(b),
                )
                for r, c, a, b in zip(
                    row[keep], other[keep], new_only[keep], other_only[keep], strict=True
                )
            )
        offset += size.shape[0]
    revealed = (probe.denominator >= 0) & (probe_size > 0) & (probe_size < threshold)
    findings.extend(
        DifferencingFinding(
            new=probe.ref(int(probe.union[r])),
            other=probe.ref(int(probe.denominator[r])),
            other_is_new=int(probe.denominator[r]) >= n_old,
            new_only=int(probe_size[r]),
            other_only=0,
            ratio=True,
        )
        for r in np.flatnonzero(revealed)
    )
    return tuple(findings)


def _probe(old: Aggregates | None, new: Aggregates) -> _Probe:
    """The probe rows: without unresolved ratios, the new rows as they are; otherwise the
    ratios resolved over the stacked ledger, adding the earlier rows that only the new output
    resolves (``old`` is already resolved among its own rows)."""
    n_old = 0 if old is None else old.n_rows
    new_rows = n_old + np.arange(new.n_rows, dtype=np.int64)
    parts = [new] if old is None else [old, new]
    if not any(part.is_ratio.any() for part in parts):
        quantities = sorted({q for part in parts for q in part.quantities})

        def ref(u: int) -> CellRef:
            return parts[0].ref(u) if u < n_old else new.ref(u - n_old)

        return _Probe(
            new_rows,
            _pattern(new.weights),
            np.concatenate([_quantity_codes(part, quantities) for part in parts]),
            np.full(new.n_rows, -1, dtype=np.int64),
            ref,
        )
    union = new if old is None else stack([old, new])
    denominator = denominator_rows(union)
    resolved = with_numerators(union, denominator)
    unlocked = np.flatnonzero(denominator[:n_old] >= 0)
    rows = np.concatenate([new_rows, unlocked])
    code = resolved.quantity_of.copy()
    code[resolved.is_ratio] = -1
    return _Probe(rows, _pattern(union.weights[rows]), code, denominator[rows], resolved.ref)


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
