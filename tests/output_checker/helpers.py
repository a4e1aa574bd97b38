"""Small builders shared by the checker tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from output_checker import Parameters, check_table


def one_cell(
    values: Sequence[float],
    *,
    entities: Sequence[object] | None = None,
    weights: Sequence[float] | None = None,
    params: Parameters | None = None,
    conventions: str = "default",
    aggfunc: str = "sum",
) -> dict[str, Any]:
    """Check a one-cell magnitude table holding ``values``; return that cell's record."""
    frame = pd.DataFrame({"group": "g", "value": list(values)})
    if entities is not None:
        frame["person"] = list(entities)
    if weights is not None:
        frame["weight"] = list(weights)
    result = check_table(
        frame,
        "group",
        values="value",
        aggfunc=aggfunc,
        entity="person" if entities is not None else None,
        weights="weight" if weights is not None else None,
        conventions=conventions,
        parameters=params,
    )
    [cell] = result.to_dict()["cells"]
    return cell


def counts_frame(rows: dict[str, Sequence[int]], columns: Sequence[str]) -> pd.DataFrame:
    """Microdata whose crosstab(row, col) has the given counts."""
    records = [
        (row, col)
        for row, counts in rows.items()
        for col, count in zip(columns, counts, strict=True)
        for _ in range(count)
    ]
    frame = pd.DataFrame(records, columns=["row", "col"])
    # keep every column level even where all its counts are zero
    frame["col"] = pd.Categorical(frame["col"], categories=list(columns))
    return frame
