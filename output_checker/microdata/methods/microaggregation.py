"""Microaggregation of continuous variables: MDAV and the fast univariate ``mafast``.

MDAV follows sdcMicro's ``src/Mdav.cpp`` (spec §2.12): each variable is weighted by 1/population
variance, distances are squared Euclidean accumulated in single precision (as the C++ ``TDist``),
and while at least 2k records remain: find the record r farthest from the centroid, group the k
records nearest to r; if at least 3k remained, also group the k nearest to the record s farthest
from r. The remaining (< 2k) records form the last group. Ties in the nearest-k selection go to
the later record, as the C++ hash sort does. A missing value is at the maximal distance
(squared range) from any present value and at distance 0 from another missing value.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

# Compact the working arrays once this share of their rows has been grouped away.
_COMPACT_DEAD_SHARE = 0.25


@dataclass(frozen=True)
class MicroaggregationResult:
    """Outcome of :func:`microaggregation`.

    ``data``: a copy of the input with the variables replaced by their group means (missing
    values stay missing). ``groups``: group id per record and variable (for MDAV all columns are
    the same; ``mafast`` groups each variable on its own); ids are unique across strata.
    """

    data: pd.DataFrame
    groups: pd.DataFrame


def _variance_weights(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1/population variance per column (1 when constant) and the squared weighted ranges."""
    weights = np.ones(X.shape[1])
    missing_dist = np.zeros(X.shape[1])
    for j in range(X.shape[1]):
        col = X[:, j][~np.isnan(X[:, j])]
        if col.size == 0:
            continue
        # E[x^2] - E[x]^2 as the C++ computes it (not numpy's two-pass variance).
        mean = col.sum() / col.size
        variance = (col * col).sum() / col.size - mean * mean
        with np.errstate(over="ignore", divide="ignore"):
            weight = 1.0 / variance
        # a constant column can leave a rounding residue as its variance: weight 1, as for 0
        if variance > 0 and np.isfinite(weight):
            weights[j] = weight
        missing_dist[j] = (col.max() - col.min()) ** 2 * weights[j]
    return weights, missing_dist


class _Distances:
    """Squared weighted distances from one point to the working rows, in float32 like sdcMicro."""

    def __init__(self, cols: np.ndarray, weights: np.ndarray, missing_dist: np.ndarray) -> None:
        self.weights = weights[:, None]
        self.missing_dist = missing_dist[:, None]
        self._set(cols)

    def _set(self, cols: np.ndarray) -> None:
        self.cols = cols  # (variables, rows), each variable contiguous
        nan = np.isnan(cols)
        self.nan = nan if nan.any() else None
        # Work buffers reused by every call (one allocation per compaction).
        self._term = np.empty_like(cols)
        self._term32 = np.empty(cols.shape, dtype=np.float32)

    def compact(self, keep: np.ndarray) -> None:
        """Drop the rows not in ``keep``."""
        self._set(np.ascontiguousarray(self.cols[:, keep]))

    def to(self, point: np.ndarray) -> np.ndarray:
        """Distances from ``point`` (NaN = missing) to every working row."""
        term = self._term
        np.subtract(self.cols, point[:, None], out=term)
        np.multiply(term, term, out=term)
        np.multiply(term, self.weights, out=term)
        if self.nan is not None:
            point_nan = np.isnan(point)[:, None]
            # Exactly one side missing: the squared range; both missing: 0.
            one_missing = self.nan ^ point_nan
            term[one_missing] = np.broadcast_to(self.missing_dist, term.shape)[one_missing]
            term[self.nan & point_nan] = 0.0
        # Each term is rounded to float32, then summed over the variables in order in float32
        # (a reduction over axis 0 adds the rows one after another), as the C++ does.
        np.copyto(self._term32, term, casting="same_kind")
        total: np.ndarray = np.add.reduce(self._term32, axis=0)
        return total


def _nearest(dist: np.ndarray, alive: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k alive rows nearest by ``dist``; ties go to later rows."""
    masked = np.where(alive, dist, np.inf)
    kth = np.partition(masked, k - 1)[k - 1]
    closer = np.flatnonzero(masked < kth)
    tied = np.flatnonzero(masked == kth)
    return np.concatenate([closer, tied[::-1][: k - closer.size]])


def mdav(X: np.ndarray | pd.DataFrame, k: int = 3) -> np.ndarray:
    """MDAV groups (0, 1, ... in order of formation) for the rows of ``X``.

    Every group has k records except the last, which has k..2k-1 (or all records when fewer
    than 2k). Missing values (NaN) are allowed (see the module docstring).
    """
    data = np.asarray(X, dtype=float)
    if data.ndim != 2:
        raise ValueError("'X' must be a two-dimensional array of records x variables")
    if np.isinf(data).any():
        raise ValueError("'X' must not contain infinite values")
    if k < 1:
        raise ValueError("'k' must be at least 1")
    n = data.shape[0]
    groups = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return groups
    weights, missing_dist = _variance_weights(data)
    distances = _Distances(np.ascontiguousarray(data.T), weights, missing_dist)
    index = np.arange(n)  # original row of each working row
    alive = np.ones(n, dtype=bool)
    present = ~np.isnan(data)
    # Running column sums/counts of the alive rows give the centroid without a full pass.
    sums = np.nansum(data, axis=0)
    counts = present.sum(axis=0).astype(float)
    n_left = n
    group = 0
    while n_left >= 2 * k:
        n_groups = 1 if n_left < 3 * k else 2
        with np.errstate(invalid="ignore", divide="ignore"):
            centroid = np.where(counts > 0, sums / counts, np.nan)
        dist = distances.to(centroid)
        current = int(np.argmax(np.where(alive, dist, -np.inf)))
        for _ in range(n_groups):
            dist = distances.to(distances.cols[:, current])
            farthest = int(np.argmax(np.where(alive, dist, -np.inf)))
            members = _nearest(dist, alive, k)
            rows = index[members]
            groups[rows] = group
            group += 1
            alive[members] = False
            sums -= np.nansum(data[rows], axis=0)
            counts -= present[rows].sum(axis=0)
            current = farthest
        n_left -= k * n_groups
        if n_left and alive.size - n_left > _COMPACT_DEAD_SHARE * alive.size:
            # Compaction keeps row order, so "later row" still means larger original index.
            keep = np.flatnonzero(alive)
            # ``current`` is not needed across outer iterations, so no index remapping is due.
            distances.compact(keep)
            index = index[keep]
            alive = np.ones(keep.size, dtype=bool)
            sums = np.nansum(data[index], axis=0)
            counts = present[index].sum(axis=0).astype(float)
    if n_left:
        groups[index[alive]] = group
    return groups


def mafast(x: np.ndarray | pd.Series, k: int = 3) -> np.ndarray:
    """Univariate fast microaggregation groups (sdcMicro ``mafast``): sort, cut into groups of k.

    The last group takes the remainder (k..2k-1 records). Missing values get group -1 and are
    left out of the sort (sdcMicro would let them spoil the last group's mean).
    """
    values = np.asarray(x, dtype=float).ravel()
    if k < 1:
        raise ValueError("'k' must be at least 1")
    groups = np.full(values.size, -1, dtype=np.int64)
    present = np.flatnonzero(~np.isnan(values))
    if present.size == 0:
        return groups
    n_groups = max(present.size // k, 1)
    order = present[np.argsort(values[present], kind="stable")]
    groups[order] = np.minimum(np.arange(order.size) // k, n_groups - 1)
    return groups


def _group_means(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each record's group mean over the group's present values; missing stays missing."""
    out = np.full(values.shape, np.nan)
    ok = (groups >= 0) & ~np.isnan(values)
    if not ok.any():
        return out
    size = int(groups.max()) + 1
    sums = np.bincount(groups[ok], weights=values[ok], minlength=size)
    counts = np.bincount(groups[ok], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    out[ok] = means[groups[ok]]
    return out


def microaggregation(
    df: pd.DataFrame,
    variables: Sequence[Hashable],
    k: int = 3,
    method: Literal["mdav", "mafast"] = "mdav",
    strata: Hashable | Sequence[Hashable] | None = None,
) -> MicroaggregationResult:
    """Replace ``variables`` by group means of k-record groups, within each stratum.

    ``method="mdav"`` groups on all variables together; with a single variable it falls back to
    ``mafast`` as sdcMicro does. ``strata`` names columns of ``df`` (missing = own stratum).
    """
    variables = list(variables)
    if not variables:
        raise ValueError("'variables' must name at least one column")
    absent = [v for v in variables if v not in df.columns]
    if absent:
        raise ValueError(f"variables not in the data: {absent!r}")
    if method not in ("mdav", "mafast"):
        raise ValueError("'method' must be 'mdav' or 'mafast'")
    if k < 1:
        raise ValueError("'k' must be at least 1")
    values = df[variables].apply(pd.to_numeric, errors="raise").to_numpy(dtype=float)
    if strata is None:
        stratum: np.ndarray = np.zeros(len(df), dtype=np.int64)
    else:
        names = [strata] if isinstance(strata, str) or not isinstance(strata, Sequence) else strata
        missing_cols = [s for s in names if s not in df.columns]
        if missing_cols:
            raise ValueError(f"strata columns not in the data: {missing_cols!r}")
        stratum = df.groupby(list(names), dropna=False, sort=True).ngroup().to_numpy(np.int64)
    groups = np.full(values.shape, -1, dtype=np.int64)
    offsets = np.zeros(values.shape[1], dtype=np.int64)
    univariate = method == "mafast" or len(variables) == 1
    for s in np.unique(stratum):
        rows = np.flatnonzero(stratum == s)
        if univariate:
            for j in range(values.shape[1]):
                g = mafast(values[rows, j], k)
                groups[rows, j] = np.where(g >= 0, g + offsets[j], -1)
                offsets[j] += int(g.max()) + 1
        else:
            g = mdav(values[rows], k)
            groups[rows] = (g + offsets[0])[:, None]
            offsets[:] += int(g.max()) + 1
    out = df.copy()
    for j, name in enumerate(variables):
        out[name] = _group_means(values[:, j], groups[:, j])
    group_frame = pd.DataFrame(groups, index=df.index, columns=pd.Index(variables))
    return MicroaggregationResult(data=out, groups=group_frame)
