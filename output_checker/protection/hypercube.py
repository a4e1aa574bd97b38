"""The hypercube start of the heuristic (§10.4): each primary's cheapest hypercube.

Each primary gets the cheapest hypercube around it: in every dimension where its code has
siblings (other children of the same parent), one sibling is chosen, and all 2^k corners are
suppressed. A hypercube prevents exact disclosure in the relations it spans, but not always
interval disclosure, and it leaves primaries on (sub)totals to the repair step.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt

from output_checker.protection.model import BoolArray, FloatArray, IntArray, TableModel
from output_checker.protection.problem import Problem

MAX_SIBLINGS = 64  # per dimension, the cheapest siblings a hypercube may use


def _siblings(model: TableModel) -> list[list[IntArray]]:
    """Per dimension and code position: positions of the other children of its parent."""
    out = []
    for d, codes in enumerate(model.codes):
        pos = {c: i for i, c in enumerate(codes)}
        per_code: list[IntArray] = [np.empty(0, dtype=np.intp) for _ in codes]
        for _, kids in model.hierarchies[d]:
            kid_pos = np.array([pos[k] for k in kids], dtype=np.intp)
            for k in kid_pos:
                if not per_code[k].size:  # a code under several parents uses the first
                    per_code[k] = kid_pos[kid_pos != k]
        out.append(per_code)
    return out


def _cheapest_hypercube(
    cost: FloatArray, corner: tuple[int, ...], siblings: list[IntArray]
) -> list[tuple[int, ...]] | None:
    """Cells of the cheapest hypercube with ``corner`` as one vertex (None if every choice
    meets an unsuppressible cell). ``cost`` is shaped like the table, 0 for cells already
    suppressed and inf for cells that may not be suppressed."""
    dims = [d for d, s in enumerate(siblings) if s.size]
    if not dims:
        return None
    choices = []
    for d in dims:  # keep the siblings that are cheapest along the primary's own line
        line: list[Any] = list(corner)
        line[d] = siblings[d]
        own = cost[tuple(line)]
        choices.append(siblings[d][np.argsort(own, kind="stable")[:MAX_SIBLINGS]])
    total = np.zeros([c.size for c in choices])
    for flip in itertools.product([False, True], repeat=len(dims)):
        index: list[npt.NDArray[np.intp]] = [np.array([c]) for c in corner]
        for k, d in enumerate(dims):
            if flip[k]:
                index[d] = choices[k]
        total = total + cost[np.ix_(*index)].reshape(
            [c.size if f else 1 for c, f in zip(choices, flip, strict=True)]
        )
    best = np.unravel_index(int(np.argmin(total)), total.shape)
    if not np.isfinite(total[best]):
        return None
    cells = []
    for flip in itertools.product([False, True], repeat=len(dims)):
        cell = list(corner)
        for k, d in enumerate(dims):
            if flip[k]:
                cell[d] = int(choices[k][best[k]])
        cells.append(tuple(cell))
    return cells


def hypercube_start(p: Problem) -> BoolArray:
    """The primaries plus, for each primary in turn, its cheapest hypercube (cells already
    suppressed cost nothing, so later hypercubes reuse earlier ones)."""
    model = p.model
    x = p.primary.copy()
    siblings = _siblings(model)
    base = np.where(p.allowed, p.costs, np.inf)
    for cell in np.flatnonzero(p.primary):
        corner = tuple(int(i) for i in np.unravel_index(int(cell), model.shape))
        cost = np.where(x, 0.0, base).reshape(model.shape)
        sib = [siblings[d][corner[d]] for d in range(len(corner))]
        cube = _cheapest_hypercube(cost, corner, sib)
        if cube is not None:
            x[np.ravel_multi_index(tuple(np.array(cube).T), model.shape)] = True
    return x
