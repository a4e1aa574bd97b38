"""From a DataFrame and a table request to the laid-out table: cells, totals, values, evidence.

The table is the Cartesian product of the levels of the index and column variables, plus total
rows and columns. Every aggregation level (inner cells, row totals, column totals, subtotals,
grand total) gets its evidence from one grouped pass over the rows, and the levels are then laid
onto one grid in pandas' display order ("All" last).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
import numpy.typing as npt
import pandas as pd

from output_checker.aggregation import WEIGHTED, Aggregation
from output_checker.errors import InputError
from output_checker.evidence import (
    CellEvidence,
    FloatArray,
    IntArray,
    compute_evidence,
    concatenate,
    sum_by,
)

ALL = "All"
COUNT = Aggregation("count")
Label = object


@dataclass(frozen=True)
class TableRequest:
    """What the researcher asked for, as in ``pd.crosstab``/``pivot_table`` (names of columns)."""

    index: tuple[str, ...]
    columns: tuple[str, ...] = ()
    values: str | None = None
    aggregation: Aggregation = COUNT
    entity: str | None = None
    weights: str | None = None
    margins: bool = False
    hierarchical: bool = False
    structural_zeros: tuple[tuple[Label, ...], ...] = ()  # full label paths of impossible cells


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

    @property
    def n_cells(self) -> int:
        return int(self.cell_row.shape[0])


@dataclass(frozen=True)
class _Columns:
    codes: list[npt.NDArray[np.intp]]
    levels: list[list[Label]]
    values: FloatArray | None
    entity: IntArray | None
    weights: FloatArray | None


def lay_out(
    data: pd.DataFrame, request: TableRequest, max_cells: int, depth: int, with_totals: bool
) -> LaidTable:
    """Build the table. ``with_totals`` computes totals even when margins are not shown."""
    cols = _prepare(data, request)
    sizes = [len(levels) for levels in cols.levels]
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

    parts: list[CellEvidence] = []
    values: list[FloatArray] = []
    ties: list[IntArray] = []
    position = np.empty(grid.shape[0], dtype=np.intp)
    offset = 0
    for level in np.unique(level_of_cell):
        dims = [d for d in range(len(sizes)) if level >> d & 1]
        level_sizes = [sizes[d] for d in dims]
        n_level = prod(level_sizes)
        row_cell = _ravel([cols.codes[d] for d in dims], level_sizes, cols.codes[0].shape[0])
        evidence = compute_evidence(
            row_cell, n_level, cols.values, cols.entity, cols.weights, depth
        )
        value, tie = _statistic(request.aggregation, row_cell, n_level, cols, evidence)
        parts.append(evidence)
        values.append(value)
        if tie is not None:
            ties.append(tie)
        members = np.flatnonzero(level_of_cell == level)
        position[members] = offset + _ravel(
            [grid[members, d] for d in dims], level_sizes, members.shape[0]
        )
        offset += n_level

    evidence = concatenate(parts).take(position)
    all_col = _all_index(col_keys, sizes[p:])
    all_row = _all_index(row_keys, sizes[:p])
    has_row_total = kept[:, p:].any(axis=1) & (all_col >= 0)
    has_col_total = kept[:, :p].any(axis=1) & (all_row >= 0)
    is_total = np.logical_not(kept.all(axis=1))
    return LaidTable(
        request=request,
        row_labels=_labels(row_keys, cols.levels[:p]),
        col_labels=_labels(col_keys, cols.levels[p:]),
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
    )


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


def _ravel(codes: list[npt.NDArray[np.intp]], sizes: list[int], n: int) -> npt.NDArray[np.intp]:
    if not codes:
        return np.zeros(n, dtype=np.intp)
    return np.ravel_multi_index(codes, sizes).astype(np.intp)


def _labels(keys: npt.NDArray[np.intp], levels: list[list[Label]]) -> list[tuple[Label, ...]]:
    return [
        tuple(ALL if code == len(levels[d]) else levels[d][code] for d, code in enumerate(key))
        for key in keys.tolist()
    ]


def _prepare(data: pd.DataFrame, request: TableRequest) -> _Columns:
    """Validate the request against the data and turn columns into arrays (one error line each)."""
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if not request.index:
        raise InputError("a table needs at least one index variable")
    wanted = [*request.index, *request.columns]
    for extra in (request.values, request.entity, request.weights):
        if extra is not None:
            wanted.append(extra)
    missing = [name for name in dict.fromkeys(wanted) if name not in data.columns]
    if missing:
        raise InputError(f"column(s) not in the data: {', '.join(map(repr, missing))}")
    dims = [*request.index, *request.columns]
    if len(set(dims)) != len(dims):
        raise InputError("a variable appears more than once among index and columns")
    agg = request.aggregation
    if request.values is None and agg.name != "count":
        raise InputError(f"aggregation {agg.label!r} needs a values variable")
    if request.weights is not None and agg.name not in WEIGHTED:
        raise InputError(f"weights are supported for {', '.join(WEIGHTED)}; not for {agg.label!r}")
    if len(data) == 0:
        raise InputError("the data has no rows")

    keep = np.ones(len(data), dtype=bool)
    codes: list[npt.NDArray[np.intp]] = []
    levels: list[list[Label]] = []
    for name in dims:
        code, level = _factorize(data[name])
        codes.append(code)
        levels.append(level)
        keep &= code >= 0
    values = _numeric(data, request.values, "value variable") if request.values else None
    weights = _numeric(data, request.weights, "weights") if request.weights else None
    entity = None if request.entity is None else _entity_codes(data[request.entity])
    if weights is not None and (np.isnan(weights).any() or (weights <= 0).any()):
        raise InputError(f"weights column {request.weights!r} must be positive and non-missing")
    if not keep.all():
        codes = [c[keep] for c in codes]
        values = None if values is None else values[keep]
        weights = None if weights is None else weights[keep]
        entity = None if entity is None else entity[keep]
    if codes[0].shape[0] == 0:
        raise InputError(
            "no rows remain once rows with a missing index or column label are dropped"
        )
    if values is not None and np.isnan(values).all():
        raise InputError(f"value variable {request.values!r} has no non-missing values")
    return _Columns(codes, levels, values, entity, weights)


def _entity_codes(series: pd.Series) -> IntArray:
    """Dense non-negative entity codes. Integer ids in a compact range are used as they are
    (offset to start at 0), which avoids hashing millions of ids."""
    if series.isna().any():
        raise InputError(f"entity column {series.name!r} has missing values")
    if pd.api.types.is_integer_dtype(series.dtype):
        ids = series.to_numpy(dtype=np.int64)
        low, high = int(ids.min()), int(ids.max())
        if high - low < 4 * ids.shape[0] + 1024:
            return ids - low
    codes, _ = pd.factorize(series)
    return codes.astype(np.int64)


def _factorize(series: pd.Series) -> tuple[npt.NDArray[np.intp], list[Label]]:
    """Integer codes (-1 for missing) and the sorted levels of one classifying variable."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy().astype(np.intp), list(series.cat.categories)
    try:
        code, uniques = pd.factorize(series, sort=True)
    except TypeError:  # mixed types that cannot be ordered: keep first-seen order
        code, uniques = pd.factorize(series, sort=False)
    return code.astype(np.intp), list(uniques)


def _numeric(data: pd.DataFrame, name: str, what: str) -> FloatArray:
    column = data[name]
    if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
        raise InputError(f"{what} {name!r} is not numeric (dtype {column.dtype})")
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _statistic(
    agg: Aggregation,
    cell: npt.NDArray[np.intp],
    n_cells: int,
    cols: _Columns,
    evidence: CellEvidence,
) -> tuple[FloatArray, IntArray | None]:
    """The displayed value per cell, plus (for quantiles, extremes and modes) the number of
    distinct units whose own value equals it."""
    values, weights = cols.values, cols.weights
    empty = evidence.n_nonmissing == 0
    if agg.name == "count":
        if weights is None:
            return evidence.n_nonmissing.astype(np.float64), None
        ok = np.ones_like(weights, dtype=bool) if values is None else ~np.isnan(values)
        return sum_by(cell[ok], weights[ok], n_cells), None
    assert values is not None
    ok = ~np.isnan(values)
    c, v = cell[ok], values[ok]
    if agg.name in ("sum", "mean"):
        w = np.ones_like(v) if weights is None else weights[ok]
        total = sum_by(c, v * w, n_cells)
        if agg.name == "sum":
            return total, None
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / sum_by(c, w, n_cells), None
    if agg.name in ("std", "var"):
        count = evidence.n_nonmissing
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sum_by(c, v, n_cells) / count
            var = sum_by(c, (v - mean[c]) ** 2, n_cells) / (count - 1)
        var[count < 2] = np.nan
        return (np.sqrt(var) if agg.name == "std" else var), None
    if agg.name in ("min", "max"):
        value = evidence.minimum if agg.name == "min" else evidence.maximum
    elif agg.name == "quantile":
        series = pd.Series(v).groupby(c).quantile(agg.q or 0.5)
        value = np.full(n_cells, np.nan)
        value[series.index.to_numpy()] = series.to_numpy()
    else:  # mode: most frequent value, the smallest on ties (as pandas' mode)
        counts = pd.DataFrame({"cell": c, "value": v}).value_counts(sort=False).reset_index()
        counts = counts.sort_values(["cell", "count", "value"], ascending=[True, False, True])
        first = counts.drop_duplicates("cell")
        value = np.full(n_cells, np.nan)
        value[first["cell"].to_numpy()] = first["value"].to_numpy()
    value[empty] = np.nan
    return value, _ties(c, v, value, n_cells, None if cols.entity is None else cols.entity[ok])


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
