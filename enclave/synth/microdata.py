"""Synthetic person-level microdata: Zipf-weighted categories, lognormal income, entities.

The frame is built from whole numpy arrays (no Python loop per row), so millions of rows take
a second or two and little memory beyond the frame itself: categories are stored as int8 codes
of a pandas Categorical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd

CATEGORY_COLUMNS = ("cat_a", "cat_b", "cat_c")
_INCOME_LOG_MEAN = 10.0  # median income about 22,000
_INCOME_LOG_SIGMA = 1.0
_CHUNK = 1 << 20


def zipf_weights(n_levels: int, zipf_s: float) -> npt.NDArray[np.float64]:
    """Probabilities of levels 0..n_levels-1, proportional to 1 / (rank ** zipf_s)."""
    raw = 1.0 / np.arange(1, n_levels + 1, dtype=np.float64) ** zipf_s
    weights: npt.NDArray[np.float64] = raw / raw.sum()
    return weights


def level_labels(prefix: str, n_levels: int) -> list[str]:
    """Labels "a00", "a01", ... zero-padded to at least two digits."""
    width = max(2, len(str(n_levels - 1)))
    return [f"{prefix}{i:0{width}d}" for i in range(n_levels)]


def generate(
    n_rows: int,
    *,
    seed: int = 0,
    n_levels: int = 10,
    rows_per_entity: float = 2.0,
    zipf_s: float = 1.1,
) -> pd.DataFrame:
    """A deterministic synthetic frame of ``n_rows`` rows for a given ``seed``.

    Columns: ``cat_a``, ``cat_b``, ``cat_c`` (Categoricals over ``n_levels`` levels labelled
    "a00".., "b00".., "c00".., level k drawn with probability proportional to 1/(k+1)**zipf_s,
    so "a00" is the most frequent), ``income`` (lognormal float64) and ``entity_id`` (int64).
    There are exactly ``round(n_rows / rows_per_entity)`` distinct entities (at least one);
    each has at least one row and the remaining rows are spread uniformly over them, so with
    the default 2.0 about 63% of entities have several rows.

    Raises:
        ValueError: a negative ``n_rows``, ``n_levels`` outside 1..127 (codes are int8),
            ``rows_per_entity`` below 1 or a negative ``zipf_s``.
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be non-negative, got {n_rows}")
    if n_levels < 1 or n_levels > 127:
        raise ValueError(f"n_levels must be between 1 and 127, got {n_levels}")
    if not rows_per_entity >= 1.0:
        raise ValueError(f"rows_per_entity must be at least 1, got {rows_per_entity}")
    if not zipf_s >= 0.0:
        raise ValueError(f"zipf_s must be non-negative, got {zipf_s}")
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(zipf_weights(n_levels, zipf_s))
    cdf[-1] = 1.0  # guard against rounding leaving a draw above the last bin
    columns: dict[str, object] = {}
    for name in CATEGORY_COLUMNS:
        codes = _zipf_codes(rng, cdf, n_rows)
        # pandas-stubs type codes as Sequence[int]; an int8 array is what keeps the frame small
        columns[name] = pd.Categorical.from_codes(
            cast("Sequence[int]", codes), categories=pd.Index(level_labels(name[-1], n_levels))
        )
    columns["income"] = rng.lognormal(_INCOME_LOG_MEAN, _INCOME_LOG_SIGMA, n_rows)
    columns["entity_id"] = _entities(rng, n_rows, rows_per_entity)
    return pd.DataFrame(columns, copy=False)


def _zipf_codes(
    rng: np.random.Generator, cdf: npt.NDArray[np.float64], n_rows: int
) -> npt.NDArray[np.int8]:
    """Level codes by inverse-CDF sampling, in chunks so temporaries stay small.

    Uniform doubles come off the generator in sequence, so the codes do not depend on the
    chunk size.
    """
    codes = np.empty(n_rows, dtype=np.int8)
    for start in range(0, n_rows, _CHUNK):
        stop = min(start + _CHUNK, n_rows)
        codes[start:stop] = np.searchsorted(cdf, rng.random(stop - start), side="right")
    return codes


def _entities(
    rng: np.random.Generator, n_rows: int, rows_per_entity: float
) -> npt.NDArray[np.int64]:
    """Entity ids for ``n_rows`` rows: every entity once, the rest uniform, then shuffled."""
    if n_rows == 0:
        return np.zeros(0, dtype=np.int64)
    n_entities = min(n_rows, max(1, round(n_rows / rows_per_entity)))
    ids = np.empty(n_rows, dtype=np.int64)
    ids[:n_entities] = np.arange(n_entities, dtype=np.int64)
    ids[n_entities:] = rng.integers(0, n_entities, n_rows - n_entities, dtype=np.int64)
    rng.shuffle(ids)
    return ids
