"""Build ledger rows from small pandas frames, as the queue's worker will, random releases,
and the attacker's exact interval from scipy's linprog."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse
from scipy.optimize import linprog

from output_checker.ledger import (
    COUNT,
    Aggregates,
    Kind,
    Quantity,
    TableDefinition,
    stack,
    table_aggregates,
)

# the a-priori bounds of random histories: counts from 0 up, values of x within 0..9
RANDOM_BOUNDS = {COUNT: (0.0, np.inf), Quantity(Kind.SUM, "x"): (0.0, 9.0)}


def table(
    output: str,
    frame: pd.DataFrame,
    index: Sequence[str],
    columns: Sequence[str] = (),
    *,
    n_entities: int,
    margins: bool = False,
    values: str | None = None,
) -> Aggregates:
    """The published cells of a crosstab of ``frame`` (entity column ``id``, 0..n-1)."""
    definition, codes = crosstab(output, frame, index, columns, margins=margins)
    return table_aggregates(
        definition,
        frame["id"].to_numpy(),
        codes,
        n_entities,
        values=None if values is None else frame[values].to_numpy(dtype=np.float64),
        measure=values,
    )


def crosstab(
    output: str,
    frame: pd.DataFrame,
    index: Sequence[str],
    columns: Sequence[str] = (),
    *,
    margins: bool = False,
) -> tuple[TableDefinition, list[npt.NDArray[np.intp]]]:
    """The definition of a crosstab of ``frame`` and each record's level codes."""
    variables = (*index, *columns)
    codes, levels = [], []
    for name in variables:
        code, uniques = pd.factorize(frame[name], sort=True)
        codes.append(code)
        levels.append(tuple(uniques.tolist()))
    definition = TableDefinition(output, variables, tuple(levels), len(index), margins=margins)
    return definition, codes


def clients(ages: Sequence[int], regions: Sequence[str] | None = None) -> pd.DataFrame:
    """One record per client, ids 0..n-1, with income 1000 + 10·id."""
    n = len(ages)
    frame = pd.DataFrame({"id": np.arange(n), "age": list(ages), "everyone": "all"})
    frame["income"] = 1000.0 + 10.0 * frame["id"]
    if regions is not None:
        frame["region"] = list(regions)
    return frame


def random_release(
    rng: np.random.Generator, name: str, x: np.ndarray, with_sums: bool
) -> Aggregates:
    """A random one- or two-way table with or without margins, over a random subset of the
    entities (one record each), as counts and, if asked, sums of ``x``."""
    n = x.shape[0]
    members = np.flatnonzero(rng.random(n) < 0.7)
    n_vars = int(rng.integers(1, 3))
    sizes = [int(rng.integers(2, 4)) for _ in range(n_vars)]
    definition = TableDefinition(
        name,
        tuple(f"v{d}" for d in range(n_vars)),
        tuple(tuple(range(s)) for s in sizes),
        n_index=1,
        margins=bool(rng.random() < 0.5),
    )
    codes = [rng.integers(0, s, members.shape[0]) for s in sizes]
    parts = [table_aggregates(definition, members, codes, n)]
    if with_sums:
        parts.append(table_aggregates(definition, members, codes, n, x[members], "x"))
    return stack(parts)


def random_history(
    rng: np.random.Generator, n_entities: int, max_releases: int
) -> tuple[Aggregates, Aggregates, npt.NDArray[np.bool_]]:
    """Up to ``max_releases`` random releases (the first with sums of x too), a new random
    release with sums, and a random 40% of the new rows hidden; x is 0..7 per entity."""
    x = rng.integers(0, 8, n_entities).astype(np.float64)
    count = int(rng.integers(1, max_releases + 1))
    released = stack([random_release(rng, f"r{k}", x, k == 0) for k in range(count)])
    new = random_release(rng, "new", x, True)
    return released, new, rng.random(new.n_rows) < 0.4


def exact_interval(
    ledger: Aggregates,
    published: npt.NDArray[np.bool_],
    row_lo: npt.NDArray[np.float64],
    row_hi: npt.NDArray[np.float64],
    row: int,
) -> tuple[float, float]:
    """:func:`linprog_interval` of ``ledger``'s row ``row`` over the rows of its quantity,
    within :data:`RANDOM_BOUNDS`."""
    same = ledger.quantity_of == ledger.quantity_of[row]
    return linprog_interval(
        ledger.weights[np.flatnonzero(same)],
        published[same],
        row_lo[same],
        row_hi[same],
        int(same[:row].sum()),
        RANDOM_BOUNDS[ledger.quantities[ledger.quantity_of[row]]],
    )


def linprog_interval(
    weights: sparse.csr_matrix,
    published: np.ndarray,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    target: int,
    bounds: tuple[float, float],
) -> tuple[float, float]:
    """The attacker's interval from scipy's linprog over every entity and every published row
    of the quantity: no atoms, no components, no warm start."""
    # contributors by position: an entity contributing 0 to a sum is still one
    pattern = sparse.csr_matrix(
        (np.ones(weights.nnz), weights.indices, weights.indptr), shape=weights.shape
    )
    cost = pattern[target].toarray().ravel()
    exact = published & (row_lo == row_hi)
    ranged = published & (row_lo < row_hi)
    a_ub = sparse.vstack([pattern[ranged], -pattern[ranged]]).tocsr()
    b_ub = np.concatenate([row_hi[ranged], -row_lo[ranged]])
    ends = []
    for sign in (1.0, -1.0):
        result = linprog(
            sign * cost,
            A_ub=a_ub if ranged.any() else None,
            b_ub=b_ub if ranged.any() else None,
            A_eq=pattern[exact] if exact.any() else None,
            b_eq=row_lo[exact] if exact.any() else None,
            bounds=bounds,
            method="highs",
        )
        assert result.status in (0, 3)
        ends.append(-sign * np.inf if result.status == 3 else sign * float(result.fun))
    return ends[0], ends[1]
