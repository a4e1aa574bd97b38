"""l-diversity of sensitive variables within key patterns, as sdcMicro's ``ldiversity()``.

Definitions (spec §2.7, sdcMicro ``src/Measure_Risk.h`` after the 2026-03 rewrite): records are
grouped by identical key patterns with NA == NA (a missing key is a category of its own, not
the wildcard of fk/Fk). For each sensitive variable and group of size g with category
frequencies f1 >= f2 >= ... >= fc:

- distinct l = c, plus 1 when the group holds the ``missing`` code and c > 0;
- entropy l = exp(-sum p log p), p = f / g, with the ``missing`` share as one more category
  under the same condition;
- recursive (c, l) l = the largest l with f1 < c * (f_l + ... + f_c) (1 if there is none or
  only one category), the ``missing`` code not counted.

The ``missing`` code only applies to numeric sensitive columns (sdcMicro converts other columns
to factor codes 1..L, which never equal it). A missing sensitive value (NaN, None, pd.NA) is
not the ``missing`` code: sdcMicro's C++ sees NaN, which equals nothing, so every such record
is a category of its own with frequency 1.

Not implemented, on purpose: sdcMicro's ``MultiEntropy_Ldiversity`` and
``MultiRecursive_Ldiversity`` columns. Its C++ reads a sensitive-variable count that is never
set, so both columns are always 0 there; this module does not output them rather than output
fake zeros.

Deviation: for a group whose sensitive values are all the ``missing`` code (c = 0), sdcMicro
reports distinct 0 and entropy 1 but leaves the recursive value of the previously processed
group (stale state in its C++); here it is 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from output_checker.microdata.risk._codes import combined_codes, frame_codes

MAX_SENSITIVE = 5  # sdcMicro stops with more sensitive variables
SUFFIXES = ("Distinct_Ldiversity", "Entropy_Ldiversity", "Recursive_Ldiversity")


def ldiversity(
    keys: pd.DataFrame,
    sensitive: pd.DataFrame | pd.Series,
    *,
    l_recurs_c: float = 2.0,
    missing: float = -999,
) -> pd.DataFrame:
    """Per-record distinct, entropy and recursive (c, l) l-diversity of each sensitive variable.

    Returns a frame with ``keys``' index and columns ``<var>_Distinct_Ldiversity`` (int),
    ``<var>_Entropy_Ldiversity`` (float) and ``<var>_Recursive_Ldiversity`` (int) per sensitive
    variable, in input order. ``l_recurs_c <= 0`` is replaced by 1, as sdcMicro does.
    """
    sens = sensitive.to_frame() if isinstance(sensitive, pd.Series) else sensitive
    _check(keys, sens)
    n = len(keys)
    codes, counts = frame_codes(keys)
    group, n_groups = combined_codes(codes, counts, n)
    size = np.bincount(group, minlength=n_groups)
    c = np.float32(l_recurs_c if l_recurs_c > 0 else 1.0)
    out: dict[str, np.ndarray] = {}
    for name in sens.columns:
        distinct, entropy, recursive = _one_variable(sens[name], group, size, n_groups, c, missing)
        out[f"{name}_{SUFFIXES[0]}"] = distinct[group]
        out[f"{name}_{SUFFIXES[1]}"] = entropy[group]
        out[f"{name}_{SUFFIXES[2]}"] = recursive[group]
    return pd.DataFrame(out, index=keys.index)


def _check(keys: pd.DataFrame, sens: pd.DataFrame) -> None:
    if keys.shape[1] == 0:
        raise ValueError("ldiversity needs at least one key variable")
    if len(keys) == 0:
        raise ValueError("ldiversity needs at least one record")
    if sens.shape[1] == 0:
        raise ValueError("ldiversity needs at least one sensitive variable")
    if sens.shape[1] > MAX_SENSITIVE:
        raise ValueError(f"ldiversity takes at most {MAX_SENSITIVE} sensitive variables")
    if len(sens) != len(keys):
        raise ValueError("keys and sensitive variables must have the same number of rows")
    overlap = set(map(str, keys.columns)) & set(map(str, sens.columns))
    if overlap:
        raise ValueError(f"sensitive variable is also a key variable: {sorted(overlap)[0]}")


def _category_codes(column: pd.Series, missing: float) -> tuple[np.ndarray, np.ndarray]:
    """Category code per record (each NA its own category) and the ``missing``-code mask."""
    values = pd.Series(column).reset_index(drop=True)
    is_missing_code = np.zeros(len(values), dtype=bool)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        is_missing_code = (values == missing).fillna(False).to_numpy(dtype=bool)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    na = codes < 0
    # NaN never equals anything in sdcMicro's C++, so every NA is a new category.
    codes[na] = len(uniques) + np.arange(int(na.sum()), dtype=np.int64)
    return codes, is_missing_code


def _one_variable(
    column: pd.Series,
    group: np.ndarray,
    size: np.ndarray,
    n_groups: int,
    c: np.float32,
    missing: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct, entropy and recursive l-diversity per group for one sensitive variable."""
    codes, is_missing = _category_codes(column, missing)
    n_missing = np.bincount(group[is_missing], minlength=n_groups)
    keep = ~is_missing
    width = np.int64(codes.max() + 1) if len(codes) else np.int64(1)
    pair_codes = group[keep] * width + codes[keep]
    if n_groups * width <= 4 * len(codes) + 1024:
        # Few (group, category) combinations: counting beats sorting.
        table = np.bincount(pair_codes, minlength=n_groups * width)
        pairs = np.flatnonzero(table)
        freq = table[pairs]
    else:
        pairs, freq = np.unique(pair_codes, return_counts=True)
    pair_group = pairs // width  # ascending pair codes: sorted by group
    n_cat = np.bincount(pair_group, minlength=n_groups)

    with_missing = (n_missing > 0) & (n_cat > 0)
    distinct = n_cat + with_missing.astype(np.int64)

    p = freq / size[pair_group]
    plogp = np.bincount(pair_group, weights=p * np.log(p), minlength=n_groups)
    pm = np.where(with_missing, n_missing / np.maximum(size, 1), 1.0)
    plogp += np.where(with_missing, pm * np.log(pm), 0.0)
    entropy = np.exp(-plogp)

    recursive = _recursive(pair_group, freq, n_cat, n_groups, c)
    return distinct, entropy, recursive


def _recursive(
    pair_group: np.ndarray, freq: np.ndarray, n_cat: np.ndarray, n_groups: int, c: np.float32
) -> np.ndarray:
    """Recursive (c, l) l-diversity per group from the (group, frequency) pairs.

    sdcMicro uses single-precision floats: S = c * (f2 + ... + fc), then while S > f1 it
    subtracts c * f_l and counts one more. With a whole-number c and group sizes below 2**24
    every float is exact and the count is the number of l >= 2 with f1 < c * (f_l + ... + fc),
    computed here in integers; otherwise the float loop is replayed, one rank at a time
    across all groups.
    """
    # Frequencies in descending order within each group.
    order = np.lexsort((-freq, pair_group))
    g = pair_group[order]
    f = freq[order].astype(np.int64)
    start = np.concatenate(([0], np.cumsum(n_cat)[:-1])) if n_groups else np.zeros(0, np.int64)
    rank_in_group = np.arange(len(g)) - start[g]
    first = np.zeros(n_groups, dtype=np.int64)
    first[g[rank_in_group == 0]] = f[rank_in_group == 0]
    rest = np.bincount(g, weights=f, minlength=n_groups).astype(np.int64) - first
    recursive = np.where(n_cat > 0, 1, 0).astype(np.int64)
    if len(g) == 0:
        return recursive
    if float(c).is_integer() and int(np.bincount(g, weights=f).max()) < 2**24:
        # tail[i] = f at this rank + all smaller ones of the group.
        tail = rest[g] + first[g] - (np.cumsum(f) - f - _group_offsets(f, start, g))
        ok = (rank_in_group >= 1) & (first[g] < int(c) * tail)
        recursive += np.bincount(g[ok], minlength=n_groups)
        return recursive
    return _recursive_float(g, f, rank_in_group, first, rest, recursive, c)


def _group_offsets(f: np.ndarray, start: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Running total of ``f`` before each group's first entry, per entry."""
    before: np.ndarray = np.concatenate(([0], np.cumsum(f)))[start]
    return np.asarray(before[g], dtype=np.int64)


def _recursive_float(
    g: np.ndarray,
    f: np.ndarray,
    rank_in_group: np.ndarray,
    first: np.ndarray,
    rest: np.ndarray,
    recursive: np.ndarray,
    c: np.float32,
) -> np.ndarray:
    """Replay sdcMicro's single-precision loop, vectorised across groups."""
    running = rest.astype(np.float32) * c
    f1 = first.astype(np.float32)
    active = np.ones(len(first), dtype=bool)
    by_rank = np.argsort(rank_in_group, kind="stable")
    bounds = np.searchsorted(rank_in_group[by_rank], np.arange(rank_in_group.max() + 2))
    for j in range(1, int(rank_in_group.max()) + 1):
        rows = by_rank[bounds[j] : bounds[j + 1]]
        grp = g[rows]
        go = active[grp] & (running[grp] > f1[grp])
        active[grp[~go]] = False
        grp, fj = grp[go], f[rows][go].astype(np.float32)
        if len(grp) == 0:
            break
        running[grp] = running[grp] - c * fj
        recursive[grp] += 1
    return recursive
