"""Information-loss (utility) measures comparing original and anonymised microdata.

Continuous variables, as sdcMicro's ``dUtility`` (spec §2.11):
- IL1 = sum over cells of 100 |x - xm| / |x| (cells with x = 0 dropped);
- IL1s = sum over cells of |x - xm| / (sd(x) sqrt 2);
- eigen = sum |e1 - e2| / e1 over the eigenvalues of the covariance of the standardised data.
Changes of statistics as ``summary.micro`` reports them (amean, amedian, amad, devvar, acov, acor,
acors). Categorical variables: frequency tables before/after and the number of suppressions.
Standard deviations and covariances use n-1; missing values are skipped (pairwise for covariances).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

# R's mad() consistency constant.
_MAD_CONSTANT = 1.4826


def _aligned(x: pd.DataFrame, xm: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both frames as float with the same shape and columns, or a ValueError."""
    if x.shape != xm.shape:
        raise ValueError("original and anonymised data must have the same shape")
    if list(x.columns) != list(xm.columns):
        raise ValueError("original and anonymised data must have the same columns")
    return (
        x.apply(pd.to_numeric, errors="raise").astype(float),
        xm.apply(pd.to_numeric, errors="raise").astype(float),
    )


def il1(x: pd.DataFrame, xm: pd.DataFrame) -> float:
    """IL1: sum of 100 |x - xm| / |x| over all cells; infinite or undefined cells are dropped."""
    a, b = _aligned(x, xm)
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = 100.0 * np.abs(a.to_numpy() - b.to_numpy()) / np.abs(a.to_numpy())
    return float(cells[np.isfinite(cells)].sum())


def il1s(x: pd.DataFrame, xm: pd.DataFrame) -> float:
    """IL1s: sum of |x - xm| / (sd(x) sqrt 2) over all cells (missing cells dropped)."""
    a, b = _aligned(x, xm)
    sd = a.std(ddof=1).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = np.abs(a.to_numpy() - b.to_numpy()) / (sd * np.sqrt(2.0))
    return float(np.nansum(cells))


def _standardised_eigenvalues(frame: pd.DataFrame) -> np.ndarray:
    """Eigenvalues (descending) of the pairwise covariance of the standardised columns."""
    scaled = (frame - frame.mean()) / frame.std(ddof=1)
    cov = scaled.cov().to_numpy()
    if not np.isfinite(cov).all():
        raise ValueError("covariance undefined (constant or empty column)")
    return np.sort(np.linalg.eigvalsh(cov))[::-1]


def eigen(x: pd.DataFrame, xm: pd.DataFrame) -> float:
    """Eigenvalue change sum |e1 - e2| / e1 of the standardised covariances (NaN if undefined)."""
    a, b = _aligned(x, xm)
    try:
        e1, e2 = _standardised_eigenvalues(a), _standardised_eigenvalues(b)
    except ValueError:
        return float("nan")
    return float(np.sum(np.abs(e1 - e2) / e1))


def _relative_change(s1: pd.Series | np.ndarray, s2: pd.Series | np.ndarray) -> float:
    """sum |s1 - s2| / |s1|, undefined terms (0/0) dropped as R's na.rm."""
    a, b = np.asarray(s1, dtype=float), np.asarray(s2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.abs(a - b) / np.abs(a)
    return float(np.nansum(terms))


def _mad(frame: pd.DataFrame) -> pd.Series:
    """R's mad(): 1.4826 * median |x - median|."""
    return _MAD_CONSTANT * (frame - frame.median()).abs().median()


def mean_change(x: pd.DataFrame, xm: pd.DataFrame) -> float:
    """``amean``: sum over variables of |mean - mean'| / |mean|."""
    a, b = _aligned(x, xm)
    return _relative_change(a.mean(), b.mean())


def median_change(x: pd.DataFrame, xm: pd.DataFrame) -> float:
    """``amedian``: sum over variables of |median - median'| / |median|."""
    a, b = _aligned(x, xm)
    return _relative_change(a.median(), b.median())


def mad_change(x: pd.DataFrame, xm: pd.DataFrame) -> float:
    """``amad``: sum over variables of |mad - mad'| / |mad|."""
    a, b = _aligned(x, xm)
    return _relative_change(_mad(a), _mad(b))


def covariance_change(x: pd.DataFrame, xm: pd.DataFrame) -> float:
    """``devvar``: sum over the covariance matrix of |c - c'| / |c|, over the number of variables.

    (sdcMicro's ``acov`` is half of this.)
    """
    a, b = _aligned(x, xm)
    return _relative_change(a.cov().to_numpy(), b.cov().to_numpy()) / a.shape[1]


def correlation_change(
    x: pd.DataFrame, xm: pd.DataFrame, method: Literal["pearson", "spearman"] = "pearson"
) -> float:
    """``acor``/``acors``: sum over the correlation matrix of |r - r'| / |r|, over 2 x variables."""
    a, b = _aligned(x, xm)
    return _relative_change(a.corr(method=method).to_numpy(), b.corr(method=method).to_numpy()) / (
        2 * a.shape[1]
    )


@dataclass(frozen=True)
class NumericUtility:
    """The numeric information-loss measures of one original/anonymised pair."""

    il1: float
    il1s: float
    eigen: float
    mean_change: float
    median_change: float
    mad_change: float
    covariance_change: float
    correlation_change: float
    spearman_change: float


def numeric_utility(x: pd.DataFrame, xm: pd.DataFrame) -> NumericUtility:
    """All numeric measures at once (``dUtility`` and the ``summary.micro`` changes)."""
    return NumericUtility(
        il1=il1(x, xm),
        il1s=il1s(x, xm),
        eigen=eigen(x, xm),
        mean_change=mean_change(x, xm),
        median_change=median_change(x, xm),
        mad_change=mad_change(x, xm),
        covariance_change=covariance_change(x, xm),
        correlation_change=correlation_change(x, xm),
        spearman_change=correlation_change(x, xm, "spearman"),
    )


def frequency_changes(x: pd.Series, xm: pd.Series) -> pd.DataFrame:
    """Category counts before and after, with their difference; missing values as a NaN row.

    Categories are those of either series (categoricals keep their declared categories).
    """
    if len(x) != len(xm):
        raise ValueError("original and anonymised variables must have the same length")
    before = x.value_counts(dropna=False, sort=False)
    after = xm.value_counts(dropna=False, sort=False)
    table = pd.concat({"original": before, "anonymised": after}, axis=1).fillna(0).astype(np.int64)
    table["difference"] = table["anonymised"] - table["original"]
    return table


def total_variation(x: pd.Series, xm: pd.Series) -> float:
    """Half the sum of absolute frequency differences over n: the share of records to move."""
    table = frequency_changes(x, xm)
    return float(table["difference"].abs().sum() / 2 / max(len(x), 1))


def suppressions(before: pd.DataFrame, after: pd.DataFrame) -> pd.Series:
    """Per variable: cells non-missing before and missing after."""
    if before.shape != after.shape or list(before.columns) != list(after.columns):
        raise ValueError("'before' and 'after' must have the same shape and columns")
    counts = (before.notna().to_numpy() & after.isna().to_numpy()).sum(axis=0)
    return pd.Series(counts, index=before.columns, dtype=np.int64)


def total_suppressions(before: pd.DataFrame, after: pd.DataFrame) -> int:
    """All cells non-missing before and missing after."""
    return int(suppressions(before, after).sum())
