"""The linear model of a table with totals: its cells and the additivity relations between them.

A table has one or more dimensions. Each dimension has an ordered list of codes, totals and
subtotals included, and a hierarchy ``{parent: [children]}``. The cells are the Cartesian product
of all dimensions' codes in row-major order (the last dimension varies fastest). Each parent of
each dimension, combined with every code of the other dimensions, gives one relation
``y(parent, ·) − Σ y(child, ·) = 0``; the relations are the rows of the sparse matrix ``M``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from math import prod
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from output_checker.errors import InputError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]
Code = Hashable
Hierarchy = tuple[tuple[Code, tuple[Code, ...]], ...]

ADDITIVE_TOL = 1e-7  # relative to the largest absolute value in the table


def _freeze_hierarchy(
    dim: int, codes: tuple[Code, ...], hierarchy: Mapping[Code, Any]
) -> Hierarchy:
    """Validate one dimension's hierarchy and return it as a tuple of (parent, children)."""
    known = set(codes)
    frozen = []
    for parent, children in hierarchy.items():
        kids = tuple(children)
        if parent not in known:
            raise InputError(f"dimension {dim}: parent {parent!r} is not one of its codes")
        if not kids:
            raise InputError(f"dimension {dim}: parent {parent!r} has no children")
        unknown = [c for c in kids if c not in known]
        if unknown:
            raise InputError(f"dimension {dim}: child {unknown[0]!r} is not one of its codes")
        if len(set(kids)) != len(kids):
            raise InputError(f"dimension {dim}: parent {parent!r} lists a child twice")
        frozen.append((parent, kids))
    _check_acyclic(dim, dict(frozen))
    return tuple(frozen)


def _check_acyclic(dim: int, hierarchy: Mapping[Code, tuple[Code, ...]]) -> None:
    """Raise InputError if a code is its own ancestor."""
    state: dict[Code, int] = {}  # 1 = on the current path, 2 = done

    def visit(code: Code) -> None:
        state[code] = 1
        for child in hierarchy.get(code, ()):
            if state.get(child) == 1:
                raise InputError(f"dimension {dim}: code {child!r} is its own ancestor")
            if child not in state:
                visit(child)
        state[code] = 2

    for parent in hierarchy:
        if parent not in state:
            visit(parent)


def _bottom_up(hierarchy: Hierarchy) -> list[tuple[Code, tuple[Code, ...]]]:
    """The (parent, children) pairs ordered so that every subtotal comes before its parent."""
    pending = dict(hierarchy)
    order: list[tuple[Code, tuple[Code, ...]]] = []
    while pending:
        ready = [p for p, kids in pending.items() if not any(k in pending for k in kids)]
        for parent in ready:
            order.append((parent, pending.pop(parent)))
    return order


@dataclass(frozen=True)
class TableModel:
    """A frozen N-dimensional table with totals. Build it with ``from_dimensions`` or
    ``with_totals``; ``constraints()`` gives its relations as a CSR matrix."""

    codes: tuple[tuple[Code, ...], ...]
    hierarchies: tuple[Hierarchy, ...]

    @cached_property
    def _positions(self) -> tuple[dict[Code, int], ...]:
        return tuple({c: i for i, c in enumerate(dim_codes)} for dim_codes in self.codes)

    # ----- constructors ------------------------------------------------------------------------
    @classmethod
    def from_dimensions(
        cls, dims: Sequence[Sequence[Code]], hierarchies: Sequence[Mapping[Any, Any]]
    ) -> TableModel:
        """A model from each dimension's codes and hierarchy ``{parent: [children]}``.

        Raises InputError for no dimensions, duplicate or unknown codes, empty or cyclic
        hierarchies, or a different number of hierarchies and dimensions."""
        if not dims:
            raise InputError("a table needs at least one dimension")
        if len(hierarchies) != len(dims):
            raise InputError(f"{len(dims)} dimensions but {len(hierarchies)} hierarchies")
        codes = tuple(tuple(d) for d in dims)
        for d, dim_codes in enumerate(codes):
            if not dim_codes:
                raise InputError(f"dimension {d} has no codes")
            if len(set(dim_codes)) != len(dim_codes):
                raise InputError(f"dimension {d} lists a code twice")
        frozen = tuple(_freeze_hierarchy(d, codes[d], h) for d, h in enumerate(hierarchies))
        return cls(codes, frozen)

    @classmethod
    def with_totals(
        cls, sizes_or_codes: Sequence[int | Sequence[Code]], total_label: Code = "T"
    ) -> TableModel:
        """The common case: each dimension has inner codes plus one total, listed last.

        An integer n stands for the inner codes 0, …, n−1."""
        dims: list[list[Code]] = []
        for d, spec in enumerate(sizes_or_codes):
            inner: list[Code] = list(range(spec)) if isinstance(spec, int) else list(spec)
            if not inner:
                raise InputError(f"dimension {d} has no inner codes")
            dims.append([*inner, total_label])
        return cls.from_dimensions(dims, [{total_label: d[:-1]} for d in dims])

    # ----- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description; codes must be strings or integers."""
        for d, dim_codes in enumerate(self.codes):
            bad = [c for c in dim_codes if isinstance(c, bool) or not isinstance(c, str | int)]
            if bad:
                raise InputError(f"dimension {d}: code {bad[0]!r} is not a string or an integer")
        return {
            "codes": [list(c) for c in self.codes],
            "hierarchies": [[[p, list(kids)] for p, kids in h] for h in self.hierarchies],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableModel:
        """The inverse of ``to_dict``. Raises InputError on a malformed description."""
        try:
            dims = data["codes"]
            hierarchies = [{p: kids for p, kids in h} for h in data["hierarchies"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed table model description ({exc!r})") from exc
        return cls.from_dimensions(dims, hierarchies)

    # ----- shape and cell lookup ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.codes)

    @property
    def n_cells(self) -> int:
        return prod(self.shape)

    def hierarchy(self, dim: int) -> dict[Code, tuple[Code, ...]]:
        return dict(self.hierarchies[dim])

    def cell(self, *codes: Code) -> int:
        """The flat index of the cell with one code per dimension."""
        if len(codes) != len(self.codes):
            raise InputError(f"a cell needs {len(self.codes)} codes, got {len(codes)}")
        try:
            pos = [self._positions[d][c] for d, c in enumerate(codes)]
        except KeyError as exc:
            raise InputError(f"unknown code {exc.args[0]!r}") from None
        return int(np.ravel_multi_index(pos, self.shape))

    def labels(self, cell: int) -> tuple[Code, ...]:
        """The codes of a cell, one per dimension."""
        pos = np.unravel_index(cell, self.shape)
        return tuple(self.codes[d][int(p)] for d, p in enumerate(pos))

    @cached_property
    def is_total(self) -> BoolArray:
        """True for every cell with a (sub)total code in at least one dimension."""
        grids = np.indices(self.shape).reshape(len(self.shape), -1)
        out = np.zeros(self.n_cells, dtype=bool)
        for d, h in enumerate(self.hierarchies):
            parent_pos = np.array([self._positions[d][p] for p, _ in h], dtype=np.intp)
            out |= np.isin(grids[d], parent_pos)
        out.setflags(write=False)  # shared by every caller of this frozen model
        return out

    @property
    def inner_shape(self) -> tuple[int, ...]:
        """Number of non-parent codes per dimension."""
        return tuple(len(c) - len(h) for c, h in zip(self.codes, self.hierarchies, strict=True))

    # ----- relations ---------------------------------------------------------------------------
    @cached_property
    def _relations(self) -> tuple[sp.csr_matrix, tuple[tuple[int, Code, int], ...]]:
        """The CSR matrix and, per block of rows, (dimension, parent, first row)."""
        idx = np.arange(self.n_cells, dtype=np.intp).reshape(self.shape)
        rows, cols, vals, blocks = [], [], [], []
        n_rows = 0
        for d, h in enumerate(self.hierarchies):
            block = self.n_cells // self.shape[d]
            for parent, kids in h:
                row_ids = n_rows + np.arange(block, dtype=np.intp)
                terms = [(parent, 1.0)] + [(k, -1.0) for k in kids]
                for code, sign in terms:
                    rows.append(row_ids)
                    cols.append(np.take(idx, self._positions[d][code], axis=d).ravel())
                    vals.append(np.full(block, sign))
                blocks.append((d, parent, n_rows))
                n_rows += block
        if not blocks:
            return sp.csr_matrix((0, self.n_cells)), ()
        matrix = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_rows, self.n_cells),
        )
        return matrix, tuple(blocks)

    def constraints(self) -> sp.csr_matrix:
        """The relations as a sparse CSR matrix M (one row per relation, one column per cell)."""
        return self._relations[0]

    def describe_relation(self, row: int) -> str:
        """A one-line name for a relation: its dimension, parent and the other dimensions' codes."""
        blocks = self._relations[1]
        d, parent, start = max((b for b in blocks if b[2] <= row), key=lambda b: b[2])
        other_shape = self.shape[:d] + self.shape[d + 1 :]
        pos = np.unravel_index(row - start, other_shape) if other_shape else ()
        others = [
            self.codes[o][int(p)]
            for o, p in zip([o for o in range(len(self.shape)) if o != d], pos, strict=True)
        ]
        where = f" at {tuple(others)!r}" if others else ""
        return f"dimension {d}, {parent!r} = sum of its children{where}"

    def check_additive(self, values: npt.ArrayLike, tol: float = ADDITIVE_TOL) -> FloatArray:
        """Return the values as a flat float array if they satisfy M·a = 0.

        Raises InputError for the wrong number of values, non-finite values, or a relation
        violated by more than ``tol`` × max(1, max |a|), naming the first such relation."""
        a = self.as_cell_values(values)
        residual = np.abs(self.constraints() @ a)
        bad = np.flatnonzero(residual > tol * max(1.0, float(np.abs(a).max(initial=0.0))))
        if bad.size:
            raise InputError(f"table is not additive: {self.describe_relation(int(bad[0]))}")
        return a

    def as_cell_values(self, values: npt.ArrayLike) -> FloatArray:
        """The values as a flat float array over the cells; raises InputError if they do not fit."""
        a = np.asarray(values, dtype=np.float64).ravel()
        if a.shape[0] != self.n_cells:
            raise InputError(f"the table has {self.n_cells} cells but {a.shape[0]} values")
        if not np.isfinite(a).all():
            raise InputError("the table has missing or infinite values")
        return a

    def complete(self, inner: npt.ArrayLike) -> FloatArray:
        """All cell values (flat, row-major) from the inner cells (shape ``inner_shape``, in
        code order), with every total and subtotal summed up."""
        leaves = np.asarray(inner, dtype=np.float64)
        if leaves.shape != self.inner_shape:
            raise InputError(f"inner values have shape {leaves.shape}, not {self.inner_shape}")
        full = np.zeros(self.shape)
        leaf_pos = [
            np.array([i for c, i in self._positions[d].items() if c not in dict(h)], dtype=np.intp)
            for d, h in enumerate(self.hierarchies)
        ]
        full[np.ix_(*leaf_pos)] = leaves
        # Summing one dimension at a time (subtotals first) fills every cell: after dimension d,
        # every cell whose codes beyond d are leaves is final.
        for d, h in enumerate(self.hierarchies):
            view = np.moveaxis(full, d, 0)
            for parent, kids in _bottom_up(h):
                kid_pos = [self._positions[d][k] for k in kids]
                view[self._positions[d][parent]] = view[kid_pos].sum(axis=0)
        return full.ravel()
