"""Per-cell evidence in one grouped pass: the numbers every primary rule needs.

Pure numpy over integer cell ids; no Python loop per cell or per row. Contributions are
aggregated per entity first (spec §1), so a person with several records counts once and their
records' values are summed before any dominance rule sees them.

Evidence of parts of the data that share no entity can be merged exactly (:func:`combine`),
which lets the caller work through large data in chunks of bounded memory; and without
entities, the evidence of totals follows from that of the cells below them (:func:`rollup`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from output_checker.errors import InputError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CellEvidence:
    """Evidence for ``n_cells`` cells; every array has the cells on its first axis.

    ``top`` holds the largest absolute per-entity contributions in descending order, padded
    with zeros; ``top_weight`` their sampling weights (1 when unweighted).
    """

    n_rows: IntArray
    n_nonmissing: IntArray
    n_entities: IntArray
    n_negative: IntArray
    total: FloatArray  # X: sum of absolute per-entity contributions
    weighted_total: FloatArray  # the same with sampling weights
    top: FloatArray
    top_weight: FloatArray
    minimum: FloatArray  # of non-missing row values; NaN for an empty cell
    maximum: FloatArray
    value_sum: FloatArray  # signed sum of non-missing row values (the published sum)
    weighted_value_sum: FloatArray
    weight_sum: FloatArray  # sum of weights of the rows counted in n_nonmissing

    @property
    def n_cells(self) -> int:
        return int(self.n_rows.shape[0])

    @property
    def n_missing(self) -> IntArray:
        return self.n_rows - self.n_nonmissing

    def take(self, index: npt.NDArray[np.intp]) -> CellEvidence:
        """Evidence for the cells at ``index`` (used to lay level evidence onto the table grid)."""
        return CellEvidence(**{name: getattr(self, name)[index] for name in _FIELDS})


_FIELDS = tuple(CellEvidence.__dataclass_fields__)


def concatenate(parts: list[CellEvidence]) -> CellEvidence:
    """Stack the evidence of several groups of cells, in order."""
    return CellEvidence(
        **{name: np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS}
    )


def compute_evidence(
    cell: npt.NDArray[np.intp],
    n_cells: int,
    values: FloatArray | None = None,
    entity: IntArray | None = None,
    weights: FloatArray | None = None,
    depth: int = 2,
) -> CellEvidence:
    """Evidence for each of ``n_cells`` cells from row-level arrays.

    Args:
        cell: the cell id (0..n_cells-1) of every row.
        values: the analysis variable, NaN where missing; ``None`` for a frequency table, where
            each row contributes 1.
        entity: dense entity codes (0..E-1) of every row; ``None`` treats each row as an entity.
        weights: sampling weights per row; they must be constant within an entity.
        depth: how many top contributions to keep (0 when no dominance rule needs them).
    """
    n_rows = np.bincount(cell, minlength=n_cells)
    if values is None:  # a frequency table: every row contributes 1
        c, v, w = cell, np.ones(cell.shape[0]), weights
        n_nonmissing = n_rows
        minimum = maximum = np.where(n_rows > 0, 1.0, np.nan)
        value_sum = n_rows.astype(np.float64)
        present = None
    else:
        present = ~np.isnan(values)
        if present.all():
            present = None
        c = cell if present is None else cell[present]
        v = values if present is None else values[present]
        w = None if weights is None else (weights if present is None else weights[present])
        n_nonmissing = np.bincount(c, minlength=n_cells)
        minimum = np.full(n_cells, np.nan)
        maximum = np.full(n_cells, np.nan)
        np.fmin.at(minimum, c, v)
        np.fmax.at(maximum, c, v)
        value_sum = sum_by(c, v, n_cells)
    if w is None:
        weighted_value_sum, weight_sum = value_sum, n_nonmissing.astype(np.float64)
    else:
        weighted_value_sum, weight_sum = sum_by(c, v * w, n_cells), sum_by(c, w, n_cells)

    if values is None and depth == 0 and entity is not None:
        # a frequency table without dominance rules needs only the distinct entities per cell
        return CellEvidence(
            n_rows=n_rows.astype(np.int64),
            n_nonmissing=n_nonmissing.astype(np.int64),
            n_entities=_distinct_per_cell(c, entity, n_cells),
            n_negative=np.zeros(n_cells, dtype=np.int64),
            total=value_sum,
            weighted_total=weight_sum,
            top=np.zeros((n_cells, 0)),
            top_weight=np.zeros((n_cells, 0)),
            minimum=minimum,
            maximum=maximum,
            value_sum=value_sum,
            weighted_value_sum=weighted_value_sum,
            weight_sum=weight_sum,
        )
    if entity is None:
        unit_cell, unit_value, unit_weight = c, v, w
    else:
        e = entity if present is None else entity[present]
        unit_cell, unit_value, unit_weight = _per_entity(c, e, v, w)

    magnitude = np.abs(unit_value)
    top_value, top_row = _top_k(unit_cell, magnitude, n_cells, depth)  # no loop when depth 0
    found = top_row >= 0
    total = sum_by(unit_cell, magnitude, n_cells)
    if unit_weight is None:
        top_weight, weighted_total = found.astype(np.float64), total
    else:
        top_weight = np.zeros_like(top_value)
        top_weight[found] = unit_weight[top_row[found]]
        weighted_total = sum_by(unit_cell, magnitude * unit_weight, n_cells)

    return CellEvidence(
        n_rows=n_rows.astype(np.int64),
        n_nonmissing=n_nonmissing.astype(np.int64),
        n_entities=np.bincount(unit_cell, minlength=n_cells).astype(np.int64),
        n_negative=np.bincount(unit_cell[unit_value < 0], minlength=n_cells).astype(np.int64),
        total=total,
        weighted_total=weighted_total,
        top=top_value,
        top_weight=top_weight,
        minimum=minimum,
        maximum=maximum,
        value_sum=value_sum,
        weighted_value_sum=weighted_value_sum,
        weight_sum=weight_sum,
    )


def combine(a: CellEvidence, b: CellEvidence) -> CellEvidence:
    """Evidence of the union of two parts of the data that share no entity."""
    top, top_weight = _merge_top(
        np.concatenate([a.top, b.top], axis=1),
        np.concatenate([a.top_weight, b.top_weight], axis=1),
        a.top.shape[1],
    )
    summed = {
        name: getattr(a, name) + getattr(b, name)
        for name in _FIELDS
        if name not in ("top", "top_weight", "minimum", "maximum")
    }
    return CellEvidence(
        **summed,
        top=top,
        top_weight=top_weight,
        minimum=np.fmin(a.minimum, b.minimum),
        maximum=np.fmax(a.maximum, b.maximum),
    )


def rollup(inner: CellEvidence, parent: npt.NDArray[np.intp], n_parents: int) -> CellEvidence:
    """Evidence of totals from the evidence of the cells they add up, when every row is its own
    entity (so no unit spans two cells): ``parent[i]`` is the total that cell ``i`` belongs to.
    """
    minimum = np.full(n_parents, np.nan)
    maximum = np.full(n_parents, np.nan)
    np.fmin.at(minimum, parent, inner.minimum)
    np.fmax.at(maximum, parent, inner.maximum)
    depth = inner.top.shape[1]
    # The largest contributions of a total are among the largest of its cells. Padding (no
    # unit: weight 0) ranks below a real contribution of 0.
    candidates = np.where(inner.top_weight > 0, inner.top, -1.0).ravel()
    top, where = _top_k(np.repeat(parent, depth), candidates, n_parents, depth)
    top_weight = np.zeros_like(top)
    found = (where >= 0) & (top >= 0)
    top_weight[found] = inner.top_weight.ravel()[where[found]]
    top = np.maximum(top, 0.0)
    sums = {
        name: np.bincount(parent, weights=getattr(inner, name), minlength=n_parents).astype(
            getattr(inner, name).dtype
        )
        for name in _FIELDS
        if name not in ("top", "top_weight", "minimum", "maximum")
    }
    return CellEvidence(**sums, top=top, top_weight=top_weight, minimum=minimum, maximum=maximum)


def _merge_top(
    values: FloatArray, weights: FloatArray, depth: int
) -> tuple[FloatArray, FloatArray]:
    """Per row, the ``depth`` largest of ``values`` (descending) and their weights; a real
    contribution (weight > 0) ranks before padding of the same value."""
    order = np.lexsort((-weights, -values), axis=1)[:, :depth]
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(weights, order, axis=1)


def sum_by(cell: npt.NDArray[np.intp], weights: FloatArray, n_cells: int) -> FloatArray:
    """Sum of ``weights`` per cell (``np.bincount`` typed as floats)."""
    return np.bincount(cell, weights=weights, minlength=n_cells).astype(np.float64, copy=False)


def _pair_keys(cell: npt.NDArray[np.intp], entity: IntArray) -> tuple[IntArray, int, int]:
    """One integer per (cell, entity) pair, the entity range, and the number of possible keys."""
    n_entities = int(entity.max()) + 1
    return (
        cell.astype(np.int64) * n_entities + entity,
        n_entities,
        (int(cell.max()) + 1) * n_entities,
    )


def _dense(n_keys: int, n_rows: int) -> bool:
    """Whether counting every possible key directly is cheaper than sorting the rows' keys."""
    return n_keys <= 2 * n_rows + 4096


def _distinct_per_cell(cell: npt.NDArray[np.intp], entity: IntArray, n_cells: int) -> IntArray:
    """Number of distinct entities in each cell."""
    if cell.shape[0] == 0:
        return np.zeros(n_cells, dtype=np.int64)
    key, n_entities, n_keys = _pair_keys(cell, entity)
    if _dense(n_keys, key.shape[0]):
        pairs = np.flatnonzero(np.bincount(key, minlength=n_keys))
    else:
        ordered = np.sort(key)
        pairs = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
    return np.bincount(pairs // n_entities, minlength=n_cells).astype(np.int64)


def _per_entity(
    cell: npt.NDArray[np.intp], entity: IntArray, values: FloatArray, weights: FloatArray | None
) -> tuple[npt.NDArray[np.intp], FloatArray, FloatArray | None]:
    """Sum values per (cell, entity): one sort of a combined key, then segment sums."""
    if cell.shape[0] == 0:
        empty = np.zeros(0)
        return cell, empty, None if weights is None else empty
    key, n_entities, n_keys = _pair_keys(cell, entity)
    if weights is None and _dense(n_keys, key.shape[0]):
        # few possible (cell, entity) pairs: count them directly instead of sorting
        sums = sum_by(key.astype(np.intp, copy=False), values, n_keys)
        occupied = np.flatnonzero(np.bincount(key, minlength=n_keys))
        return (occupied // n_entities).astype(np.intp), sums[occupied], None
    order, sorted_key = _argsort_keys(key)
    starts = np.flatnonzero(np.concatenate(([True], sorted_key[1:] != sorted_key[:-1])))
    pair_cell = (sorted_key[starts] // n_entities).astype(np.intp)
    pair_value = np.add.reduceat(values[order], starts)
    if weights is None:
        return pair_cell, pair_value, None
    sorted_weights = weights[order]
    low = np.minimum.reduceat(sorted_weights, starts)
    high = np.maximum.reduceat(sorted_weights, starts)
    if not np.allclose(low, high):
        raise InputError("sampling weights vary within an entity; give one weight per entity")
    return pair_cell, pair_value, high


def _argsort_keys(key: IntArray) -> tuple[npt.NDArray[np.intp], IntArray]:
    """The sorting permutation of non-negative ``key`` and the sorted keys.

    When key and row number fit in 63 bits together, sorting the packed values is several
    times faster than ``argsort`` (numpy's vectorised sort), and the permutation falls out of
    the low bits.
    """
    n = key.shape[0]
    row_bits = max(int(n - 1).bit_length(), 1)
    if int(key.max()).bit_length() + row_bits <= 63:
        packed = np.sort((key << row_bits) | np.arange(n, dtype=np.int64))
        return (packed & ((1 << row_bits) - 1)).astype(np.intp), packed >> row_bits
    order = np.argsort(key)
    return order, key[order]


def _top_k(
    group: npt.NDArray[np.intp], values: FloatArray, n_groups: int, k: int
) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """The k largest non-negative values per group and the position of each, in O(k·n).

    Each round takes the group maximum, retires exactly one row holding it (so ties fill
    successive places, as a sort would), and repeats.
    """
    work = values.astype(np.float64, copy=True)
    positions = np.arange(work.shape[0])
    top = np.zeros((n_groups, k))
    where = np.full((n_groups, k), -1, dtype=np.intp)
    for j in range(k):
        best = np.full(n_groups, -np.inf)
        np.maximum.at(best, group, work)
        hit = (work == best[group]) & (work > -np.inf)
        first = np.full(n_groups, work.shape[0], dtype=np.intp)
        np.minimum.at(first, group[hit], positions[hit])
        found = first < work.shape[0]
        if not found.any():
            break
        top[found, j] = best[found]
        where[found, j] = first[found]
        work[first[found]] = -np.inf
    return top, where
