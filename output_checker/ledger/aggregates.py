"""Published cells as linear aggregates over a project's entities (spec §11, issue 11).

Every published cell is a row of a sparse matrix with one column per entity: weight 1 for a
count (an entity counts once however many records it has), the entity's own total for a sum.
The caller maps pseudonymous ids to column indices; the ids themselves never appear here.
Each row remembers where it was published: the output, the cell's key and the quantity
(a count, or a sum of a named measure), so a finding can name the earlier release.

A ratio cell (a mean, a percentage) is stored as its numerator row: a mean of m over P as the
sum of m over P, a percentage as the count of its own population. Its denominator is the count
of P for a mean and, for a percentage, a second pattern (``denominators``). Only once the
attacker knows the denominator does the numerator become a published sum or count
(:mod:`output_checker.ledger.ratios`); until then the row is subtracted from nothing.

Building is vectorised: one sparse assembly per aggregation level (inner cells, margins),
never a Python loop over rows or cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from itertools import product
from math import prod
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import sparse

from output_checker.columns import ALL, Label
from output_checker.errors import InputError

IntArray = npt.NDArray[np.int64]
_NONE: IntArray = np.zeros(0, dtype=np.int64)  # an index field not given: see Aggregates


class Kind(Enum):
    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"  # a sum over the count of the same entities
    PERCENT = "percent"  # a count over the count of a wider population


_MEASURED = (Kind.SUM, Kind.MEAN)
_NUMERATOR = {Kind.MEAN: Kind.SUM, Kind.PERCENT: Kind.COUNT}


@dataclass(frozen=True)
class Quantity:
    """What a row adds up: entities (``measure`` is None) or a measure's per-entity totals,
    each record's value times its ``weights`` column when weighted (a sum or a mean only).
    Only rows of one quantity can be subtracted from each other meaningfully; a ratio
    (a mean, a percentage) only once its denominator is known, as its numerator."""

    kind: Kind
    measure: str | None = None
    weights: str | None = None

    def __post_init__(self) -> None:
        if (self.kind in _MEASURED) != (self.measure is not None):
            raise InputError(
                "a sum or a mean names its measure; a count or a percentage names none"
            )
        if self.weights is not None and self.kind not in _MEASURED:
            raise InputError("only a sum or a mean is weighted (a weighted count is a sum)")

    @property
    def is_ratio(self) -> bool:
        return self.kind in _NUMERATOR

    @property
    def numerator(self) -> Quantity:
        """What the row adds up once its denominator is known: a mean's sum, a percentage's
        count; a count or a sum is its own numerator."""
        return Quantity(_NUMERATOR.get(self.kind, self.kind), self.measure, self.weights)

    @property
    def denominator(self) -> Quantity | None:
        """What a mean divides by: the count of its entities, or their weighted count (the
        sum of the weights); None for any other quantity."""
        if self.kind is not Kind.MEAN:
            return None
        return COUNT if self.weights is None else weighted_count(self.weights)

    @property
    def label(self) -> str:
        """How a finding names it: "count", "sum of income", "mean of income weighted by w",
        "percentage"."""
        if self.kind is Kind.PERCENT:
            return "percentage"
        if self.measure is None:
            return str(self.kind.value)
        weighted = "" if self.weights is None else f" weighted by {self.weights}"
        return f"{self.kind.value} of {self.measure}{weighted}"

    def __lt__(self, other: object) -> bool:  # Enum members do not order; their values do
        if not isinstance(other, Quantity):
            return NotImplemented
        return (self.kind.value, self.measure or "", self.weights or "") < (
            other.kind.value,
            other.measure or "",
            other.weights or "",
        )


def weighted_count(weights: str) -> Quantity:
    """A count weighted by the column ``weights``: the sum of each entity's weights."""
    return Quantity(Kind.SUM, f"weighted count ({weights})")


COUNT = Quantity(Kind.COUNT)


@dataclass(frozen=True)
class CellRef:
    """A published cell: its output, its key (one label per variable, "All" on a margin) and
    the quantity it shows (a mean stays a mean once resolved into a sum)."""

    output: str
    key: tuple[Label, ...]
    quantity: Quantity


@dataclass(frozen=True)
class CellGrid:
    """How one output names its cells: ``codes[i, d]`` is the level of variable ``d`` in
    cell ``i``, or -1 where the cell is a total over that variable."""

    output: str
    variables: tuple[str, ...]
    levels: tuple[tuple[Label, ...], ...]
    codes: npt.NDArray[np.intp]

    def key(self, cell: int) -> tuple[Label, ...]:
        return tuple(
            ALL if code < 0 else self.levels[d][code] for d, code in enumerate(self.codes[cell])
        )


@dataclass(frozen=True)
class Aggregates:
    """Published cells as rows of ``weights`` (cells × entities, CSR, float64).

    Row ``r`` is cell ``cell_of[r]`` of ``grids[grid_of[r]]`` and adds up
    ``quantities[quantity_of[r]]``. An entity that contributes a zero to a sum keeps an
    explicit entry: it is still a contributor.

    A ratio row holds its numerator. ``shown_of[r]`` is the quantity the cell showed, which
    differs from ``quantity_of[r]`` once a ratio is resolved into its numerator (empty when
    given: the same). A percentage row's denominator is row ``denominator_of[r]`` of the 0/1
    patterns ``denominators`` (-1 for every other row; empty when given: no denominators).
    """

    weights: sparse.csr_matrix
    grids: tuple[CellGrid, ...]
    grid_of: IntArray
    cell_of: IntArray
    quantities: tuple[Quantity, ...]
    quantity_of: IntArray
    shown_of: IntArray = field(default_factory=lambda: _NONE.copy())
    denominators: sparse.csr_matrix = field(default_factory=lambda: sparse.csr_matrix((0, 0)))
    denominator_of: IntArray = field(default_factory=lambda: _NONE.copy())

    def __post_init__(self) -> None:
        n = self.n_rows
        if not self.shown_of.shape[0] and n:
            object.__setattr__(self, "shown_of", self.quantity_of.copy())
        if not self.denominator_of.shape[0] and n:
            object.__setattr__(self, "denominator_of", np.full(n, -1, dtype=np.int64))
        if self.denominators.shape[1] != self.n_entities:
            object.__setattr__(self, "denominators", widen(self.denominators, self.n_entities))
        if self.shown_of.shape != (n,) or self.denominator_of.shape != (n,):
            raise InputError("give one shown quantity and one denominator index per row")

    @property
    def n_rows(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_entities(self) -> int:
        return int(self.weights.shape[1])

    def ref(self, row: int) -> CellRef:
        grid = self.grids[int(self.grid_of[row])]
        return CellRef(
            grid.output,
            grid.key(int(self.cell_of[row])),
            self.quantities[int(self.shown_of[row])],
        )

    def take(self, rows: npt.NDArray[np.bool_]) -> Aggregates:
        """Only the rows where ``rows`` is true (the published ones, say), in order."""
        return replace(
            self,
            weights=self.weights[rows],
            grid_of=self.grid_of[rows],
            cell_of=self.cell_of[rows],
            quantity_of=self.quantity_of[rows],
            shown_of=self.shown_of[rows],
            denominator_of=self.denominator_of[rows],
        )

    @property
    def is_ratio(self) -> npt.NDArray[np.bool_]:
        """Per row, whether it still shows a ratio whose denominator is not known."""
        ratio = np.asarray([q.is_ratio for q in self.quantities], dtype=bool)
        return ratio[self.quantity_of] if ratio.shape[0] else np.zeros(self.n_rows, dtype=bool)


@dataclass(frozen=True)
class TableDefinition:
    """A published table: its output id, grouping variables (``n_index`` of them on the rows,
    the rest on the columns) with their levels, and which totals it shows. ``margins`` adds the
    row, column and grand totals (as pandas and the checker show them); ``hierarchical`` adds
    a subtotal for every leading prefix of the row variables and of the column variables."""

    output: str
    variables: tuple[str, ...]
    levels: tuple[tuple[Label, ...], ...]
    n_index: int
    margins: bool = False
    hierarchical: bool = False

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.variables):
            raise InputError("give one list of levels per grouping variable")
        if not 0 <= self.n_index <= len(self.variables):
            raise InputError("n_index must lie between 0 and the number of variables")

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(levels) for levels in self.levels)

    def published_levels(self) -> list[tuple[int, ...]]:
        """The sets of variables a published cell fixes, inner cells first."""
        p, d = self.n_index, len(self.variables)
        rows = _prefixes(range(p), self.margins, self.hierarchical)
        cols = _prefixes(range(p, d), self.margins, self.hierarchical)
        seen: dict[tuple[int, ...], None] = {}
        for r, c in product(rows, cols):
            seen.setdefault(r + c, None)
        return list(seen)


def table_aggregates(
    table: TableDefinition,
    entity: npt.ArrayLike,
    codes: Sequence[npt.ArrayLike],
    n_entities: int,
    values: npt.ArrayLike | None = None,
    measure: str | None = None,
    aggregation: Literal["sum", "mean"] = "sum",
    with_count: bool = False,
    weighted_by: str | None = None,
) -> Aggregates:
    """The published cells of ``table`` built from its microdata, one row per record.

    Args:
        entity: the column index (0..n_entities-1) of each record's entity.
        codes: per grouping variable, each record's level code; a negative code (a missing
            group, which pandas drops) puts the record in no cell.
        values: the measure per record for a sum or mean (magnitude) table, NaN where
            missing; ``None`` for a count table.
        measure: the measure's name, required with ``values``.
        aggregation: what a magnitude table shows per cell, the sum or the mean of the
            measure over the cell's records that have a value.
        with_count: the table also shows each cell's N, the entities with a value (count rows
            after the cells, on the same keys): a mean shown with its N is a sum.
        weighted_by: the name of the weights column ``values`` are already multiplied by (a
            weighted sum, or the numerator of a weighted mean, whose denominator is then the
            weighted count of the same entities).
    """
    entity_index, code_matrix = _records(table, entity, codes, n_entities)
    n_records = entity_index.shape[0]
    present: npt.NDArray[np.bool_] = np.asarray((code_matrix >= 0).all(axis=1))
    if values is None:
        if measure is not None:
            raise InputError("a count table has no measure; give values for a sum")
        if aggregation != "sum" or with_count:
            raise InputError("a mean, or a cell's N, needs the measure's values")
        quantity, weight = COUNT, np.ones(n_records)
    else:
        if measure is None:
            raise InputError("name the measure of a sum table")
        if aggregation not in ("sum", "mean"):
            raise InputError('the aggregation of a magnitude table is "sum" or "mean"')
        weight = np.asarray(values, dtype=np.float64)
        if weight.shape != (n_records,):
            raise InputError("give one value per record")
        kind = Kind.SUM if aggregation == "sum" else Kind.MEAN
        quantity = Quantity(kind, measure, weighted_by)
        present &= ~np.isnan(weight)

    matrix, grid_codes = _level_rows(
        table.sizes,
        table.published_levels(),
        code_matrix,
        present,
        entity_index,
        weight,
        n_entities,
        counting=quantity is COUNT,
    )
    grid = CellGrid(table.output, table.variables, table.levels, grid_codes)
    n_cells = matrix.shape[0]
    quantities: tuple[Quantity, ...] = (quantity,)
    quantity_of = np.zeros(n_cells, dtype=np.int64)
    if with_count:
        matrix = sparse.vstack([matrix, _pattern_of(matrix)], format="csr")
        quantities = (quantity, COUNT)
        quantity_of = np.repeat(np.arange(2, dtype=np.int64), n_cells)
    return Aggregates(
        weights=matrix,
        grids=(grid,),
        grid_of=np.zeros(matrix.shape[0], dtype=np.int64),
        cell_of=np.tile(np.arange(n_cells, dtype=np.int64), len(quantities)),
        quantities=quantities,
        quantity_of=quantity_of,
    )


def percentage_aggregates(
    table: TableDefinition,
    entity: npt.ArrayLike,
    codes: Sequence[npt.ArrayLike],
    n_entities: int,
    per: Sequence[str] = (),
) -> Aggregates:
    """The published cells of a table of percentages: each cell shows its entities as a share
    of the entities in the cell's population over only the ``per`` variables it fixes. So
    ``per`` = the row variables gives row percentages (pandas ``normalize="index"``), the
    column variables column percentages (``"columns"``), and none shares of the table's total
    (``"all"``); a margin's share fixes fewer variables. "Percentage of each region's clients
    with condition X" is the table (region, X) with ``per=("region",)``. Arguments as for
    :func:`table_aggregates`."""
    unknown = set(per) - set(table.variables)
    if unknown:
        raise InputError(f"per names variables the table does not have: {sorted(unknown)}")
    entity_index, code_matrix = _records(table, entity, codes, n_entities)
    present: npt.NDArray[np.bool_] = np.asarray((code_matrix >= 0).all(axis=1))
    ones = np.ones(entity_index.shape[0])
    levels = table.published_levels()
    per_levels = [tuple(d for d in kept if table.variables[d] in per) for kept in levels]
    den_levels = list(dict.fromkeys(per_levels))
    numerators, grid_codes = _level_rows(
        table.sizes, levels, code_matrix, present, entity_index, ones, n_entities, counting=True
    )
    denominators, _ = _level_rows(
        table.sizes, den_levels, code_matrix, present, entity_index, ones, n_entities, True
    )
    # a cell's denominator: the cell of its per-level with the same codes on those variables
    den_start = np.cumsum([0] + [_n_cells(table.sizes, kept) for kept in den_levels])
    start = np.cumsum([0] + [_n_cells(table.sizes, kept) for kept in levels])
    denominator_of = np.concatenate(
        [
            den_start[den_levels.index(den)]
            + _cell_index(grid_codes[start[i] : start[i + 1]], den, table.sizes)
            for i, den in enumerate(per_levels)
        ]
    )
    n_cells = numerators.shape[0]
    return Aggregates(
        weights=numerators,
        grids=(CellGrid(table.output, table.variables, table.levels, grid_codes),),
        grid_of=np.zeros(n_cells, dtype=np.int64),
        cell_of=np.arange(n_cells, dtype=np.int64),
        quantities=(Quantity(Kind.PERCENT),),
        quantity_of=np.zeros(n_cells, dtype=np.int64),
        denominators=denominators,
        denominator_of=denominator_of.astype(np.int64),
    )


def stack(parts: Sequence[Aggregates]) -> Aggregates:
    """The rows of several outputs in order, as one ledger. Later outputs may know more
    entities than earlier ones: the narrower matrices gain empty columns."""
    if not parts:
        raise InputError("nothing to stack")
    width = max(part.n_entities for part in parts)
    quantities = tuple(sorted({q for part in parts for q in part.quantities}))
    position = {q: i for i, q in enumerate(quantities)}
    grid_offsets = np.cumsum([0] + [len(part.grids) for part in parts])
    den_offsets = np.cumsum([0] + [part.denominators.shape[0] for part in parts])

    def relabel(part: Aggregates, codes: IntArray) -> IntArray:
        return np.asarray([position[q] for q in part.quantities], dtype=np.int64)[codes]

    return Aggregates(
        weights=sparse.vstack([widen(part.weights, width) for part in parts], format="csr"),
        grids=tuple(grid for part in parts for grid in part.grids),
        grid_of=np.concatenate([part.grid_of + grid_offsets[i] for i, part in enumerate(parts)]),
        cell_of=np.concatenate([part.cell_of for part in parts]),
        quantities=quantities,
        quantity_of=np.concatenate([relabel(part, part.quantity_of) for part in parts]),
        shown_of=np.concatenate([relabel(part, part.shown_of) for part in parts]),
        denominators=sparse.vstack(
            [widen(part.denominators, width) for part in parts], format="csr"
        ),
        denominator_of=np.concatenate(
            [
                np.where(part.denominator_of < 0, -1, part.denominator_of + den_offsets[i])
                for i, part in enumerate(parts)
            ]
        ),
    )


def widen(matrix: sparse.csr_matrix, width: int) -> sparse.csr_matrix:
    """``matrix`` with empty columns appended up to ``width`` (no copy of the entries)."""
    if matrix.shape[1] == width:
        return matrix
    return sparse.csr_matrix(
        (matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], width)
    )


def _records(
    table: TableDefinition, entity: npt.ArrayLike, codes: Sequence[npt.ArrayLike], n_entities: int
) -> tuple[IntArray, npt.NDArray[np.intp]]:
    """Each record's entity index and level codes, checked."""
    entity_index = np.asarray(entity, dtype=np.int64)
    code_matrix = _code_matrix(codes, entity_index.shape[0], table.sizes)
    if entity_index.shape[0] and (entity_index.min() < 0 or entity_index.max() >= n_entities):
        raise InputError(f"entity indices must lie in 0..{n_entities - 1}")
    return entity_index, code_matrix


def _level_rows(
    sizes: tuple[int, ...],
    levels: Sequence[tuple[int, ...]],
    code_matrix: npt.NDArray[np.intp],
    present: npt.NDArray[np.bool_],
    entity_index: IntArray,
    weight: npt.NDArray[np.float64],
    n_entities: int,
    counting: bool,
) -> tuple[sparse.csr_matrix, npt.NDArray[np.intp]]:
    """One row per cell of each level (the variables it fixes), in C order within a level,
    and the cells' codes (-1 on a variable the level does not fix). A cell holds each
    present record's entity with the sum of its weights, or 1 when ``counting``."""
    grid_codes, rows, cols, data = [], [], [], []
    offset = 0
    for kept in levels:
        level_sizes = [sizes[d] for d in kept]
        level_codes = np.full((_n_cells(sizes, kept), len(sizes)), -1, dtype=np.intp)
        if kept:
            level_codes[:, list(kept)] = np.indices(level_sizes).reshape(len(kept), -1).T
        grid_codes.append(level_codes)
        rows.append(_cell_index(code_matrix[present], kept, sizes) + offset)
        cols.append(entity_index[present])
        data.append(weight[present])
        offset += level_codes.shape[0]
    matrix = sparse.coo_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
        shape=(offset, n_entities),
    ).tocsr()  # sums duplicates: one entry per (cell, entity), the entity's total
    matrix.sum_duplicates()
    if counting:
        matrix.data[:] = 1.0  # an entity counts once, whatever its number of records
    return matrix, np.concatenate(grid_codes)


def _n_cells(sizes: tuple[int, ...], kept: tuple[int, ...]) -> int:
    return prod(sizes[d] for d in kept)


def _cell_index(
    codes: npt.NDArray[np.intp], kept: tuple[int, ...], sizes: tuple[int, ...]
) -> IntArray:
    """Per row of ``codes``, its cell within the level fixing ``kept``."""
    if not kept:
        return np.zeros(codes.shape[0], dtype=np.int64)
    return np.ravel_multi_index(tuple(codes[:, d] for d in kept), [sizes[d] for d in kept]).astype(
        np.int64
    )


def _pattern_of(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """The 0/1 contributor pattern of ``matrix`` (explicit zeros stay contributors)."""
    return sparse.csr_matrix(
        (np.ones(matrix.nnz), matrix.indices.copy(), matrix.indptr.copy()), shape=matrix.shape
    )


def _prefixes(dims: range, margins: bool, hierarchical: bool) -> list[tuple[int, ...]]:
    """The fixed-variable sets one side of a table publishes, finest first."""
    full = tuple(dims)
    if hierarchical:
        return [full[:length] for length in range(len(full), -1, -1)]
    if margins and full:
        return [full, ()]
    return [full]


def _code_matrix(
    codes: Sequence[npt.ArrayLike], n_records: int, sizes: tuple[int, ...]
) -> npt.NDArray[np.intp]:
    """Level codes as a records × variables matrix, checked against the levels."""
    if len(codes) != len(sizes):
        raise InputError("give one code array per grouping variable")
    matrix = np.empty((n_records, len(sizes)), dtype=np.intp)
    for d, column in enumerate(codes):
        array = np.asarray(column)
        if array.shape != (n_records,) or not np.issubdtype(array.dtype, np.integer):
            raise InputError("level codes must be one integer per record")
        if n_records and array.max() >= sizes[d]:
            raise InputError(f"a level code of variable {d} exceeds its {sizes[d]} levels")
        matrix[:, d] = array
    return matrix
