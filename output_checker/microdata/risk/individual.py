"""Individual, global and household re-identification risk of categorical key variables.

Matches sdcMicro's ``indivRisk``, ``measure_risk`` and ``kAnon_violations`` (spec §2.3-2.5): the
Benedetti-Franconi negative-binomial individual risk, the expected number of re-identifications,
the mu-Argus risk threshold, the household (hierarchical) risk and k-anonymity violation counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from output_checker.microdata.risk.frequencies import frequencies

# R's mad() scales the median absolute deviation by this constant (consistency at the normal).
_MAD_CONSTANT = 1.4826
_METHODS = ("approx", "exact")


def individual_risk(
    fk: np.ndarray,
    Fk: np.ndarray,
    *,
    method: str = "approx",
    qual: float = 1.0,
    survey: bool = True,
) -> np.ndarray:
    """Per-record re-identification risk from sample (fk) and weighted (Fk) frequencies.

    ``survey=False`` gives 1/fk. Otherwise pk = fk/Fk and the risk follows the branches of
    sdcMicro's ``indivRisk`` literally: fk == 1, fk == 2, fk > 2 (``approx`` or ``exact``), so a
    fractional fk in (1, 2) gets 0; where fk == Fk the risk is 1/fk; the result is scaled by qual.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    fk = np.asarray(fk, dtype=np.float64)
    Fk = np.asarray(Fk, dtype=np.float64)
    if fk.shape != Fk.shape or fk.ndim != 1:
        raise ValueError("fk and Fk must be 1-d arrays of the same length")
    if not survey:
        with np.errstate(divide="ignore"):
            return 1.0 / fk
    risk = np.zeros_like(fk)
    # Overflow, 0/0 and log(0) follow IEEE arithmetic (inf/nan), as in R.
    with np.errstate(all="ignore"):
        pk = fk / Fk
        odds = pk / (1.0 - pk)
        one, two, more = fk == 1, fk == 2, fk > 2
        risk[one] = odds[one] * np.log(1.0 / pk[one])
        risk[two] = odds[two] - odds[two] ** 2 * np.log(1.0 / pk[two])
        if method == "approx":
            risk[more] = pk[more] / (fk[more] - (1.0 - pk[more]))
        else:
            risk[more] = _exact_risk(fk[more], pk[more])
    same = fk == Fk
    risk[same] = 1.0 / fk[same]
    return risk * qual


def _exact_risk(fk: np.ndarray, pk: np.ndarray) -> np.ndarray:
    """The exact Benedetti-Franconi risk for fk > 2 (spec §2.3), computed once per (fk, pk)."""
    pairs, inverse = np.unique(np.column_stack([fk, pk]), axis=0, return_inverse=True)
    f, p = pairs[:, 0], pairs[:, 1]
    a = (p ** (1.0 - f) - 1.0) / (f - 1.0)
    # R's 0:(fk - 3) runs over 0..floor(fk - 3), and is just 0 when 2 < fk < 3.
    last = np.maximum(np.floor(f - 3.0), 0.0)
    product = np.ones_like(f)
    bb = np.zeros_like(f)
    for m in range(int(last.max(initial=0.0)) + 1):
        active = last >= m
        b = (
            (f - 1 - m) ** 2
            / ((m + 1) * (f - 2 - m))
            * (p ** (m + 2 - f) - 1.0)
            / (p ** (m + 1 - f) - 1.0)
        )
        product = np.where(active, product * b, product)
        bb = np.where(active, bb + (-1.0) ** (m + 1) * product, bb)
    result = (p / (1.0 - p)) ** f * (a * (1.0 + bb) + np.power(-1.0, f) * np.log(p))
    exact: np.ndarray = result[inverse.ravel()]
    return exact


def risk_threshold(risk: np.ndarray, max_global_risk: float = 0.01) -> float:
    """Individual-risk level above which records must be protected for a global risk target.

    mu-Argus 4.1 manual §2.3.4.1 eq. 17 as in sdcMicro's ``measure_threshold``: NaN when the file
    is already safe (sum of risks < max_global_risk * n), 0 when no risk level qualifies.
    """
    if not 0.0 < max_global_risk < 1.0:
        raise ValueError(f"max_global_risk must be in (0, 1), got {max_global_risk}")
    r = np.sort(np.asarray(risk, dtype=np.float64))[::-1]
    if r.ndim != 1 or not np.all(np.isfinite(r)):
        raise ValueError("risk must be a 1-d array of finite values")
    if len(r) == 0:
        return float("nan")
    target = max_global_risk * len(r)
    # Running sums in the same (sequential) order as the reference, so ties compare alike.
    total = float(np.add.accumulate(r)[-1])
    if total < target:
        return float("nan")
    remaining = np.subtract.accumulate(np.concatenate([[total], r]))[:-1]
    level_starts = np.flatnonzero(r[1:] != r[:-1]) + 1
    below = remaining[level_starts] + r[level_starts] * level_starts < target
    if not below.any():
        return 0.0
    return float(r[level_starts[np.argmax(below)]])


def household_risk(risk: np.ndarray, household: np.ndarray | pd.Series) -> np.ndarray:
    """Household risk 1 - prod(1 - r) over each household's members, copied to every member."""
    r = np.asarray(risk, dtype=np.float64)
    hh = pd.Series(household).to_numpy()
    if hh.shape != r.shape:
        raise ValueError(f"household must have length {len(r)}, got {len(hh)}")
    ids, _ = pd.factorize(hh, use_na_sentinel=True)
    if (ids < 0).any():
        raise ValueError("household ids must not be missing")
    if len(r) == 0:
        return r.copy()
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    safe = np.multiply.reduceat(1.0 - r[order], starts)
    per_household = np.empty(sorted_ids[-1] + 1)
    per_household[sorted_ids[starts]] = 1.0 - safe
    return per_household[ids]


def kanon_violations(frequency: np.ndarray, k: float) -> int:
    """Number of records whose frequency (fk, or Fk for population estimates) is below round(k)."""
    if not k > 0:
        raise ValueError(f"k must be positive, got {k}")
    return int(np.count_nonzero(np.asarray(frequency) < round(k)))


def higher_risk_count(risk: np.ndarray, n_mad: float = 3.0) -> int:
    """Records with risk > median + n_mad * mad (R's mad, constant 1.4826) and risk > 0.1.

    sdcMicro prints this as "obs. with higher risk than the main part" (3 mad in
    ``print.measure_risk``, 2 mad in ``print(sdcObj, "risk")``).
    """
    r = np.asarray(risk, dtype=np.float64)
    if len(r) == 0:
        return 0
    median = float(np.median(r))
    mad = _MAD_CONSTANT * float(np.median(np.abs(r - median)))
    return int(np.count_nonzero((r > median + n_mad * mad) & (r > 0.1)))


@dataclass(frozen=True)
class RiskMeasures:
    """Risk of a set of categorical key variables (sdcMicro ``measure_risk``)."""

    fk: np.ndarray
    Fk: np.ndarray
    individual: np.ndarray
    expected_reidentifications: float
    global_risk: float
    global_risk_pct: float
    threshold: float
    max_global_risk: float
    household_risk: np.ndarray | None
    household_expected_reidentifications: float | None
    household_global_risk: float | None
    household_global_risk_pct: float | None
    n_higher_risk: int
    n_higher_risk_2mad: int

    def kanon_violations(self, k: float, weighted: bool = False) -> int:
        """Records violating k-anonymity: #{fk < k}, or #{Fk < k} when ``weighted``."""
        return kanon_violations(self.Fk if weighted else self.fk, k)


def measure_risk(
    keys: pd.DataFrame,
    weights: np.ndarray | None = None,
    household: np.ndarray | pd.Series | None = None,
    alpha: float = 1.0,
    max_global_risk: float = 0.01,
) -> RiskMeasures:
    """Individual, global and (with ``household`` ids) household risk of the key variables.

    The individual risk uses the survey formula when weights are given, else 1/fk.
    """
    if not 0.0 < max_global_risk < 1.0:
        raise ValueError(f"max_global_risk must be in (0, 1), got {max_global_risk}")
    freq = frequencies(keys, weights, alpha)
    risk = individual_risk(freq.fk, freq.Fk, survey=weights is not None)
    n = len(risk)
    expected = float(np.sum(risk))
    global_risk = expected / n if n else float("nan")
    hh_risk: np.ndarray | None = None
    hh_expected = hh_global = hh_pct = None
    if household is not None:
        hh_risk = household_risk(risk, household)
        hh_expected = float(np.sum(hh_risk))
        hh_global = hh_expected / n if n else float("nan")
        hh_pct = 100.0 * hh_global
    return RiskMeasures(
        fk=freq.fk,
        Fk=freq.Fk,
        individual=risk,
        expected_reidentifications=expected,
        global_risk=global_risk,
        global_risk_pct=100.0 * global_risk,
        threshold=risk_threshold(risk, max_global_risk),
        max_global_risk=max_global_risk,
        household_risk=hh_risk,
        household_expected_reidentifications=hh_expected,
        household_global_risk=hh_global,
        household_global_risk_pct=hh_pct,
        n_higher_risk=higher_risk_count(risk, 3.0),
        n_higher_risk_2mad=higher_risk_count(risk, 2.0),
    )
