"""Rank swapping of continuous variables (after sdcMicro's ``rankSwap``, spec §2.12).

Per variable, as sdcMicro's C++: sort the present values from largest to smallest; replace the
largest ``top_percent`` % and the smallest ``bottom_percent`` % by their group means (these are not
swapped); then swap the remaining values in pairs whose ranks differ by less than P·m (m = number
of remaining values). P is given directly (``p``, in percent of m) or derived from ``r0``
(correlation preservation: P = sqrt(2·Var·(1-R0))/Δ) or ``k0`` (subset-mean preservation:
P = sqrt(8/3)·K0·|mean|/Δ), with Var and mean of the remaining values and Δ the distance between
the top- and bottom-coding boundary values. Without any of them R0 = 0.95, as in sdcMicro.

Difference from sdcMicro: its C++ pairs records greedily from the top, each with a random
unswapped record within the window below it (a sequential loop). Here the pairing is vectorised:
the ranks are cut into consecutive blocks of width floor(P·m) at a random offset and each block is
paired at random (an odd block leaves one record unswapped). The rank-distance bound is the same.
Missing values are never swapped.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

Seed = int | np.random.Generator | None
DEFAULT_R0 = 0.95


def _window_share(
    middle: np.ndarray, delta_value: float, p: float | None, r0: float | None, k0: float | None
) -> float:
    """The rank window P as a share of the swappable values (sdcMicro's conversion of R0/K0)."""
    if p is not None:
        return p / 100.0
    if delta_value == 0 or middle.size == 0:
        return 0.0
    mean = middle.mean()
    if r0 is not None:
        variance = (middle * middle).mean() - mean * mean
        return float(np.sqrt(max(2.0 * variance * (1.0 - r0), 0.0)) / delta_value)
    assert k0 is not None
    return float(np.sqrt(8.0 / 3.0) * k0 * abs(mean) / delta_value)


def _pair_in_blocks(m: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of 0..m-1 pairing ranks at random within blocks of ``width`` ranks."""
    partner = np.arange(m)
    if width < 2 or m < 2:
        return partner
    offset = int(rng.integers(0, width))
    block = (np.arange(m) + offset) // width
    order = np.lexsort((rng.random(m), block))  # ranks grouped by block, shuffled within
    block_sorted = block[order]
    starts = np.searchsorted(block_sorted, block_sorted, side="left")
    ends = np.searchsorted(block_sorted, block_sorted, side="right")
    slot = np.arange(m) - starts  # position within the block's shuffled list
    mate = np.where(slot % 2 == 0, np.arange(m) + 1, np.arange(m) - 1)
    paired = mate < ends  # the last of an odd block has no mate
    partner[order[paired]] = order[mate[paired]]
    return partner


def rank_swap_values(
    x: np.ndarray,
    rng: np.random.Generator,
    p: float | None = None,
    r0: float | None = None,
    k0: float | None = None,
    top_percent: float = 5.0,
    bottom_percent: float = 5.0,
) -> np.ndarray:
    """Rank-swap one variable (see the module docstring); returns a new float array."""
    out = np.asarray(x, dtype=float).copy()
    present = np.flatnonzero(~np.isnan(out))
    n_present = present.size
    if n_present == 0:
        return out
    order = present[np.argsort(-out[present], kind="stable")]  # largest first
    values = out[order]
    # Counts as the C++ computes them: float32 ratios of the number of present values.
    n_top = int(np.float32(n_present) * np.float32(top_percent * 0.01))
    n_bottom = int(np.floor(np.float32(n_present) * np.float32(bottom_percent * 0.01)))
    n_top = min(n_top, n_present)
    n_bottom = min(n_bottom, n_present - n_top)
    bottom_start = n_present - n_bottom
    top_value = values[n_top - 1] if n_top else values[0]
    bottom_value = values[bottom_start] if n_bottom else values[bottom_start - 1]
    middle = values[n_top:bottom_start]
    share = _window_share(middle, abs(bottom_value - top_value), p, r0, k0)
    width = int(np.floor(middle.size * share))
    swapped = middle[_pair_in_blocks(middle.size, width, rng)]
    new_values = np.concatenate(
        [
            np.full(n_top, values[:n_top].mean() if n_top else 0.0),
            swapped,
            np.full(n_bottom, values[bottom_start:].mean() if n_bottom else 0.0),
        ]
    )
    out[order] = new_values
    return out


def rank_swap(
    df: pd.DataFrame,
    variables: Sequence[Hashable],
    p: float | None = None,
    top_percent: float = 5.0,
    bottom_percent: float = 5.0,
    seed: Seed = None,
    r0: float | None = None,
    k0: float | None = None,
) -> pd.DataFrame:
    """A copy of ``df`` with each of ``variables`` rank-swapped on its own.

    Give at most one of ``p`` (rank range in percent), ``r0`` and ``k0``; none means R0 = 0.95.
    """
    variables = list(variables)
    absent = [v for v in variables if v not in df.columns]
    if absent:
        raise ValueError(f"variables not in the data: {absent!r}")
    given = [name for name, v in (("p", p), ("r0", r0), ("k0", k0)) if v is not None]
    if len(given) > 1:
        raise ValueError("give only one of 'p', 'r0' and 'k0'")
    if not given:
        r0 = DEFAULT_R0
    if p is not None and not 0 <= p <= 100:
        raise ValueError("'p' must lie in [0, 100]")
    if r0 is not None and not 0 <= r0 <= 1:
        raise ValueError("'r0' must lie in [0, 1]")
    if k0 is not None and k0 < 0:
        raise ValueError("'k0' must be non-negative")
    if not (0 <= top_percent <= 100 and 0 <= bottom_percent <= 100):
        raise ValueError("'top_percent' and 'bottom_percent' must lie in [0, 100]")
    rng = np.random.default_rng(seed)
    out = df.copy()
    for name in variables:
        column = pd.to_numeric(df[name], errors="raise").to_numpy(dtype=float, na_value=np.nan)
        out[name] = rank_swap_values(column, rng, p, r0, k0, top_percent, bottom_percent)
    return out
