"""Local suppression of key values: k-anonymity (``local_suppression``) and a risk cut-off on one
key (``local_supp``).

Follows sdcMicro's ``localSuppression``/``kAnon`` and ``localSupp`` (spec §2.6): missing values
are wildcards when counting fk, so suppressing a value makes a record match more records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from output_checker.microdata.risk.frequencies import (
    frequencies_from_codes,
    group_ids,
    key_codes,
)

# Problem records in one pass above which the pass is batched (sdcMicro's exact record-by-record
# rule below it: every reference example is far smaller).
FAST_ABOVE = 20_000


@dataclass(frozen=True)
class SuppressionResult:
    """Keys after suppression (NaN where suppressed) and suppression counts per key variable.

    ``suppressed`` counts new suppressions, ``total_suppressed`` all missing values afterwards;
    ``by_stratum`` (strata given) holds the new suppressions per stratum and key variable.
    """

    keys: pd.DataFrame
    suppressed: pd.Series
    total_suppressed: pd.Series
    by_stratum: pd.DataFrame | None = None


def default_importance(keys: pd.DataFrame) -> np.ndarray:
    """sdcMicro's default importance: the rank (1..m) of each key's number of categories, so the
    key with the fewest categories gets 1 (suppressed last); ties rank in column order."""
    categories = np.array([keys.iloc[:, j].nunique(dropna=True) for j in range(keys.shape[1])])
    importance = np.empty(len(categories), dtype=np.int64)
    importance[np.argsort(categories, kind="stable")] = np.arange(1, len(categories) + 1)
    return importance


def local_suppression(
    keys: pd.DataFrame,
    k: int = 2,
    importance: np.ndarray | list[int] | None = None,
    strata: np.ndarray | pd.Series | None = None,
    alpha: float = 1.0,
    fast_above: int = FAST_ABOVE,
) -> SuppressionResult:
    """Suppress key values until every record has fk >= k (within its stratum).

    ``importance`` holds 1..m per key (1 = suppress last); by default keys with more categories
    are suppressed first. Missing values are wildcards with weight ``alpha`` (spec §2.2).
    Up to ``fast_above`` problem records per pass the result is sdcMicro's exactly; above it,
    a pass is batched (see ``_suppress_until_k_anonymous``): k-anonymous all the same, but not
    always the same values suppressed.
    """
    codes = key_codes(keys)
    n, m = codes.shape
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    imp = default_importance(keys) if importance is None else np.asarray(importance)
    if imp.shape != (m,) or not np.isin(imp, np.arange(1, m + 1)).all():
        raise ValueError(f"importance must hold {m} values in 1..{m}")
    # Highest importance number first; ties in column order.
    column_order = np.argsort(-imp, kind="stable")

    if strata is None:
        stratum = np.zeros(n, dtype=np.int64)
        labels: list[object] = []
    else:
        strata_values = pd.Series(strata).to_numpy()
        if strata_values.shape != (n,):
            raise ValueError(f"strata must have length {n}, got {len(strata_values)}")
        stratum, uniques = pd.factorize(strata_values, use_na_sentinel=False)
        labels = list(uniques)
    result = codes.copy()
    n_strata = int(stratum.max(initial=-1)) + 1
    order = np.argsort(stratum, kind="stable")
    bounds = np.searchsorted(stratum[order], np.arange(n_strata + 1))
    for s in range(n_strata):
        rows = order[bounds[s] : bounds[s + 1]]
        if len(rows) < k:
            raise ValueError(f"k={k} exceeds the number of records ({len(rows)}) in a stratum")
        result[rows] = _suppress_subset(codes[rows], int(k), column_order, alpha, fast_above)

    newly = (result < 0) & (codes >= 0)
    by_stratum = None
    if strata is not None:
        per = np.column_stack(
            [np.bincount(stratum, weights=newly[:, j], minlength=n_strata) for j in range(m)]
        ).astype(np.int64)
        by_stratum = pd.DataFrame(per, index=pd.Index(labels), columns=keys.columns)
    return _result(keys, newly, result < 0, by_stratum)


def local_supp(
    keys: pd.DataFrame, threshold: float, key: str, risk: np.ndarray
) -> SuppressionResult:
    """Suppress ``key`` in every record whose individual risk exceeds ``threshold``.

    sdcMicro's ``localSupp`` (its documentation says ">=", its code uses ">", followed here).
    """
    if not isinstance(keys, pd.DataFrame):
        raise ValueError("keys must be a pandas DataFrame of key variables")
    if key not in keys.columns:
        raise ValueError(f"key {key!r} is not one of the key variables")
    r = np.asarray(risk, dtype=np.float64)
    if r.shape != (len(keys),):
        raise ValueError(f"risk must have length {len(keys)}, got {r.shape}")
    missing = keys.isna().to_numpy()
    newly = np.zeros_like(missing)
    j = list(keys.columns).index(key)
    newly[:, j] = (r > threshold) & ~missing[:, j]
    return _result(keys, newly, missing | newly, None)


def _result(
    keys: pd.DataFrame,
    newly: np.ndarray,
    missing_after: np.ndarray,
    by_stratum: pd.DataFrame | None,
) -> SuppressionResult:
    """New keys frame (only suppressed columns change dtype) and the counts."""
    out = keys.copy()
    for j, column in enumerate(keys.columns):
        if newly[:, j].any():
            out[column] = out[column].where(~newly[:, j])
    return SuppressionResult(
        keys=out,
        suppressed=pd.Series(newly.sum(axis=0), index=keys.columns),
        total_suppressed=pd.Series(missing_after.sum(axis=0), index=keys.columns),
        by_stratum=by_stratum,
    )


def _thinned_rows(codes: np.ndarray, k: int) -> np.ndarray:
    """Rows that can need suppression: the first k records of each group of equal keys.

    As in sdcMicro, missing values are first replaced by the column's first value (a missing
    first value stays its own category), and larger groups are set aside beyond k records.
    """
    filled = codes.copy()
    for j in range(codes.shape[1]):
        missing = codes[:, j] < 0
        if missing.any():
            filled[missing, j] = codes[0, j]
    gid, _ = group_ids(filled)
    order = np.argsort(gid, kind="stable")
    sorted_gid = gid[order]
    starts = np.flatnonzero(np.r_[True, sorted_gid[1:] != sorted_gid[:-1]])
    rank_sorted = np.arange(len(gid)) - np.repeat(starts, np.diff(np.r_[starts, len(gid)]))
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    return np.flatnonzero(rank < k)


def _suppress_subset(
    codes: np.ndarray, k: int, column_order: np.ndarray, alpha: float, fast_above: int
) -> np.ndarray:
    """Codes (missing = -1) of one stratum after suppression so that all fk >= k."""
    result = codes.copy()
    keep = _thinned_rows(codes, k)
    result[keep] = _suppress_until_k_anonymous(codes[keep], k, column_order, alpha, fast_above)
    if len(keep) < len(codes):
        # The set-aside records can still fall below k when alpha < 1 or when records became
        # all-missing (these do not count for complete patterns); sdcMicro stops here, while
        # this repair pass on the whole stratum guarantees fk >= k.
        result = _suppress_until_k_anonymous(result, k, column_order, alpha, fast_above)
    return result


def _suppress_until_k_anonymous(
    codes: np.ndarray, k: int, column_order: np.ndarray, alpha: float, fast_above: int
) -> np.ndarray:
    """sdcMicro's loop: while some fk < k, suppress one value in every such record, highest
    risk first. Each pass adds at least one missing value and all-missing records have fk = n,
    so it ends.

    sdcMicro decides record by record, each decision seeing the ones before it; each costs a
    scan of every record, so a pass over hundreds of thousands of problem records takes many
    minutes. Above ``fast_above`` problem records a pass decides at once, from the state at its
    start, for every record that has a complete record at Hamming distance 1: the first key
    (in suppression order) on which such a neighbour differs, sdcMicro's choice when the
    nearest distance is 1 (except that records with missing values are not counted as
    neighbours). The rest are decided one by one as in sdcMicro. Any choice suppresses
    a value of a record below k, so the loop still ends with every record k-anonymous."""
    # Narrow integer types: the per-record distance scans are bound by memory bandwidth.
    code_type = np.min_scalar_type(-int(codes.max(initial=1)) - 1)
    columns = [codes[:, j].astype(code_type) for j in range(codes.shape[1])]
    # room for distances up to m below the "no positive distance" sentinel (the type maximum)
    count_type = np.min_scalar_type(-2 * codes.shape[1] - 2)
    na_count = (codes < 0).sum(axis=1).astype(count_type)
    while True:
        fk = frequencies_from_codes(np.column_stack(columns).astype(np.int64), alpha=alpha).fk
        problems = np.flatnonzero(fk < k)
        if len(problems) == 0:
            return np.column_stack(columns).astype(np.int64)
        # Highest risk (1/fk, i.e. lowest fk) first; ties in record order.
        ordered = problems[np.argsort(fk[problems], kind="stable")]
        if len(ordered) > fast_above:
            # batched: every problem record with a complete neighbour at distance 1 at once
            chosen = _distance_one_choice(np.column_stack(columns), ordered, column_order)
            batch = chosen >= 0
            for j in np.unique(chosen[batch]):
                columns[j][ordered[chosen == j]] = -1
            na_count[ordered[batch]] += 1
            ordered = ordered[~batch]
        for i in ordered:
            j = _column_to_suppress(columns, na_count, int(i), column_order)
            columns[j][i] = -1
            na_count[i] += 1


def _distance_one_choice(
    codes: np.ndarray, problems: np.ndarray, column_order: np.ndarray
) -> np.ndarray:
    """For each problem record: the first key in ``column_order`` on which some complete record
    at Hamming distance 1 differs from it, -1 when there is none. Per pattern of missing keys
    among the problem records, one grouping per observed key: the complete records that agree
    with a record on its other observed keys, less those agreeing on all of them, are the ones
    that differ from it on that key alone."""
    complete = (codes >= 0).all(axis=1)
    chosen = np.full(len(problems), -1, dtype=np.int64)
    missing = codes[problems] < 0
    mask_id, n_masks = group_ids(missing.astype(np.int64))
    for mask in range(n_masks):
        rows = np.flatnonzero(mask_id == mask)
        observed = np.flatnonzero(~missing[rows[0]])
        if len(observed) == 0:
            continue
        full_id, n_full = group_ids(codes[:, observed])
        records = problems[rows]
        identical = np.bincount(full_id[complete], minlength=n_full)[full_id[records]]
        for j in column_order:
            if j not in observed:
                continue
            rest_id, n_rest = group_ids(codes[:, observed[observed != j]])
            agreeing = np.bincount(rest_id[complete], minlength=n_rest)[rest_id[records]]
            undecided = chosen[rows] < 0
            chosen[rows[undecided & (agreeing > identical)]] = j
    return chosen


def _column_to_suppress(
    columns: list[np.ndarray], na_count: np.ndarray, i: int, column_order: np.ndarray
) -> int:
    """Key to suppress in record i: the first key (in suppression order) on which it differs from
    one of the records at the smallest non-zero Hamming distance (missing matches anything), or
    its first observed key when no record differs from it at all."""
    value = [int(col[i]) for col in columns]
    # distance = number of keys observed in both records with different values
    #          = sum over keys record i observes of [differs] - [other record missing there]
    distance = -na_count
    for j, col in enumerate(columns):
        if value[j] >= 0:
            distance += col != value[j]
        else:
            distance += col < 0
    far = np.iinfo(distance.dtype).max
    nearest_distance = distance.min(where=distance > 0, initial=far)
    if nearest_distance == far:
        # Record i matches every record (possible with all-missing records or alpha < 1).
        return next(int(j) for j in column_order if value[j] >= 0)
    nearest = np.flatnonzero(distance == nearest_distance)
    for j in column_order:
        if value[j] >= 0:
            other = columns[j][nearest]
            if ((other != value[j]) & (other >= 0)).any():
                return int(j)
    raise AssertionError("a record at positive distance differs on some key")  # unreachable
