"""The table request, and the data's columns as compact arrays ready for grouped passes.

Validation lives here: every problem with the request or the data is one ``InputError`` line
that names the column. Arrays are kept as small as the data allows (categorical codes stay
int8, integer ids are not copied), because the evidence passes read them chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from output_checker.aggregation import WEIGHTED, Aggregation
from output_checker.errors import InputError
from output_checker.evidence import FloatArray, IntArray

ALL = "All"
COUNT = Aggregation("count")
Label = object
Rows = slice | npt.NDArray[np.intp]


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
class Chunk:
    """Some rows, every one with all its classifying labels present."""

    cells: npt.NDArray[np.intp]  # inner cell of each row, row-major over the variables' levels
    values: FloatArray | None
    entity: IntArray | None
    weights: FloatArray | None

    @property
    def n_rows(self) -> int:
        return int(self.cells.shape[0])


@dataclass(frozen=True)
class TableColumns:
    """Codes per classifying variable (-1 where missing), their levels, and the other columns.

    ``entity`` holds integer ids or codes; ``entity_offset`` is subtracted to make them dense.
    """

    codes: list[npt.NDArray[np.integer[Any]]]
    levels: list[list[Label]]
    values: FloatArray | None
    entity: npt.NDArray[np.integer[Any]] | None
    entity_offset: int
    weights: FloatArray | None

    @property
    def n_rows(self) -> int:
        return int(self.codes[0].shape[0])

    @property
    def sizes(self) -> list[int]:
        return [len(levels) for levels in self.levels]

    def inner_cells(self, rows: Rows) -> npt.NDArray[np.intp]:
        """The inner cell of each of ``rows``; -1 where a classifying label is missing."""
        codes = [c[rows] for c in self.codes]
        present = np.logical_and.reduce([c >= 0 for c in codes])
        if present.all():
            return np.ravel_multi_index(codes, self.sizes).astype(np.intp, copy=False)
        cells = np.full(present.shape[0], -1, dtype=np.intp)
        cells[present] = np.ravel_multi_index([c[present] for c in codes], self.sizes)
        return cells

    def take(self, rows: Rows) -> Chunk:
        """The given rows, minus those missing a classifying label."""
        cells = self.inner_cells(rows)
        keep = cells >= 0
        everything = bool(keep.all())

        def pick(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
            part = array[rows]
            return part if everything else part[keep]

        entity = None
        if self.entity is not None:
            entity = pick(self.entity).astype(np.int64) - self.entity_offset
        return Chunk(
            cells=cells if everything else cells[keep],
            values=None if self.values is None else pick(self.values),
            entity=entity,
            weights=None if self.weights is None else pick(self.weights),
        )

    def chunks(self, size: int) -> Iterator[Chunk]:
        """Consecutive chunks of at most ``size`` rows (for evidence without entities)."""
        for start in range(0, self.n_rows, size):
            yield self.take(slice(start, start + size))

    def entity_parts(self, n_parts: int) -> Iterator[Chunk]:
        """Rows split by entity (code modulo ``n_parts``) so that no entity spans two parts.

        Within a part, entity codes are divided by ``n_parts``, which keeps them dense.
        """
        if self.entity is None or n_parts <= 1:
            yield self.take(slice(None))
            return
        part = np.empty(self.n_rows, dtype=np.int16 if n_parts < 2**15 else np.int32)
        step = 1 << 16
        for start in range(0, self.n_rows, step):
            ids = self.entity[start : start + step].astype(np.int64) - self.entity_offset
            part[start : start + step] = ids % n_parts
        for index in range(n_parts):
            chunk = self.take(np.flatnonzero(part == index))
            assert chunk.entity is not None
            yield replace(chunk, entity=chunk.entity // n_parts)


def prepare(data: pd.DataFrame, request: TableRequest) -> TableColumns:
    """Validate the request against the data and turn columns into arrays (one error line each)."""
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if not request.index:
        raise InputError("a table needs at least one index variable")
    extras = [c for c in (request.values, request.entity, request.weights) if c is not None]
    wanted = [*request.index, *request.columns, *extras]
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

    codes, levels = zip(*(_factorize(data[name]) for name in dims), strict=True)
    valid = np.logical_and.reduce([c >= 0 for c in codes])
    if not valid.any():
        raise InputError(
            "no rows remain once rows with a missing index or column label are dropped"
        )
    values = _numeric(data, request.values, "value variable") if request.values else None
    if values is not None and not (valid & ~np.isnan(values)).any():
        raise InputError(f"value variable {request.values!r} has no non-missing values")
    weights = _numeric(data, request.weights, "weights") if request.weights else None
    if weights is not None and (np.isnan(weights).any() or (weights <= 0).any()):
        raise InputError(f"weights column {request.weights!r} must be positive and non-missing")
    entity, offset = (None, 0) if request.entity is None else _entity_ids(data[request.entity])
    return TableColumns(
        codes=list(codes),
        levels=list(levels),
        values=values,
        entity=entity,
        entity_offset=offset,
        weights=weights,
    )


def _entity_ids(series: pd.Series) -> tuple[npt.NDArray[np.integer[Any]], int]:
    """Entity ids and the offset that makes them dense codes from 0. Integer ids in a compact
    range are used as they are, which avoids hashing (and copying) millions of ids."""
    if series.isna().any():
        raise InputError(f"entity column {series.name!r} has missing values")
    if pd.api.types.is_integer_dtype(series.dtype):
        ids = series.to_numpy()
        low, high = int(ids.min()), int(ids.max())
        if high - low < 4 * ids.shape[0] + 1024:
            return ids, low
    codes, _ = pd.factorize(series)
    return codes, 0


def _factorize(series: pd.Series) -> tuple[npt.NDArray[np.integer[Any]], list[Label]]:
    """Integer codes (-1 for missing) and the sorted levels of one classifying variable."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), list(series.cat.categories)
    try:
        code, uniques = pd.factorize(series, sort=True)
    except TypeError:  # mixed types that cannot be ordered: keep first-seen order
        code, uniques = pd.factorize(series, sort=False)
    return code, list(uniques)


def _numeric(data: pd.DataFrame, name: str, what: str) -> FloatArray:
    column = data[name]
    if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
        raise InputError(f"{what} {name!r} is not numeric (dtype {column.dtype})")
    if column.dtype == np.float64:
        return column.to_numpy()  # a view: no copy of the data
    return column.to_numpy(dtype=np.float64, na_value=np.nan)
