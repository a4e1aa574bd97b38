"""Means and percentages in the ledger (spec §11: "a mean released with its N, as a sum; a
percentage together with its denominator"; issue 11).

A ratio cell publishes numerator / denominator: a mean of m over P is the sum of m over P
divided by the count of P, a percentage the count of its own population divided by the count
of a wider one. The ledger stores the numerator as the row's weights. An attacker who knows
the denominator multiplies it back, so the ratio becomes its numerator, a published sum or
count, which the exact check and the LP audit then subtract like any other.

Model (exact within its limit): a denominator is known when a published count row has exactly
the same contributors (its N published beside a mean, a count table of the same population
released earlier or in the same output, or a percentage already resolved into its count). A
mean weighted by w divides the sum of w·m by the sum of w: its denominator is a published
weighted count (by the same w) of exactly its contributors.
Counting entities, this assumes that a mean's N and a published count count the same units.
Limit: a denominator that the attacker can only derive from other rows (a difference of two
counts, an LP bound) is not looked for, so such a ratio stays unresolved: it is subtracted
from nothing and constrains no LP. Equal patterns are found by hashing each row with random
64-bit entity weights (as :func:`~output_checker.ledger.lp_audit.merge_atoms` hashes
columns), then verified exactly, so no pair of rows is visited in Python.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
from scipy import sparse

from output_checker.errors import InputError
from output_checker.ledger.aggregates import COUNT, Aggregates, Kind

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Keys = npt.NDArray[np.uint64]


def resolve_ratios(aggregates: Aggregates, known: npt.ArrayLike | None = None) -> Aggregates:
    """``aggregates`` with every ratio row whose denominator is known turned into its
    numerator: a mean of m into the sum of m, a percentage into a count. The cell still shows
    the ratio (:meth:`Aggregates.ref`); the others stay ratios, subtracted from nothing.

    ``known`` marks the rows the attacker sees (a mask; default all): a suppressed count is
    no one's denominator. Resolve the stack of every released output and the new one, since
    a new count can give away an earlier mean. Idempotent; O(nnz) time."""
    return with_numerators(aggregates, denominator_rows(aggregates, known))


def with_numerators(aggregates: Aggregates, denominator: IntArray) -> Aggregates:
    """``aggregates`` with the ratio rows that have a denominator row (from
    :func:`denominator_rows`) counted as their numerators."""
    resolved = denominator >= 0
    if not resolved.any():
        return aggregates
    quantities = tuple(
        sorted(set(aggregates.quantities) | {q.numerator for q in aggregates.quantities})
    )
    position = {q: i for i, q in enumerate(quantities)}
    own = np.asarray([position[q] for q in aggregates.quantities], dtype=np.int64)
    numerator = np.asarray([position[q.numerator] for q in aggregates.quantities], dtype=np.int64)
    return replace(
        aggregates,
        quantities=quantities,
        quantity_of=np.where(
            resolved, numerator[aggregates.quantity_of], own[aggregates.quantity_of]
        ),
        shown_of=own[aggregates.shown_of],
    )


def denominator_rows(aggregates: Aggregates, known: npt.ArrayLike | None = None) -> IntArray:
    """Per row, a known row with exactly the contributors of the row's denominator (the row
    itself for a mean) that adds up what the ratio divides by (a count, or for a weighted
    mean the weighted count), or -1: not an unresolved ratio, an empty denominator, or none
    published. Percentages resolved here count as known counts for the others."""
    n = aggregates.n_rows
    found = np.full(n, -1, dtype=np.int64)
    ratio = aggregates.is_ratio
    if not ratio.any():
        return found
    seen = _known_mask(known, n)
    quantities = aggregates.quantities
    kinds = np.asarray([q.kind for q in quantities], dtype=object)
    kind_of = kinds[aggregates.quantity_of]
    percent = ratio & (kind_of == Kind.PERCENT)
    if (aggregates.denominator_of[percent] < 0).any():
        raise InputError("a percentage row has no denominator")

    # per row, the quantity it adds up and (for a ratio) the one it divides by, as positions
    # in ``quantities`` (-1: not among them, so never published here)
    position = {q: i for i, q in enumerate(quantities)}
    count = position.get(COUNT, -1)
    divisor = np.asarray([position.get(q.denominator or COUNT, -1) for q in quantities])
    adds_up = aggregates.quantity_of.astype(np.int64)
    divides_by = divisor[aggregates.quantity_of] if n else np.zeros(0, dtype=np.int64)

    row_keys, row_size = _keys(aggregates.weights)
    den_keys, den_size = row_keys.copy(), row_size.copy()  # a mean's denominator is its own P
    if percent.any():
        keys, size = _keys(aggregates.denominators)
        den_keys[percent] = keys[aggregates.denominator_of[percent]]
        den_size[percent] = size[aggregates.denominator_of[percent]]

    is_known = seen & (row_size > 0) & ~ratio
    pending = ratio & (den_size > 0) & (divides_by >= 0)
    while pending.any():
        candidates = np.flatnonzero(is_known)
        asking = np.flatnonzero(pending)
        match = _first_equal(
            _tagged(row_keys[candidates], adds_up[candidates]),
            _tagged(den_keys[asking], divides_by[asking]),
        )
        hit = match >= 0
        if not hit.any():
            break
        resolved = asking[hit]
        found[resolved] = candidates[match[hit]]
        pending[resolved] = False
        # a percentage just resolved is a count the attacker knows: another ratio's denominator
        counts = resolved[percent[resolved] & seen[resolved] & (row_size[resolved] > 0)]
        if not counts.shape[0]:
            break
        is_known[counts] = True
        adds_up[counts] = count
    _verify(aggregates, found, percent)
    return found


def _tagged(keys: Keys, quantity: IntArray) -> Keys:
    """Row keys with the quantity added, so only rows of the same quantity compare equal."""
    return np.column_stack([keys, quantity.astype(np.uint64)])


def _known_mask(known: npt.ArrayLike | None, n: int) -> BoolArray:
    if known is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(known)
    if mask.dtype != np.bool_ or mask.shape != (n,):
        raise InputError(f"known must be a mask of the {n} rows")
    return mask


def _keys(matrix: sparse.csr_matrix) -> tuple[Keys, IntArray]:
    """Per row, a 128-bit hash of its set of columns (a wrapping sum of random 64-bit column
    weights, twice) and its number of entries."""
    weights = np.random.default_rng(0).integers(
        1, 2**63, size=(matrix.shape[1], 2), dtype=np.uint64
    )
    size = np.diff(matrix.indptr).astype(np.int64)
    keys = np.zeros((matrix.shape[0], 2), dtype=np.uint64)
    np.add.at(keys, np.repeat(np.arange(matrix.shape[0]), size), weights[matrix.indices])
    return keys, size


def _first_equal(candidates: Keys, queries: Keys) -> IntArray:
    """Per query key, the position of the first equal candidate key, or -1."""
    if not candidates.shape[0] or not queries.shape[0]:
        return np.full(queries.shape[0], -1, dtype=np.int64)
    _, inverse = np.unique(np.concatenate([candidates, queries]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    first = np.full(int(inverse.max()) + 1, -1, dtype=np.int64)
    n = candidates.shape[0]
    first[inverse[:n][::-1]] = np.arange(n - 1, -1, -1)  # reversed: the first one wins
    return first[inverse[n:]]


def _verify(aggregates: Aggregates, found: IntArray, percent: BoolArray) -> None:
    """Every match has exactly the denominator's contributors (a hash collision: never seen)."""
    rows = np.flatnonzero(found >= 0)
    if not rows.shape[0]:
        return
    pattern = _pattern(aggregates.weights)
    denominators = _pattern(aggregates.denominators)
    is_percent = percent[rows]
    wanted = sparse.vstack(
        [
            pattern[rows[~is_percent]],
            denominators[aggregates.denominator_of[rows[is_percent]]],
        ],
        format="csr",
    )
    got = pattern[np.concatenate([found[rows[~is_percent]], found[rows[is_percent]]])]
    if (wanted - got).count_nonzero():
        raise RuntimeError("denominator patterns collided in resolve_ratios")


def _pattern(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    return sparse.csr_matrix(
        (np.ones(matrix.nnz, dtype=np.int32), matrix.indices, matrix.indptr), shape=matrix.shape
    )
