"""Published cells as linear aggregates over a project's entities (spec §11, issue 11).

Every published cell is a row of a sparse matrix with one column per entity: weight 1 for a
count (an entity counts once however many records it has), the entity's own total for a sum.
The caller maps pseudonymous ids to column indices; the ids themselves never appear here.
Each row remembers where it was published: the output, the cell's key and the quantity
(a count, or a sum of a named measure), so a finding can name the earlier release.

Building is vectorised: one sparse assembly per aggregation level (inner cells, margins),
never a Python loop over rows or cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import product
from math import prod

import numpy as np
import numpy.typing as npt
from scipy import sparse

from output_checker.columns import ALL, Label
from output_checker.errors import InputError

IntArray = npt.NDArray[np.int64]


class Kind(Enum):
    COUNT = "count"
    SUM = "sum"


@dataclass(frozen=True)
class Quantity:
    """What a row adds up: entities (``measure`` is None) or a measure's per-entity totals.
    Only rows of one quantity can be subtracted from each other meaningfully."""

    kind: Kind
    measure: str | None = None

    def __post_init__(self) -> None:
        if (self.kind is Kind.SUM) != (self.measure is not None):
            raise InputError("a sum names its measure and a count names none")

    def __lt__(self, other: object) -> bool:  # Enum members do not order; their values do
        if not isinstance(other, Quantity):
            return NotImplemented
        return (self.kind.value, self.measure or "") < (other.kind.value, other.measure or "")


COUNT = Quantity(Kind.COUNT)


@dataclass(frozen=True)
class CellRef:
    """A published cell: its output, its key (one label per variable, "All" on a margin) and
    the quantity it shows."""

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

    Row ``r`` is cell ``cell_of[r]`` of ``grids[grid_of[r]]`` and shows
    ``quantities[quantity_of[r]]``. An entity that contributes a zero to a sum keeps an
    explicit entry: it is still a contributor.
    """

    weights: sparse.csr_matrix
    grids: tuple[CellGrid, ...]
    grid_of: IntArray
    cell_of: IntArray
    quantities: tuple[Quantity, ...]
    quantity_of: IntArray

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
            self.quantities[int(self.quantity_of[row])],
        )


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
) -> Aggregates:
    """The published cells of ``table`` built from its microdata, one row per record.

    Args:
        entity: the column index (0..n_entities-1) of each record's entity.
        codes: per grouping variable, each record's level code; a negative code (a missing
            group, which pandas drops) puts the record in no cell.
        values: the measure per record for a sum (magnitude) table, NaN where missing; ``None``
            for a count table.
        measure: the measure's name, required with ``values``.
    """
    entity_index = np.asarray(entity, dtype=np.int64)
    n_records = entity_index.shape[0]
    code_matrix = _code_matrix(codes, n_records, table.sizes)
    if n_records and (entity_index.min() < 0 or entity_index.max() >= n_entities):
        raise InputError(f"entity indices must lie in 0..{n_entities - 1}")
    present = (code_matrix >= 0).all(axis=1)
    if values is None:
        if measure is not None:
            raise InputError("a count table has no measure; give values for a sum")
        quantity, weight = COUNT, np.ones(n_records)
    else:
        if measure is None:
            raise InputError("name the measure of a sum table")
        weight = np.asarray(values, dtype=np.float64)
        if weight.shape != (n_records,):
            raise InputError("give one value per record")
        quantity = Quantity(Kind.SUM, measure)
        present &= ~np.isnan(weight)

    grid_codes, rows, cols, data = [], [], [], []
    offset = 0
    for kept in table.published_levels():
        level_sizes = [table.sizes[d] for d in kept]
        n_level = prod(level_sizes)
        cell = np.zeros(int(present.sum()), dtype=np.int64)
        if kept:
            cell = np.ravel_multi_index(
                tuple(code_matrix[present, d] for d in kept), level_sizes
            ).astype(np.int64)
        level_codes = np.full((n_level, len(table.sizes)), -1, dtype=np.intp)
        if kept:
            level_codes[:, list(kept)] = np.indices(level_sizes).reshape(len(kept), -1).T
        grid_codes.append(level_codes)
        rows.append(cell + offset)
        cols.append(entity_index[present])
        data.append(weight[present])
        offset += n_level

    matrix = sparse.coo_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
        shape=(offset, n_entities),
    ).tocsr()  # sums duplicates: one entry per (cell, entity), the entity's total
    matrix.sum_duplicates()
    if quantity is COUNT:
        matrix.data[:] = 1.0  # an entity counts once, whatever its number of records
    grid = CellGrid(table.output, table.variables, table.levels, np.concatenate(grid_codes))
    return Aggregates(
        weights=matrix,
        grids=(grid,),
        grid_of=np.zeros(offset, dtype=np.int64),
        cell_of=np.arange(offset, dtype=np.int64),
        quantities=(quantity,),
        quantity_of=np.zeros(offset, dtype=np.int64),
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
    return Aggregates(
        weights=sparse.vstack([widen(part.weights, width) for part in parts], format="csr"),
        grids=tuple(grid for part in parts for grid in part.grids),
        grid_of=np.concatenate([part.grid_of + grid_offsets[i] for i, part in enumerate(parts)]),
        cell_of=np.concatenate([part.cell_of for part in parts]),
        quantities=quantities,
        quantity_of=np.concatenate(
            [
                np.asarray([position[q] for q in part.quantities], dtype=np.int64)[part.quantity_of]
                for part in parts
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
