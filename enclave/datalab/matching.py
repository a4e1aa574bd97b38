"""Common support, caliper matching on logit(PS) with replacement, and ATT weights
(spec 8.5-8.7).

Matching is a sorted one-dimensional search: the comparison scores are sorted once and each
treated person's caliper window is found with ``np.searchsorted``, so the cost is
O((n_t + n_c) log n_c) and memory O(n_t k + n_c). No n_t x n_c distance matrix is built,
which is what lets a pool of millions match in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from enclave.datalab.errors import DataLabError

Mode = Literal["radius", "nearest"]

CALIPER_SD = 0.2
"""The enclave's choice (Austin 2011): caliper = 0.2 x pooled SD of logit(PS)."""


def caliper_width(
    logit_treated: np.ndarray, logit_comparison: np.ndarray, factor: float = CALIPER_SD
) -> float:
    """``factor`` x the pooled SD of logit(PS), sqrt((var_t + var_c) / 2), over everyone the
    model was fitted on (before common support)."""
    if factor <= 0:
        raise DataLabError(f"caliper factor must be positive, got {factor}")
    if len(logit_treated) < 2 or len(logit_comparison) < 2:
        raise DataLabError("a caliper needs at least two treated and two comparison people")
    pooled = np.sqrt((np.var(logit_treated, ddof=1) + np.var(logit_comparison, ddof=1)) / 2)
    return float(factor * pooled)


def on_common_support(logit_treated: np.ndarray, logit_comparison: np.ndarray) -> np.ndarray:
    """Treated people whose score lies within the comparison pool's min-max range (logit is
    monotone, so this is the same rule as on the PS scale)."""
    low, high = np.min(logit_comparison), np.max(logit_comparison)
    return np.asarray((logit_treated >= low) & (logit_treated <= high))


@dataclass(frozen=True, eq=False)
class Matching:
    """The matched sample and its ATT weights.

    ``comparison_weights[j]`` is sum over the treated people i that comparison person j serves
    of 1/m_i, where m_i is the size of i's matched set; they sum to ``matched``. A treated
    person is matched (weight 1) when on common support with at least one comparison person
    inside the caliper.
    """

    mode: Mode
    k: int
    caliper: float
    treated_matched: np.ndarray
    treated_on_support: np.ndarray
    matched_set_sizes: np.ndarray
    comparison_weights: np.ndarray

    @property
    def treated(self) -> int:
        return int(self.treated_on_support.size)

    @property
    def off_support(self) -> int:
        return int((~self.treated_on_support).sum())

    @property
    def unmatched(self) -> int:
        """On common support but with nobody inside the caliper."""
        return int((self.treated_on_support & ~self.treated_matched).sum())

    @property
    def matched(self) -> int:
        return int(self.treated_matched.sum())

    @property
    def comparison_used(self) -> int:
        """Comparison people with a non-zero weight."""
        return int((self.comparison_weights > 0).sum())

    @property
    def effective_comparison(self) -> float:
        """Kish's effective sample size of the weighted comparison group."""
        return kish_n(self.comparison_weights)

    @property
    def treated_weights(self) -> np.ndarray:
        return self.treated_matched.astype("float64")


def kish_n(weights: np.ndarray) -> float:
    """(sum w)^2 / sum w^2; 0 for no positive weight."""
    total = float(np.sum(weights))
    squares = float(np.sum(np.square(weights)))
    return total * total / squares if squares > 0 else 0.0


def _radius(
    sorted_scores: np.ndarray, targets: np.ndarray, caliper: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per target: set size m_i and the weight of every sorted position, every comparison
    score within the caliper taking 1/m_i (added over targets by a difference array)."""
    low = np.searchsorted(sorted_scores, targets - caliper, side="left")
    high = np.searchsorted(sorted_scores, targets + caliper, side="right")
    sizes = high - low
    served = sizes > 0
    share = np.zeros(len(targets))
    share[served] = 1.0 / sizes[served]
    n = len(sorted_scores)
    step = np.bincount(low, share, n + 1) - np.bincount(high, share, n + 1)
    cover = np.bincount(low, minlength=n + 1) - np.bincount(high, minlength=n + 1)
    weights = np.cumsum(step[:n])
    # Rounding in the running sum leaves ~1e-17 where no window reaches: the integer cover
    # count says where the weight is truly zero.
    weights[np.cumsum(cover[:n]) == 0] = 0.0
    return sizes, weights


def _nearest(
    sorted_scores: np.ndarray, targets: np.ndarray, caliper: float, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per target: the k nearest sorted positions within the caliper (with replacement).

    The k nearest all lie among the k positions either side of the insertion point, so only
    an n_t x 2k candidate block is examined. Ties go to the lower sorted position.
    """
    n = len(sorted_scores)
    insert = np.searchsorted(sorted_scores, targets)
    candidates = insert[:, None] + np.arange(-k, k)[None, :]
    inside = (candidates >= 0) & (candidates < n)
    clipped = np.clip(candidates, 0, n - 1)
    distance = np.abs(sorted_scores[clipped] - targets[:, None])
    distance[~inside | (distance > caliper)] = np.inf
    order = np.argsort(distance, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(clipped, order, axis=1)
    usable = np.isfinite(np.take_along_axis(distance, order, axis=1))
    sizes = usable.sum(axis=1)
    share = np.zeros(len(targets))
    served = sizes > 0
    share[served] = 1.0 / sizes[served]
    weights = np.bincount(
        chosen[usable], np.broadcast_to(share[:, None], chosen.shape)[usable], minlength=n
    )
    return sizes, weights


def check_mode(mode: str, k: int) -> None:
    """Refuse an unknown matching mode or a k below 1 (before any expensive step)."""
    if mode not in ("radius", "nearest"):
        raise DataLabError(f"matching mode must be 'radius' or 'nearest', got {mode!r}")
    if mode == "nearest" and k < 1:
        raise DataLabError(f"nearest-neighbour matching needs k >= 1, got {k}")


def match(
    logit_treated: np.ndarray,
    logit_comparison: np.ndarray,
    *,
    caliper: float,
    mode: Mode = "radius",
    k: int = 1,
) -> Matching:
    """Match treated to comparison people on logit(PS) with replacement within ``caliper``.

    ``mode="radius"`` (the default) takes every comparison person inside the caliper;
    ``mode="nearest"`` takes the ``k`` nearest inside it (fewer where fewer are inside).
    Treated people off common support are dropped before matching.
    """
    treated = np.asarray(logit_treated, dtype="float64")
    comparison = np.asarray(logit_comparison, dtype="float64")
    if comparison.size == 0:
        raise DataLabError("the comparison pool is empty")
    if not (np.isfinite(treated).all() and np.isfinite(comparison).all()):
        raise DataLabError("propensity scores must be finite")
    if not caliper > 0:
        raise DataLabError(f"caliper must be positive, got {caliper}")
    check_mode(mode, k)
    support = on_common_support(treated, comparison)
    order = np.argsort(comparison, kind="stable")
    sorted_scores = comparison[order]
    sizes = np.zeros(treated.size, dtype="int64")
    if mode == "radius":
        found, sorted_weights = _radius(sorted_scores, treated[support], caliper)
    else:
        found, sorted_weights = _nearest(sorted_scores, treated[support], caliper, k)
    sizes[support] = found
    weights = np.empty(comparison.size)
    weights[order] = sorted_weights
    return Matching(
        mode=mode,
        k=k if mode == "nearest" else 0,
        caliper=float(caliper),
        treated_matched=sizes > 0,
        treated_on_support=support,
        matched_set_sizes=sizes,
        comparison_weights=weights,
    )
