"""The weighted Welch t-test of treated minus weighted comparison (spec 8.10).

Comparison weights are rescaled to sum to Kish's effective size n_eff = (sum w)^2 / sum w^2
before the test, so the comparison variance is divided by n_eff. Raw ATT weights sum to the
number of matched treated, which in radius mode would overstate the comparison group's
standard error (its n_eff can be far larger).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from enclave.datalab.errors import DataLabError
from enclave.datalab.matching import kish_n

ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """Treated mean minus weighted comparison mean, with its two-sided test and CI."""

    mean_treated: float
    mean_comparison: float
    treated_ci: tuple[float, float]
    comparison_ci: tuple[float, float]
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float
    degrees_of_freedom: float
    n_treated: int
    n_comparison: int
    effective_n: float
    alpha: float

    @property
    def significant(self) -> bool:
        """p < alpha (a NaN p-value, from a zero standard error, is not significant)."""
        return bool(self.p_value < self.alpha)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}


def weighted_welch(
    treated: np.ndarray,
    comparison: np.ndarray,
    comparison_weights: np.ndarray,
    *,
    alpha: float = ALPHA,
) -> Comparison:
    """Welch's t-test of ``treated`` (unweighted) against ``comparison`` weighted by
    ``comparison_weights`` rescaled to Kish's n_eff; people with weight 0 take no part."""
    x_t = np.asarray(treated, dtype="float64")
    x_c = np.asarray(comparison, dtype="float64")
    w = np.asarray(comparison_weights, dtype="float64")
    if x_c.shape != w.shape:
        raise DataLabError("comparison outcomes and weights differ in length")
    if not (0 < alpha < 1):
        raise DataLabError(f"alpha must be between 0 and 1, got {alpha}")
    if (w < 0).any() or not np.isfinite(w).all():
        raise DataLabError("comparison weights must be finite and non-negative")
    used = w > 0
    x_c, w = x_c[used], w[used]
    if not (np.isfinite(x_t).all() and np.isfinite(x_c).all()):
        raise DataLabError("outcomes must be finite for everyone analysed")
    n_eff = kish_n(w)
    if x_t.size < 2 or n_eff <= 1:
        raise DataLabError("a t-test needs two or more treated and an effective comparison n > 1")
    w = w * (n_eff / w.sum())
    treated_stats, comparison_stats = DescrStatsW(x_t), DescrStatsW(x_c, weights=w)
    compare = CompareMeans(treated_stats, comparison_stats)
    # A zero standard error (identical outcomes throughout) gives NaN, reported as such.
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic, p_value, df = compare.ttest_ind(usevar="unequal")
        low, high = compare.tconfint_diff(alpha=alpha, usevar="unequal")
        # each group's own interval, for the report's error bars
        treated_ci = treated_stats.tconfint_mean(alpha=alpha)
        comparison_ci = comparison_stats.tconfint_mean(alpha=alpha)
    mean_t = float(x_t.mean())
    mean_c = float(np.average(x_c, weights=w))
    return Comparison(
        mean_treated=mean_t,
        mean_comparison=mean_c,
        treated_ci=(float(treated_ci[0]), float(treated_ci[1])),
        comparison_ci=(float(comparison_ci[0]), float(comparison_ci[1])),
        difference=mean_t - mean_c,
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(p_value),
        statistic=float(statistic),
        degrees_of_freedom=float(df),
        n_treated=int(x_t.size),
        n_comparison=int(x_c.size),
        effective_n=float(n_eff),
        alpha=alpha,
    )
