"""Unsafe (low-count) cells in all sub-tables of the key variables, as sdcMicro's
``riskyCells()`` (spec §2.10).

For every combination of d key variables, d = 1..max_dim, the number of occupied cells of
their cross-table with an unweighted count <= threshold[d]. Missing values form a cell of
their own (sdcMicro groups with data.table, where NA is a group). With identification levels
(``level``) sdcMicro only uses the number of distinct levels as the maximal dimension and one
threshold for all tables (its mu-Argus level filtering is commented out); so does this module.
Cells are counted, not records.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from output_checker.microdata.risk._codes import combined_codes, frame_codes


def risky_cells(
    keys: pd.DataFrame,
    threshold: int | Sequence[int],
    *,
    max_dim: int | None = None,
    level: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Number of unsafe cells per combination of key variables.

    Give exactly one of ``max_dim`` (thresholds: one for all dimensions or one per dimension)
    or ``level`` (identification level per key variable, whole numbers > 0; one threshold).
    Returns one row per combination, dimension 1 first and combinations in ``itertools``
    order (as R's ``combn``), with columns ``dim1``..``dim<max_dim>`` (variable names, None
    beyond the combination's size), ``threshold`` and ``unsafe_cells``.
    """
    n_keys = keys.shape[1]
    if n_keys == 0:
        raise ValueError("riskyCells needs at least one key variable")
    thresholds = np.atleast_1d(np.asarray(threshold, dtype=np.float64))
    if thresholds.ndim != 1 or len(thresholds) == 0:
        raise ValueError("threshold must be a number or a list of numbers")
    if not np.all(np.isfinite(thresholds)) or not np.all(thresholds == np.round(thresholds)):
        raise ValueError("threshold must be whole numbers")
    dims = _max_dim(n_keys, thresholds, max_dim, level)
    if len(thresholds) == 1:
        thresholds = np.repeat(thresholds, dims)
    elif len(thresholds) != dims:
        raise ValueError(f"give one threshold or one per dimension ({dims})")

    codes, counts = frame_codes(keys)
    names = [str(c) for c in keys.columns]
    n = len(keys)
    rows: list[list[object]] = []
    for d in range(1, dims + 1):
        limit = thresholds[d - 1]
        for subset in combinations(range(n_keys), d):
            pattern, n_cells = combined_codes(
                [codes[v] for v in subset], [counts[v] for v in subset], n
            )
            cells = np.bincount(pattern, minlength=n_cells)
            unsafe = int(np.count_nonzero(cells <= limit))  # every cell here is occupied
            dim_names: list[object] = [names[v] for v in subset]
            rows.append([*dim_names, *([None] * (dims - d)), int(limit), unsafe])
    columns = [f"dim{i}" for i in range(1, dims + 1)] + ["threshold", "unsafe_cells"]
    return pd.DataFrame(rows, columns=columns)


def _max_dim(
    n_keys: int, thresholds: np.ndarray, max_dim: int | None, level: Sequence[int] | None
) -> int:
    """The largest table dimension, checking the max_dim / level arguments as sdcMicro does."""
    if (max_dim is None) == (level is None):
        raise ValueError("give exactly one of max_dim and level")
    if level is not None:
        levels = np.asarray(level, dtype=np.float64)
        if levels.shape != (n_keys,):
            raise ValueError("level needs one entry per key variable")
        if not np.all(levels == np.round(levels)) or not np.all(levels > 0):
            raise ValueError("level must be whole numbers > 0")
        if len(thresholds) != 1 or thresholds[0] < 1:
            raise ValueError("with level give a single threshold >= 1")
        return len(np.unique(levels))
    assert max_dim is not None
    if not 1 <= max_dim <= n_keys:
        raise ValueError(f"max_dim must be between 1 and the number of key variables ({n_keys})")
    return int(max_dim)
