"""Interval disclosure risk of perturbed numeric variables, as sdcMicro's ``dRisk()`` (spec §2.11).

For each perturbed variable an interval of half-width k * sd is put around every perturbed value
(sd of the perturbed variable, n - 1 denominator, missing values left out). A record is at risk
when every one of its original values lies inside its interval; dRisk is the share of such
records. sdcMicro prints it as "Disclosure risk is currently between [0.00%; 100 * dRisk %]".
A comparison involving a missing value counts as inside (sdcMicro sums the outside flags with
``na.rm = TRUE``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def d_risk(x: pd.DataFrame | np.ndarray, xm: pd.DataFrame | np.ndarray, k: float = 0.05) -> float:
    """Share of records whose original values all lie within ``k`` sd of the perturbed ones."""
    orig = _matrix(x, "x")
    pert = _matrix(xm, "xm")
    if orig.shape != pert.shape:
        raise ValueError(
            f"original and perturbed data differ in shape: {orig.shape} vs {pert.shape}"
        )
    if orig.shape[0] == 0:
        raise ValueError("dRisk needs at least one record")
    if not np.isfinite(k) or k < 0:
        raise ValueError("k must be a finite number >= 0")
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = _sd(pert)
        low = pert - k * sd
        high = pert + k * sd
        outside = (orig < low) | (orig > high)  # False wherever a NaN is involved
    return float(np.mean(~outside.any(axis=1)))


def _sd(values: np.ndarray) -> np.ndarray:
    """Column standard deviations (n - 1), NaN left out; NaN with fewer than 2 values (as R)."""
    present = ~np.isnan(values)
    count = present.sum(axis=0)
    mean = np.where(present, values, 0.0).sum(axis=0) / count
    squares = np.where(present, (values - mean) ** 2, 0.0).sum(axis=0)
    return np.where(count > 1, np.sqrt(squares / (count - 1)), np.nan)


def _matrix(data: pd.DataFrame | np.ndarray, name: str) -> np.ndarray:
    """Numeric 2-D float array (a vector is one variable)."""
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric") from err
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a vector or a 2-D table")
    return arr
