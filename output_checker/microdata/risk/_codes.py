"""Integer codes for categorical key columns and their combinations (shared by l-diversity,
SUDA2 and riskyCells).

Values are compared by value (each column factorised); every missing value (NaN, None, pd.NA)
of a column shares one extra code, so missing is a category of its own and NA == NA.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# Largest product of category counts kept as a mixed-radix int64 before re-factorising.
_RADIX_LIMIT = 2**62


def column_codes(column: pd.Series) -> tuple[np.ndarray, int, np.ndarray]:
    """Dense int64 codes of one column, the number of codes, and the missing mask.

    Codes 0..k-1 number the distinct non-missing values; missing values get code k (only when
    some value is missing, so the count is k or k + 1).
    """
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    missing = codes < 0
    n_codes = len(uniques)
    if missing.any():
        codes[missing] = n_codes
        n_codes += 1
    return codes, n_codes, missing


def frame_codes(keys: pd.DataFrame) -> tuple[list[np.ndarray], list[int]]:
    """Codes and code counts of every column of ``keys`` (see :func:`column_codes`)."""
    codes: list[np.ndarray] = []
    counts: list[int] = []
    for name in keys.columns:
        c, k, _ = column_codes(keys[name])
        codes.append(c)
        counts.append(k)
    return codes, counts


def _compact(key: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Renumber the values of ``key`` (all in [0, size)) to 0..G-1; G = number present."""
    n = len(key)
    if size <= 4 * n + 1024:
        # Small code space: a presence table is cheaper than hashing.
        present = np.zeros(size, dtype=bool)
        present[key] = True
        remap = np.cumsum(present, dtype=np.int64) - 1
        return remap[key], int(present.sum())
    dense, uniques = pd.factorize(key)
    return np.asarray(dense, dtype=np.int64), len(uniques)


def combined_codes(
    codes: Sequence[np.ndarray], counts: Sequence[int], n: int
) -> tuple[np.ndarray, int]:
    """Dense pattern ids (0..G-1) of the records over the given columns, and G.

    With no columns every record has the same (empty) pattern.
    """
    if not codes:
        return np.zeros(n, dtype=np.int64), (1 if n else 0)
    key = codes[0].astype(np.int64, copy=True)
    size = max(int(counts[0]), 1)
    for c, k in zip(codes[1:], counts[1:], strict=True):
        k = max(int(k), 1)
        if size * k >= _RADIX_LIMIT:
            # Keep the mixed-radix key inside int64 by renumbering what is present so far.
            key, size = _compact(key, size)
        key = key * k + c
        size *= k
    return _compact(key, size)
