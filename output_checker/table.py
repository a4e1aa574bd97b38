"""From a DataFrame and a table request to the laid-out table: cells, totals, values, evidence.

The table is the Cartesian product of the levels of the index and column variables, plus total
rows and columns. Every aggregation level (inner cells, row totals, column totals, subtotals,
grand total) gets its evidence from :mod:`output_checker.levels`, and the levels are then laid
onto one grid in pandas' display order ("All" last).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
import numpy.typing as npt
import pandas as pd

from output_checker.columns import ALL, Label, TableColumns, TableRequest, prepare
from output_checker.errors import InputError
from output_checker.evidence import CellEvidence, FloatArray, IntArray, concatenate
from output_checker.levels import displayed_values, evidence_by_level, parents, ravel

__all__ = ["ALL", "Label", "LaidTable", "TableRequest", "lay_out"]


@dataclass(frozen=True)
class LaidTable:
    """The full internal grid of a table. Cells are row-major over ``row_keys`` × ``col_keys``.

    ``row_total``/``col_total`` give, per cell, the grid position of the total of its row and
    of its column (-1 when the cell is itself that total); ``shown`` marks the cells the output
    displays (totals are always computed for class disclosure, shown only with margins).
    """

    request: TableRequest
    row_labels: list[tuple[Label, ...]]
    col_labels: list[tuple[Label, ...]]
    row_keys: npt.NDArray[np.intp]  # level code per row variable; the level count means "All"
    col_keys: npt.NDArray[np.intp]
    sizes: list[int]  # number of levels of each index, then each column, variable
    cell_row: npt.NDArray[np.intp]
    cell_col: npt.NDArray[np.intp]
    is_total: npt.NDArray[np.bool_]
    shown: npt.NDArray[np.bool_]
    row_total: npt.NDArray[np.intp]
    col_total: npt.NDArray[np.intp]
    evidence: CellEvidence
    value: FloatArray
    ties: IntArray | None
    structural_zero: npt.NDArray[np.bool_]
    owner: IntArray | None = None  # per cell, its only contributor's id (-1: several or none)

    @property
    def n_cells(self) -> int:
        return int(self.cell_row.shape[0])


def lay_out(
    data: pd.DataFrame,
    request: TableRequest,
    max_cells: int,
    depth: int,
    with_totals: bool,
    owners: bool = False,
) -> LaidTable:
    """Build the table. ``with_totals`` computes totals even when margins are not shown;
    ``owners`` finds each single-contributor cell's contributor (for attacker scenarios)."""
    cols = prepare(data, request)
    sizes = cols.sizes
    n_inner = prod(sizes)
    if n_inner > max_cells:
        raise InputError(
            f"the table would have {n_inner:,} cells, over the limit of {max_cells:,}; "
            "coarsen the variables or raise max_cells"
        )
    p = len(request.index)
    totals = with_totals or request.margins or request.hierarchical
    row_keys = _keys(sizes[:p], request.hierarchical, totals)
    col_keys = _keys(sizes[p:], request.hierarchical, totals)
    n_rows, n_cols = row_keys.shape[0], col_keys.shape[0]
    cell_row = np.repeat(np.arange(n_rows), n_cols)
    cell_col = np.tile(np.arange(n_cols), n_rows)
    grid = np.concatenate([row_keys[cell_row], col_keys[cell_col]], axis=1)
    kept = grid < np.asarray(sizes)  # per cell and dimension: a level code, not "All"
    level_of_cell = kept @ (1 << np.arange(len(sizes)))  # bit mask of kept dimensions

    levels = [
        tuple(d for d in range(len(sizes)) if mask >> d & 1) for mask in np.unique(level_of_cell)
    ]
    parts = evidence_by_level(cols, levels, depth)
    values: list[FloatArray] = []
    ties: list[IntArray] = []
    position = np.empty(grid.shape[0], dtype=np.intp)
    offset = 0
    for dims, evidence in zip(levels, parts, strict=True):
        level_sizes = [sizes[d] for d in dims]
        value, tie = displayed_values(request.aggregation, cols, dims, evidence)
        values.append(value)
        if tie is not None:
            ties.append(tie)
        members = np.flatnonzero(level_of_cell == sum(1 << d for d in dims))
        position[members] = offset + ravel(
            [grid[members, d] for d in dims], level_sizes, members.shape[0]
        )
        offset += evidence.n_cells

    evidence = concatenate(parts).take(position)
    owner = _owners(cols, grid, evidence.n_entities) if owners else None
    all_col = _all_index(col_keys, sizes[p:])
    all_row = _all_index(row_keys, sizes[:p])
    has_row_total = kept[:, p:].any(axis=1) & (all_col >= 0)
    has_col_total = kept[:, :p].any(axis=1) & (all_row >= 0)
    is_total = np.logical_not(kept.all(axis=1))
    return LaidTable(
        request=request,
        row_labels=_labels(row_keys, cols.levels[:p]),
        col_labels=_labels(col_keys, cols.levels[p:]),
        row_keys=row_keys,
        col_keys=col_keys,
        sizes=sizes,
        cell_row=cell_row,
        cell_col=cell_col,
        is_total=is_total,
        shown=np.ones_like(is_total)
        if request.margins or request.hierarchical
        else np.logical_not(is_total),
        row_total=np.where(has_row_total, cell_row * n_cols + all_col, -1),
        col_total=np.where(has_col_total, all_row * n_cols + cell_col, -1),
        evidence=evidence,
        value=np.concatenate(values)[position],
        ties=np.concatenate(ties)[position] if ties else None,
        structural_zero=_structural(request, grid, cols.levels),
        owner=owner,
    )


def _owners(cols: TableColumns, grid: npt.NDArray[np.intp], n_entities: IntArray) -> IntArray:
    """Per grid cell with one contributor, that contributor's id (the entity, or the row when
    rows are the units); -1 elsewhere. A total with one contributor has the same one as every
    non-empty inner cell under it, so the inner cells' contributors are spread upwards."""
    rows = np.arange(cols.n_rows)
    if cols.values is not None:
        rows = rows[~np.isnan(cols.values)]  # rows without a value contribute nothing
    inner = cols.inner_cells(rows)
    rows, inner = rows[inner >= 0], inner[inner >= 0]
    who = rows if cols.entity is None else (cols.entity[rows] - cols.entity_offset).astype(np.intp)
    sizes = cols.sizes
    contributor = np.full(prod(sizes), -1, dtype=np.intp)
    contributor[inner] = who  # any one of a cell's contributors
    owner = np.full(grid.shape[0], -1, dtype=np.intp)
    present = np.flatnonzero(contributor >= 0)
    single = np.flatnonzero(n_entities == 1)
    kept = grid[single] < np.asarray(sizes)  # per singleton cell: the dimensions it fixes
    for mask in np.unique(kept, axis=0):
        dims = tuple(int(d) for d in np.flatnonzero(mask))
        at_level = single[(kept == mask).all(axis=1)]
        level_sizes = [sizes[d] for d in dims]
        by_level = np.full(prod(level_sizes), -1, dtype=np.intp)
        by_level[parents(sizes, dims)[present]] = contributor[present]
        cells = ravel([grid[at_level, d] for d in dims], level_sizes, at_level.shape[0])
        owner[at_level] = by_level[cells]
    return owner


def _structural(
    request: TableRequest, grid: npt.NDArray[np.intp], levels: list[list[Label]]
) -> npt.NDArray[np.bool_]:
    """Mask of the inner cells the researcher declared impossible (structural zeros)."""
    mask = np.zeros(grid.shape[0], dtype=bool)
    for path in request.structural_zeros:
        if len(path) != len(levels):
            raise InputError(f"structural zero {path!r} must name one label per variable")
        try:
            key = [levels[d].index(label) for d, label in enumerate(path)]
        except ValueError:
            raise InputError(f"structural zero {path!r} names a label not in the data") from None
        mask |= (grid == np.asarray(key)).all(axis=1)
    return mask


def _all_index(keys: npt.NDArray[np.intp], sizes: list[int]) -> int:
    """Position of the all-"All" key among ``keys`` (-1 if absent)."""
    match = np.flatnonzero((keys == np.asarray(sizes, dtype=np.intp)).all(axis=1))
    return int(match[0]) if match.size else -1


def _keys(sizes: list[int], hierarchical: bool, totals: bool) -> npt.NDArray[np.intp]:
    """Row (or column) keys: level codes per dimension, with ``size`` standing for "All".

    Inner keys always; with totals the all-"All" key; hierarchical adds every prefix subtotal.
    Sorted so each subtotal follows its children, as tau-Argus and pandas show them.
    """
    m = len(sizes)
    if m == 0:
        return np.zeros((1, 0), dtype=np.intp)
    prefixes = range(m, -1, -1) if hierarchical else ([m, 0] if totals else [m])
    blocks = []
    for length in prefixes:
        inner = (
            np.indices(sizes[:length], dtype=np.intp).reshape(length, -1).T
            if length
            else np.zeros((1, 0), dtype=np.intp)
        )
        block = np.empty((inner.shape[0], m), dtype=np.intp)
        block[:, :length] = inner
        block[:, length:] = np.asarray(sizes[length:], dtype=np.intp)
        blocks.append(block)
    keys = np.concatenate(blocks)
    return keys[np.lexsort(keys.T[::-1])]


def _labels(keys: npt.NDArray[np.intp], levels: list[list[Label]]) -> list[tuple[Label, ...]]:
    return [
        tuple(ALL if code == len(levels[d]) else levels[d][code] for d, code in enumerate(key))
        for key in keys.tolist()
    ]
