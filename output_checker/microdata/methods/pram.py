"""Invariant PRAM (post-randomisation) of categorical variables, as sdcMicro's ``pram`` (§2.12).

For a variable with L levels and level shares p (within a stratum): draw pds ~ U(pd, 1) per level,
P = diag(pds) with (1 - pds)/(L - 1) elsewhere in each row, the Bayes reverse
Q[k, j] = P[j, k] p[j] / sum_l p[l] P[l, k], R = P Q and Rs = alpha R + (1 - alpha) I.
Rs leaves p invariant (p Rs = p), so expected category frequencies are unchanged. Each record's
category is then redrawn from its row of Rs. Missing values stay missing.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas

Seed = int | np.random.Generator | None
# Row sums of a user transition matrix must be 1 up to this tolerance.
_ROW_SUM_TOL = 1e-9


@dataclass(frozen=True)
class PramResult:
    """Outcome of :func:`pram`.

    ``values``: the perturbed data (same shape, index and columns as the input; categorical).
    ``transitions``: the matrix used per (variable, stratum) (rows = from, columns = to, labelled
    by the levels; the stratum is its value, a tuple for several strata columns, ``None`` when
    unstratified; strata without values of the variable are left out). ``changed``: records
    whose category changed, per variable. ``frequencies``: per variable, counts before and after
    (missing values in a NaN row).
    """

    values: pandas.DataFrame
    transitions: dict[tuple[Hashable, Hashable], pandas.DataFrame]
    changed: pandas.Series
    frequencies: dict[Hashable, pandas.DataFrame]


def invariant_matrix(p: np.ndarray, pds: np.ndarray, alpha: float) -> np.ndarray:
    """The invariant transition matrix Rs for level shares ``p`` and diagonal draws ``pds``."""
    n_levels = p.size
    if n_levels == 1:
        return np.ones((1, 1))
    P = np.repeat(((1.0 - pds) / (n_levels - 1))[:, None], n_levels, axis=1)
    np.fill_diagonal(P, pds)
    s = p @ P  # s[k] = sum_l p[l] P[l, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        Q = (P * p[:, None]).T / s[:, None]  # Q[k, j] = P[j, k] p[j] / s[k]
    # A column nobody can reach (s = 0, only when pd = 1) gets an identity row: never used.
    unreachable = s <= 0
    Q[unreachable] = np.eye(n_levels)[unreachable]
    R = P @ Q
    Rs: np.ndarray = alpha * R + (1.0 - alpha) * np.eye(n_levels)
    return Rs


def _levels(column: pandas.Series) -> pandas.Index:
    """Levels as sdcMicro's factors: categories of a categorical, else sorted distinct values."""
    if isinstance(column.dtype, pandas.CategoricalDtype):
        categories: pandas.Index = column.cat.categories
    else:
        categories = pandas.Categorical(column.dropna()).categories
    levels: pandas.Index = pandas.Index(list(categories))
    return levels


def _check_matrix(matrix: pandas.DataFrame, levels: pandas.Index, name: Hashable) -> np.ndarray:
    """Validate a user transition matrix against the variable's levels."""
    if matrix.shape != (levels.size, levels.size):
        raise ValueError(f"transition matrix for {name!r} must be {levels.size}x{levels.size}")
    if not (matrix.index.equals(levels) and matrix.columns.equals(levels)):
        raise ValueError(f"transition matrix for {name!r} must be labelled by its levels")
    values = matrix.to_numpy(dtype=float)
    if np.any(values < 0) or np.any(np.abs(values.sum(axis=1) - 1.0) > _ROW_SUM_TOL):
        raise ValueError(f"transition matrix for {name!r} must have non-negative rows summing to 1")
    return values


def _per_variable(
    value: float | Mapping[Hashable, float], name: str, columns: pandas.Index
) -> dict[Hashable, float]:
    """A scalar parameter broadcast to all variables, or a mapping checked for completeness."""
    if isinstance(value, Mapping):
        missing = [c for c in columns if c not in value]
        if missing:
            raise ValueError(f"'{name}' has no value for variables {missing!r}")
        out = {c: float(value[c]) for c in columns}
    else:
        out = dict.fromkeys(columns, float(value))
    if any(not 0.0 <= v <= 1.0 for v in out.values()):
        raise ValueError(f"'{name}' must lie in [0, 1]")
    return out


def _strata_ids(
    strata: pandas.Series | pandas.DataFrame | None, n: int
) -> tuple[np.ndarray, list[Hashable]]:
    """Stratum number per record (missing is a stratum of its own) and the stratum keys."""
    if strata is None:
        return np.zeros(n, dtype=np.int64), [None]
    frame = strata.to_frame() if isinstance(strata, pandas.Series) else strata
    if len(frame) != n:
        raise ValueError("'strata' must have one value per record")
    frame = frame.reset_index(drop=True)
    ids = frame.groupby(list(frame.columns), dropna=False, sort=True).ngroup()
    ids_array = ids.to_numpy(dtype=np.int64)
    # The first record of each stratum names it: a value (one column) or a tuple of values.
    first = np.unique(ids_array, return_index=True)[1]
    rows = list(frame.iloc[first].itertuples(index=False, name=None))
    keys: list[Hashable] = [row[0] if len(row) == 1 else row for row in rows]
    return ids_array, keys


def pram(
    x: pandas.Series | pandas.DataFrame,
    pd: float | Mapping[Hashable, float] = 0.8,
    alpha: float | Mapping[Hashable, float] = 0.5,
    strata: pandas.Series | pandas.DataFrame | None = None,
    seed: Seed = None,
    transition: pandas.DataFrame | Mapping[Hashable, pandas.DataFrame] | None = None,
) -> PramResult:
    """Post-randomise the categorical variables in ``x`` with invariant PRAM.

    ``pd`` is the lower bound of the diagonal draws and
    ``alpha`` the mixing weight with the identity (both per variable via a mapping). Matrices
    are built per stratum (rows of ``strata``; missing strata form their own stratum).
    ``transition`` (a matrix, or a mapping variable -> matrix, labelled by the levels) replaces
    the invariant matrix for those variables. Deterministic for a given ``seed``.
    """
    frame = x.to_frame() if isinstance(x, pandas.Series) else x
    if isinstance(transition, pandas.DataFrame):
        if frame.shape[1] != 1:
            raise ValueError("'transition' must map variable -> matrix for several variables")
        transition = {frame.columns[0]: transition}
    transition = dict(transition or {})
    unknown = [v for v in transition if v not in frame.columns]
    if unknown:
        raise ValueError(f"'transition' names variables not in 'x': {unknown!r}")
    pds_lower = _per_variable(pd, "pd", frame.columns)
    alphas = _per_variable(alpha, "alpha", frame.columns)
    rng = np.random.default_rng(seed)
    n = len(frame)
    stratum_ids, stratum_keys = _strata_ids(strata, n)
    n_strata = len(stratum_keys)

    out: dict[Hashable, pandas.Categorical] = {}
    transitions: dict[tuple[Hashable, Hashable], pandas.DataFrame] = {}
    changed: dict[Hashable, int] = {}
    frequencies: dict[Hashable, pandas.DataFrame] = {}
    for name in frame.columns:
        column = frame[name]
        levels = _levels(column)
        codes = pandas.Categorical(column, categories=levels).codes.astype(np.int64)
        n_levels = levels.size
        present = codes >= 0
        # Level counts per stratum (rows) in one bincount.
        counts = np.bincount(
            stratum_ids[present] * n_levels + codes[present], minlength=n_strata * n_levels
        ).reshape(n_strata, n_levels)
        matrices = np.empty((n_strata, n_levels, n_levels))
        user = _check_matrix(transition[name], levels, name) if name in transition else None
        for s in range(n_strata):
            if user is not None:
                matrices[s] = user
            else:
                total = counts[s].sum()
                p = counts[s] / total if total else np.full(n_levels, 1.0 / max(n_levels, 1))
                pds = rng.uniform(pds_lower[name], 1.0, size=n_levels)
                matrices[s] = invariant_matrix(p, pds, alphas[name])
            if counts[s].sum():
                transitions[(name, stratum_keys[s])] = pandas.DataFrame(
                    matrices[s], index=levels, columns=levels
                )
        new_codes = codes.copy()
        if n_levels and present.any():
            # One uniform per record against the cumulative row of its (stratum, category).
            cumulative = np.cumsum(matrices, axis=2)
            rows = cumulative[stratum_ids[present], codes[present]]
            u = rng.random(int(present.sum()))
            drawn = (rows <= u[:, None]).sum(axis=1)
            new_codes[present] = np.minimum(drawn, n_levels - 1)
        out[name] = pandas.Categorical.from_codes(cast("Sequence[int]", new_codes), levels)
        changed[name] = int((new_codes != codes).sum())
        # Counts per level in level order, then the missing values (code -1 -> last bin).
        table_index = pandas.Index([*levels, np.nan])
        frequencies[name] = pandas.DataFrame(
            {
                "original": np.bincount(codes % (n_levels + 1), minlength=n_levels + 1),
                "perturbed": np.bincount(new_codes % (n_levels + 1), minlength=n_levels + 1),
            },
            index=table_index,
        )

    values = pandas.DataFrame(out, index=frame.index)
    values.columns = frame.columns
    return PramResult(
        values=values,
        transitions=transitions,
        changed=pandas.Series(changed, dtype=np.int64),
        frequencies=frequencies,
    )
