"""SUDA2 special-uniques scores and DIS-SUDA, as sdcMicro's ``suda2()`` (spec §2.8).

A minimal sample unique (MSU) of record i is a set S of key variables on which i is unique
while it is unique on no proper subset of S. Uniqueness only grows when variables are added,
so S is an MSU of i exactly when i is unique on S and on none of the sets S minus one
variable. This module enumerates the variable subsets level by level (size 1, 2, ...), finds
the records unique on each with vectorised group counts, and keeps per subset only the
records that are sample unique on all keys (no other record can have an MSU); the loop runs
over subsets (2**M of them), never over records.

sdcMicro details kept: NA keys become the ``missing`` code, and a key equal to the ``missing``
code (NA included) never enters an MSU of its record (sdcMicro's C++ skips such items) though it
still differs from every other value; with one or two key variables constant dummy columns are
added, so M = 3 in the weights and in DIS-SUDA (sdcMicro warns that results may be wrong);
``original_scores`` picks Elliot's weights (M - k)! or the IHSN weights; DIS-SUDA repeats the
C++'s single-precision parts. Keys are compared by value (sdcMicro truncates numeric keys to
integers and turns character columns into NA; factors are compared by code, as here).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations

import numpy as np
import pandas as pd

from output_checker.microdata.risk._codes import combined_codes, frame_codes


@dataclass(frozen=True)
class Suda2Result:
    """SUDA2 output, arrays in input order.

    ``contribution``: per record and key variable, the share of the record's score from MSUs
    holding the variable (0 where the score is 0; rows may sum to more than 1).
    ``msu_counts``: per record, the number of MSUs of size 1..M (columns ``1``..``M``).
    ``attribute_contributions``: columns variable, contribution (percent of the total score).
    ``attribute_level_contributions``: columns variable, attribute (a value), contribution
    (percent of the variable's contribution from records with that value).
    """

    score: np.ndarray
    dis_score: np.ndarray
    contribution: pd.DataFrame
    msu_counts: pd.DataFrame
    attribute_contributions: pd.DataFrame
    attribute_level_contributions: pd.DataFrame


def msu_weights(n_vars: int, original_scores: bool = True) -> np.ndarray:
    """Weight of an MSU of size k = 1..M (index k - 1).

    Elliot (``original_scores=True``): (M - k)!; IHSN: (2**(M-k) - 1) * k! * (M - k)! / M!.
    """
    m = n_vars
    if original_scores:
        return np.array([float(math.factorial(m - k)) for k in range(1, m + 1)])
    return np.array(
        [
            float(
                Fraction(
                    (2 ** (m - k) - 1) * math.factorial(k) * math.factorial(m - k),
                    math.factorial(m),
                )
            )
            for k in range(1, m + 1)
        ]
    )


def suda2(
    keys: pd.DataFrame,
    *,
    missing: int = -999,
    dis_fraction: float = 0.01,
    original_scores: bool = True,
    max_size: int | None = None,
) -> Suda2Result:
    """SUDA scores, DIS-SUDA scores and variable contributions of the key variables.

    ``max_size`` limits the MSU size searched (default: all M); larger MSUs are then not
    counted, so scores can only be lower than sdcMicro's. ``dis_fraction`` 0 means 0.5, as in
    sdcMicro.
    """
    n, n_keys = keys.shape
    if n_keys == 0:
        raise ValueError("suda2 needs at least one key variable")
    if n == 0:
        raise ValueError("suda2 needs at least one record")
    if max_size is not None and not 1 <= max_size <= n_keys:
        raise ValueError(f"max_size must be between 1 and {n_keys}")
    if n_keys <= 2:
        warnings.warn(
            "SUDA2 with fewer than 3 key variables: sdcMicro adds constant dummy variables "
            "(M = 3 in the weights), results might be wrong",
            stacklevel=2,
        )
    codes, counts, missing_mask = _key_codes(keys, missing)
    weights = msu_weights(max(n_keys, 3), original_scores)

    full, _ = combined_codes(codes, counts, n)
    full_count = np.bincount(full)[full]
    uniques = np.flatnonzero(full_count == 1)
    msu = _msu_counts(codes, counts, missing_mask, uniques, max_size or n_keys, weights)

    # score of the sample uniques, summed by MSU size as sdcMicro does
    n_u = len(uniques)
    score_u = np.zeros(n_u)
    for k in range(1, n_keys + 1):
        score_u += msu.by_size[:, k - 1] * weights[k - 1]
    raw_u = msu.raw_contribution
    score = np.zeros(n)
    score[uniques] = score_u
    contrib = np.zeros((n, n_keys))
    nz = score_u != 0
    contrib[uniques[nz]] = raw_u[nz] / score_u[nz, None]
    by_size = np.zeros((n, n_keys), dtype=np.int64)
    by_size[uniques] = msu.by_size

    names = [str(c) for c in keys.columns]
    n_pairs = 2 * int(np.sum(np.bincount(full) == 2))
    dis = dis_suda(score, len(uniques), n_pairs, max(n_keys, 3), dis_fraction)
    return Suda2Result(
        score=score,
        dis_score=dis,
        contribution=pd.DataFrame(contrib, columns=names, index=keys.index),
        msu_counts=pd.DataFrame(by_size, columns=list(range(1, n_keys + 1)), index=keys.index),
        attribute_contributions=_attribute_contributions(names, contrib, score),
        attribute_level_contributions=_level_contributions(keys, names, contrib, score),
    )


@dataclass(frozen=True)
class _Msus:
    by_size: np.ndarray  # (n_uniques, M): MSUs of each size
    raw_contribution: np.ndarray  # (n_uniques, M): summed weights of the MSUs holding a variable


def _key_codes(
    keys: pd.DataFrame, missing: int
) -> tuple[list[np.ndarray], list[int], list[np.ndarray]]:
    """Codes per key with NA and the ``missing`` code as one value, and their mask."""
    prepared = pd.DataFrame(index=range(len(keys)))
    masks: list[np.ndarray] = []
    for name in keys.columns:
        col = keys[name].reset_index(drop=True)
        na = col.isna().to_numpy()
        coded = np.zeros(len(col), dtype=bool)
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            coded = (col == missing).fillna(False).to_numpy(dtype=bool)
        # NA and the missing code are the same value (sdcMicro writes the code into NA cells)
        prepared[name] = col.mask(coded) if coded.any() else col
        masks.append(na | coded)
    codes, counts = frame_codes(prepared)
    return codes, counts, masks


def _msu_counts(
    codes: list[np.ndarray],
    counts: list[int],
    missing_mask: list[np.ndarray],
    uniques: np.ndarray,
    max_size: int,
    weights: np.ndarray,
) -> _Msus:
    """Count the MSUs of the sample uniques per size, and sum their weights per variable."""
    m = len(codes)
    n = len(codes[0])
    n_u = len(uniques)
    by_size = np.zeros((n_u, m), dtype=np.int64)
    raw = np.zeros((n_u, m))
    missing_u = np.column_stack([mask[uniques] for mask in missing_mask])
    previous: dict[tuple[int, ...], np.ndarray] = {(): np.zeros(n_u, dtype=bool)}
    for size in range(1, max_size + 1):
        current: dict[tuple[int, ...], np.ndarray] = {}
        for subset in combinations(range(m), size):
            pattern, n_patterns = combined_codes(
                [codes[v] for v in subset], [counts[v] for v in subset], n
            )
            unique = np.bincount(pattern, minlength=n_patterns)[pattern[uniques]] == 1
            current[subset] = unique
            below = np.zeros(n_u, dtype=bool)
            for drop in range(size):
                below |= previous[subset[:drop] + subset[drop + 1 :]]
            is_msu = unique & ~below & ~missing_u[:, list(subset)].any(axis=1)
            by_size[:, size - 1] += is_msu
            for v in subset:
                raw[is_msu, v] += weights[size - 1]
        previous = current
    return _Msus(by_size=by_size, raw_contribution=raw)


def dis_suda(
    score: np.ndarray, n_uniques: int, n_pair_records: int, n_vars: int, dis_fraction: float
) -> np.ndarray:
    """DIS-SUDA scores (Elliot et al.) with sdcMicro's single-precision steps.

    Dis = U f / (U f + P (1 - f)) with U sample uniques and P records in patterns of exactly
    two; Q = 1 + (8 - M) / 20; A = sum over scores > 0 of score**-Q;
    dis(i) = 1 / (1 + (U / Dis - U) / (score(i)**Q A)) where score(i) > 0, else 0.
    """
    f = np.float32(dis_fraction) if dis_fraction != 0 else np.float32(0.5)
    u, p = np.float32(n_uniques), np.float32(n_pair_records)
    with np.errstate(divide="ignore", invalid="ignore"):
        dis = np.float32(u * f / (u * f + p * (np.float32(1.0) - f)))
        excess = float(np.float32(u / dis) - u)
    q = float(np.float32(1.0) + (np.float32(8.0) - np.float32(n_vars)) / np.float32(20.0))
    positive = score != 0
    out = np.zeros(len(score))
    if positive.any():
        powered = np.power(score[positive], q)
        adj = float(np.sum(1.0 / powered))
        out[positive] = 1.0 / (1.0 + excess / (powered * adj))
    return out


def _attribute_contributions(
    names: list[str], contrib: np.ndarray, score: np.ndarray
) -> pd.DataFrame:
    """Percent of the total score contributed by each variable."""
    total = score.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = 100.0 * (contrib * score[:, None]).sum(axis=0) / total
    return pd.DataFrame({"variable": names, "contribution": share})


def _level_contributions(
    keys: pd.DataFrame, names: list[str], contrib: np.ndarray, score: np.ndarray
) -> pd.DataFrame:
    """Per variable and observed value (sorted, NA left out): percent of the variable's
    contribution coming from records with that value."""
    frames = []
    weighted = contrib * score[:, None]
    for j, name in enumerate(names):
        col = keys.iloc[:, j].reset_index(drop=True)
        present = col.notna().to_numpy()
        levels = np.sort(np.asarray(pd.unique(col[present])))
        sums = (
            pd.Series(weighted[present, j]).groupby(col[present].to_numpy()).sum()
            if present.any()
            else pd.Series(dtype=float)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            share = 100.0 * sums.reindex(levels, fill_value=0.0).to_numpy() / weighted[:, j].sum()
        frames.append(pd.DataFrame({"variable": name, "attribute": levels, "contribution": share}))
    return pd.concat(frames, ignore_index=True)
