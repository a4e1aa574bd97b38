"""Sample and weighted frequencies of key patterns (fk, Fk), with missing values as wildcards.

Matches sdcMicro's ``freqCalc`` (spec §2.1-2.2): a missing key value matches any value, records
whose keys are all missing get fk = n, and ``alpha`` scales how much a pattern with missing
values counts towards the patterns it is compatible with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Combined codes stay below this bound so that the mixed-radix product never overflows int64.
_RADIX_LIMIT = 1 << 62


@dataclass(frozen=True)
class Frequencies:
    """Per-record sample frequency ``fk`` and weighted (population) frequency ``Fk``.

    Both are float64 arrays in input order; ``fk`` is fractional only when ``alpha < 1`` and keys
    are missing.
    """

    fk: np.ndarray
    Fk: np.ndarray

    @property
    def n1(self) -> int:
        """Number of records with fk == 1 (sample uniques)."""
        return int(np.count_nonzero(self.fk == 1))

    @property
    def n2(self) -> int:
        """Number of records with fk == 2."""
        return int(np.count_nonzero(self.fk == 2))


def key_codes(keys: pd.DataFrame) -> np.ndarray:
    """Integer codes (n x m, int64) of the key columns, compared by value; missing is -1."""
    if not isinstance(keys, pd.DataFrame):
        raise ValueError("keys must be a pandas DataFrame of key variables")
    if keys.shape[1] == 0:
        raise ValueError("keys must have at least one key variable")
    codes = np.empty(keys.shape, dtype=np.int64)
    for j in range(keys.shape[1]):
        codes[:, j] = pd.factorize(keys.iloc[:, j], use_na_sentinel=True)[0]
    return codes


def group_ids(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Group the rows of an integer code matrix (codes >= -1) into distinct patterns.

    Returns (group id per row in order of first appearance, number of groups). Columns are folded
    into one int64 key by mixed radix, re-densified whenever the radix would overflow.
    """
    n, m = codes.shape
    if m == 0:
        return np.zeros(n, dtype=np.int64), int(n > 0)
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    combined = codes[:, 0] + 1
    radix = int(combined.max()) + 1
    for j in range(1, m):
        column = codes[:, j] + 1
        card = int(column.max()) + 1
        if radix * card >= _RADIX_LIMIT:
            combined, uniques = pd.factorize(combined)
            radix = len(uniques)
        combined = combined * card + column
        radix *= card
    ids, uniques = pd.factorize(combined)
    return ids.astype(np.int64, copy=False), len(uniques)


def _join(
    target: list[np.ndarray], source: list[np.ndarray], radices: list[int]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Common group ids of two row sets given as column lists of non-negative codes.

    Returns (target ids, source ids, number of groups); source rows equal to no target row share
    one extra group. Rows are packed into one int64 by mixed radix when that fits (cheap for a
    large source: one hash lookup), else grouped jointly.
    """
    if float(np.prod(np.asarray(radices, dtype=np.float64))) >= _RADIX_LIMIT:
        stacked = np.vstack([np.column_stack(target), np.column_stack(source)])
        gid, n_groups = group_ids(stacked)
        n_target = len(target[0])
        return gid[:n_target], gid[n_target:], n_groups
    t_key = np.zeros(len(target[0]), dtype=np.int64)
    s_key = np.zeros(len(source[0]), dtype=np.int64)
    for t_col, s_col, radix in zip(target, source, radices, strict=True):
        t_key = t_key * radix + t_col
        s_key = s_key * radix + s_col
    t_ids, uniques = pd.factorize(t_key)
    s_ids = pd.Index(uniques).get_indexer(pd.Index(s_key))
    s_ids[s_ids < 0] = len(uniques)
    return t_ids.astype(np.int64, copy=False), s_ids, len(uniques) + 1


def _sums_to(
    to_ids: np.ndarray, from_ids: np.ndarray, n_groups: int, values: np.ndarray
) -> np.ndarray:
    """For each ``to`` row, the column sums of ``values`` over ``from`` rows in its group."""
    out = np.empty((len(to_ids), values.shape[1]))
    for v in range(values.shape[1]):
        out[:, v] = np.bincount(from_ids, weights=values[:, v], minlength=n_groups)[to_ids]
    return out


def _validated_weights(weights: np.ndarray | None, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights must be a 1-d array of length {n}, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite (no missing values)")
    return w


def frequencies(
    keys: pd.DataFrame, weights: np.ndarray | None = None, alpha: float = 1.0
) -> Frequencies:
    """fk and Fk of every record (sdcMicro ``freqCalc``; spec §2.1-2.2).

    Without weights Fk equals fk. Missing key values are wildcards: two patterns are compatible
    when they agree on every key both observe; matches involving a missing value count ``alpha``
    (complete patterns seen from an incomplete one count fully).
    """
    return frequencies_from_codes(key_codes(keys), weights, alpha)


def frequencies_from_codes(
    codes: np.ndarray, weights: np.ndarray | None = None, alpha: float = 1.0
) -> Frequencies:
    """``frequencies`` on an integer code matrix as made by ``key_codes`` (missing = -1)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    n, m = codes.shape
    w = _validated_weights(weights, n)
    if n == 0:
        empty = np.zeros(0, dtype=np.float64)
        return Frequencies(fk=empty, Fk=empty.copy())

    ids, n_patterns = group_ids(codes)
    # Representative row of each pattern: its first occurrence.
    first = np.empty(n_patterns, dtype=np.int64)
    first[ids[::-1]] = np.arange(n - 1, -1, -1)
    patterns = codes[first]
    count = np.bincount(ids, minlength=n_patterns).astype(np.float64)
    weight = count if w is None else np.bincount(ids, weights=w, minlength=n_patterns)

    observed = patterns >= 0
    if observed.all():
        return Frequencies(fk=count[ids], Fk=weight[ids].copy())

    if m == 1:
        fk_pat, Fk_pat = _single_key(observed[:, 0], count, weight, alpha)
    else:
        fk_pat, Fk_pat = _wildcard_patterns(patterns, observed, count, weight, alpha)
    return Frequencies(fk=fk_pat[ids], Fk=Fk_pat[ids])


def _single_key(
    observed: np.ndarray, count: np.ndarray, weight: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """One key: a value gets alpha times the missing records; a missing record gets everything."""
    fk = np.where(observed, count + alpha * count[~observed].sum(), count.sum())
    Fk = np.where(observed, weight + alpha * weight[~observed].sum(), weight.sum())
    return fk, Fk


def _wildcard_patterns(
    patterns: np.ndarray,
    observed: np.ndarray,
    count: np.ndarray,
    weight: np.ndarray,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray]:
    """fk/Fk per distinct pattern when some patterns have missing keys (several keys).

    Works per missingness mask (and pair of masks): two patterns are compatible exactly when their
    projections onto the keys both observe are equal, which is a join on those columns.
    """
    m = patterns.shape[1]
    mask = observed.astype(np.int64) @ (np.int64(1) << np.arange(m, dtype=np.int64))
    full = (1 << m) - 1
    is_complete = mask == full
    values = np.column_stack([count, weight])
    add = np.zeros_like(values)
    radices = [int(r) for r in patterns.max(axis=0) + 1]
    # Complete patterns, column by column (contiguous), and what they receive.
    comp_cols = [np.ascontiguousarray(patterns[is_complete, j]) for j in range(m)]
    comp_values = values[is_complete]
    comp_add = np.zeros_like(comp_values)

    na_masks = np.unique(mask[~is_complete])
    members = {int(mk): np.flatnonzero(mask == mk) for mk in na_masks}
    for mk, rows in members.items():
        if mk == 0:
            # All-missing patterns never add to complete ones; they are set to n below.
            continue
        cols = _columns(mk, m)
        if len(comp_values):
            t_ids, c_ids, n_groups = _join(
                [patterns[rows, j] for j in cols],
                [comp_cols[j] for j in cols],
                [radices[j] for j in cols],
            )
            # Complete patterns seen from an incomplete one count fully, and an incomplete
            # pattern adds alpha to each complete pattern it fits.
            add[rows] += _sums_to(t_ids, c_ids, n_groups, comp_values)
            comp_add += alpha * _sums_to(c_ids, t_ids, n_groups, values[rows])
        for other, other_rows in members.items():
            if other == mk:
                # Same mask: compatible means identical, i.e. the pattern itself.
                continue
            common = mk & other
            if common == 0:
                add[rows] += alpha * values[other_rows].sum(axis=0)
                continue
            shared = _columns(common, m)
            t_ids, o_ids, n_groups = _join(
                [patterns[rows, j] for j in shared],
                [patterns[other_rows, j] for j in shared],
                [radices[j] for j in shared],
            )
            add[rows] += alpha * _sums_to(t_ids, o_ids, n_groups, values[other_rows])
    add[is_complete] = comp_add

    result = values + add
    all_missing = mask == 0
    result[all_missing] = values.sum(axis=0)
    return result[:, 0], result[:, 1]


def _columns(mask: int, m: int) -> np.ndarray:
    """Indices of the key columns set in a bit mask."""
    return np.flatnonzero((mask >> np.arange(m)) & 1)
