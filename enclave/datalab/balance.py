"""Covariate balance before and after matching (spec 8.8).

SMD = (treated mean - comparison mean) / pooled SD, where the pooled SD is always the
pre-matching one, sqrt((var_t + var_c) / 2), so that before and after share one yardstick.
After matching the treated mean is over the matched treated and the comparison mean is
weighted by the ATT weights. The bands and the publication block are the enclave's choices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from enclave.datalab.errors import DataLabError

GOOD = 0.05
ACCEPTABLE = 0.10
"""|SMD| above this after matching blocks publication."""


def rating(smd: float) -> str:
    """good (|SMD| < 0.05), acceptable (0.05 to 0.10) or poor (> 0.10)."""
    size = abs(smd)
    if size < GOOD:
        return "good"
    return "acceptable" if size <= ACCEPTABLE else "poor"


def _weighted_means(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    total = weights.sum()
    if total <= 0:
        raise DataLabError("the weighted comparison group is empty")
    return np.asarray(weights @ x / total)


def _smd(difference: np.ndarray, pooled_sd: np.ndarray) -> np.ndarray:
    """A constant covariate (pooled SD 0) is balanced when the means agree, else infinitely
    imbalanced."""
    with np.errstate(divide="ignore", invalid="ignore"):
        smd = difference / pooled_sd
    constant = pooled_sd == 0
    smd[constant] = np.where(difference[constant] == 0, 0.0, np.inf)
    return np.asarray(smd)


@dataclass(frozen=True, eq=False)
class Balance:
    """One row per covariate column (categoricals: one per level)."""

    table: pd.DataFrame

    @property
    def max_abs_before(self) -> float:
        return float(self.table["smd_before"].abs().max())

    @property
    def max_abs_after(self) -> float:
        return float(self.table["smd_after"].abs().max())

    @property
    def publishable(self) -> bool:
        """False when any |SMD| after matching exceeds 0.10."""
        return bool((self.table["smd_after"].abs() <= ACCEPTABLE).all())

    @property
    def poor_after(self) -> list[str]:
        """Covariates that block publication."""
        return [str(c) for c in self.table.index[self.table["smd_after"].abs() > ACCEPTABLE]]


def balance(
    treated: pd.DataFrame,
    comparison: pd.DataFrame,
    treated_matched: np.ndarray,
    comparison_weights: np.ndarray,
) -> Balance:
    """SMDs before and after matching for every column of two numeric frames with the same
    columns (``propensity.encode(...).levels`` gives them)."""
    if list(treated.columns) != list(comparison.columns):
        raise DataLabError("treated and comparison covariates differ")
    if len(treated) < 2 or len(comparison) < 2:
        raise DataLabError("balance needs at least two treated and two comparison people")
    x_t = treated.to_numpy(dtype="float64")
    x_c = comparison.to_numpy(dtype="float64")
    mean_t = x_t.mean(axis=0)
    mean_c = x_c.mean(axis=0)
    pooled = np.sqrt((x_t.var(axis=0, ddof=1) + x_c.var(axis=0, ddof=1)) / 2)
    matched = np.asarray(treated_matched, dtype=bool)
    if not matched.any():
        raise DataLabError("no treated person was matched")
    mean_t_after = x_t[matched].mean(axis=0)
    mean_c_after = _weighted_means(x_c, np.asarray(comparison_weights, dtype="float64"))
    smd_before = _smd(mean_t - mean_c, pooled)
    smd_after = _smd(mean_t_after - mean_c_after, pooled)
    table = pd.DataFrame(
        {
            "mean_treated_before": mean_t,
            "mean_comparison_before": mean_c,
            "mean_treated_after": mean_t_after,
            "mean_comparison_after": mean_c_after,
            "pooled_sd": pooled,
            "smd_before": smd_before,
            "smd_after": smd_after,
            "rating_before": [rating(s) for s in smd_before],
            "rating_after": [rating(s) for s in smd_after],
        },
        index=pd.Index(treated.columns, name="covariate"),
    )
    return Balance(table)
