"""Noise addition to continuous variables, as sdcMicro's ``addNoise`` (spec §2.12).

Methods: ``additive`` (x + N(0, (noise/100 sd)^2) per variable), ``additive0`` (the same but zeros
stay zero), ``correlated`` (x + MVN(0, noise/100 Cov) over complete records' covariance),
``correlated2`` (x sqrt(1-d^2) + d N(mean shift, sd), keeping means and variances in expectation)
and ``restr`` (deterministic c x + (1-c) mean). ROMM and ``outdect`` are not implemented.
Standard deviations and covariances use n-1 and skip missing values; missing values stay missing.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

Seed = int | np.random.Generator | None
NoiseMethod = Literal["additive", "additive0", "correlated", "correlated2", "restr"]
# sdcMicro switches the restricted-noise constant at this number of records.
_RESTR_SMALL_N = 500


def restricted_factor(n: int, noise: float) -> float:
    """The ``restr`` shrinkage c for N records and w = noise/100.

    sqrt((N-1-w)/((N+1)(1+w))) below 500 records, else sqrt((N-1)/(N+Nw-1)).
    """
    w = noise / 100.0
    if n < _RESTR_SMALL_N:
        return float(np.sqrt((n - 1 - w) / ((n + 1) * (1 + w))))
    return float(np.sqrt((n - 1) / (n + n * w - 1)))


def add_noise(
    df: pd.DataFrame,
    variables: Sequence[Hashable],
    method: NoiseMethod = "additive",
    noise: float = 150.0,
    delta: float = 0.1,
    seed: Seed = None,
) -> pd.DataFrame:
    """A copy of ``df`` with noise added to ``variables``.

    ``noise`` is in percent (of the standard deviation or covariance); ``delta`` is for correlated2.
    """
    variables = list(variables)
    absent = [v for v in variables if v not in df.columns]
    if absent:
        raise ValueError(f"variables not in the data: {absent!r}")
    if not variables:
        raise ValueError("'variables' must name at least one column")
    if noise < 0:
        raise ValueError("'noise' must be non-negative")
    if not 0 < delta < 1:
        raise ValueError("'delta' must lie in (0, 1)")
    X = df[variables].apply(pd.to_numeric, errors="raise").to_numpy(dtype=float)
    n, p = X.shape
    rng = np.random.default_rng(seed)
    sd = np.nanstd(X, axis=0, ddof=1) if n > 1 else np.zeros(p)
    if method in ("additive", "additive0"):
        eps = rng.standard_normal((n, p)) * (noise / 100.0 * np.nan_to_num(sd))
        if method == "additive0":
            eps[X == 0] = 0.0
        Xm = X + eps
    elif method == "correlated":
        if p < 2:
            raise ValueError("method 'correlated' needs at least 2 variables")
        complete = X[~np.isnan(X).any(axis=1)]
        if complete.shape[0] < 2:
            raise ValueError("method 'correlated' needs at least 2 complete records")
        cov = np.cov(complete, rowvar=False) * (noise / 100.0)
        Xm = X + rng.multivariate_normal(np.zeros(p), cov, size=n, method="eigh")
    elif method == "correlated2":
        d1 = np.sqrt(1.0 - delta**2)
        mean_shift = (1.0 - d1) / delta * np.nanmean(X, axis=0)
        Xm = X * d1 + delta * (mean_shift + rng.standard_normal((n, p)) * np.nan_to_num(sd))
    elif method == "restr":
        c = restricted_factor(n, noise)
        Xm = c * X + (1.0 - c) * np.nanmean(X, axis=0)
    else:
        raise ValueError(f"unknown noise method {method!r}")
    out = df.copy()
    for j, name in enumerate(variables):
        out[name] = Xm[:, j]
    return out
