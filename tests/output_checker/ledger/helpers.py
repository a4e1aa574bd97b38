"""Build ledger rows from small pandas frames, as the queue's worker will."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from output_checker.ledger import Aggregates, TableDefinition, table_aggregates


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
