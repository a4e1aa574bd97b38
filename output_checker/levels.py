"""Evidence and displayed values for every aggregation level of a table, in bounded memory.

A level is the set of classifying dimensions it keeps: all of them for the inner cells, fewer
for totals. Rows are read in chunks, so the memory a check needs beyond the data stays a small
fraction of the data. Without entities every row is its own unit: chunks are consecutive rows
and totals are rolled up from the inner cells. With entities, chunks are groups of entities
(an entity's rows are never split), and each level is reduced per chunk.
"""

from __future__ import annotations

from functools import reduce
from math import prod

import numpy as np
import numpy.typing as npt
import pandas as pd

from output_checker.aggregation import Aggregation
from output_checker.columns import Chunk, TableColumns
from output_checker.evidence import (
    CellEvidence,
    FloatArray,
    IntArray,
    combine,
    compute_evidence,
    rollup,
)

Dims = tuple[int, ...]
CHUNK_ROWS = 1 << 16
MAX_ENTITY_PARTS = 16


def ravel(codes: list[npt.NDArray[np.intp]], sizes: list[int], n: int) -> npt.NDArray[np.intp]:
    """Cell number of each row in a level whose dimensions have ``sizes`` levels."""
    if not codes:
        return np.zeros(n, dtype=np.intp)
    return np.ravel_multi_index(codes, sizes).astype(np.intp)


def parents(sizes: list[int], dims: Dims) -> npt.NDArray[np.intp]:
    """For every inner cell, the cell of the level keeping ``dims`` that it adds into."""
    grid = np.indices(sizes, dtype=np.intp).reshape(len(sizes), -1)
    return ravel([grid[d] for d in dims], [sizes[d] for d in dims], grid.shape[1])


def evidence_by_level(
    cols: TableColumns, levels: list[Dims], depth: int, chunk_rows: int = CHUNK_ROWS
) -> list[CellEvidence]:
    """Evidence for each level (in the order given) from chunked passes over the rows."""
    sizes = cols.sizes
    full = tuple(range(len(sizes)))
    n_cells = {dims: prod(sizes[d] for d in dims) for dims in [full, *levels]}
    lookup = {dims: parents(sizes, dims) for dims in levels if dims != full}
    chunk_rows = max(chunk_rows, 4 * n_cells[full])  # per-chunk work stays above per-cell work

    def evidence(chunk: Chunk, dims: Dims) -> CellEvidence:
        cells = chunk.cells if dims == full else lookup[dims][chunk.cells]
        return compute_evidence(
            cells, n_cells[dims], chunk.values, chunk.entity, chunk.weights, depth
        )

    if cols.entity is None:
        inner = reduce(combine, (evidence(chunk, full) for chunk in cols.chunks(chunk_rows)))
        return [
            inner if dims == full else rollup(inner, lookup[dims], n_cells[dims]) for dims in levels
        ]
    # Each part costs a scan of the entity column, so their number is capped: the memory of a
    # part then grows with the data, at about a third of a compact frame's size.
    n_parts = min(-(-cols.n_rows // chunk_rows), MAX_ENTITY_PARTS)
    per_part = ([evidence(chunk, dims) for dims in levels] for chunk in cols.entity_parts(n_parts))
    return reduce(lambda acc, part: list(map(combine, acc, part)), per_part)


def displayed_values(
    agg: Aggregation, cols: TableColumns, dims: Dims, evidence: CellEvidence
) -> tuple[FloatArray, IntArray | None]:
    """The value each cell of a level shows, and, for quantiles, extremes and modes, how many
    distinct units have exactly that value as their own."""
    if agg.name == "count":
        return evidence.weight_sum if cols.weights is not None else evidence.n_nonmissing.astype(
            np.float64
        ), None
    if agg.name == "sum":
        return evidence.weighted_value_sum, None
    if agg.name == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            return evidence.weighted_value_sum / evidence.weight_sum, None
    # The remaining statistics need all of a cell's values at once: one pass over all rows.
    rows = cols.take(slice(None))
    assert rows.values is not None
    ok = ~np.isnan(rows.values)
    n_cells = evidence.n_cells
    cells = rows.cells if len(dims) == len(cols.sizes) else parents(cols.sizes, dims)[rows.cells]
    c, v = cells[ok], rows.values[ok]
    grouped = pd.Series(v).groupby(c)
    value = np.full(n_cells, np.nan)
    if agg.name in ("std", "var"):
        stat = grouped.std() if agg.name == "std" else grouped.var()
        value[stat.index.to_numpy()] = stat.to_numpy()
        return value, None
    if agg.name in ("min", "max"):
        value = evidence.minimum if agg.name == "min" else evidence.maximum
    elif agg.name == "quantile":
        stat = grouped.quantile(agg.q or 0.5)
        value[stat.index.to_numpy()] = stat.to_numpy()
    else:  # mode: most frequent value, the smallest on ties (as pandas' mode)
        counts = pd.DataFrame({"cell": c, "value": v}).value_counts(sort=False).reset_index()
        counts = counts.sort_values(["cell", "count", "value"], ascending=[True, False, True])
        first = counts.drop_duplicates("cell")
        value[first["cell"].to_numpy()] = first["value"].to_numpy()
    entity = None if rows.entity is None else rows.entity[ok]
    return value, _ties(c, v, value, n_cells, entity)


def _ties(
    cell: npt.NDArray[np.intp],
    values: FloatArray,
    reported: FloatArray,
    n_cells: int,
    entity: IntArray | None,
) -> IntArray:
    """Distinct units per cell whose own value equals the reported value."""
    match = values == reported[cell]
    if entity is None:
        return np.bincount(cell[match], minlength=n_cells).astype(np.int64)
    pairs = np.unique(np.stack([cell[match], entity[match]]), axis=1)
    return np.bincount(pairs[0], minlength=n_cells).astype(np.int64)
