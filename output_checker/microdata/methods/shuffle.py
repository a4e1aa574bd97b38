"""Data shuffling of confidential continuous variables (sdcMicro ``shuffle``, method ``"ds"``).

What is done (Muralidhar & Sarathy's data shuffling as sdcMicro implements ``method="ds"``):
1. Responses X (the confidential ``numeric`` variables) and predictors S (categorical predictors
   become 0/1 dummies, first level dropped, as R's ``model.matrix``) are turned into normal scores
   qnorm((rank - 0.5)/n), ranks averaging ties.
2. Spearman correlations rho of (X, S) are mapped to normal-copula correlations 2 sin(pi rho / 6).
3. Perturbed normal scores Y* = S* B' + e with B = R_XS R_SS^-1 and e ~ MVN(0, R_XX - B R_SX):
   the conditional distribution of X* given S* under the copula.
4. Reverse mapping: each response's original values are put in the rank order of Y*, so the
   released column holds exactly the original values (same multiset), rearranged.
Records must be complete in the responses and predictors (sdcMicro imputes at random instead).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

Seed = int | np.random.Generator | None


def _design(df: pd.DataFrame, predictors: Sequence[Hashable]) -> np.ndarray:
    """Numeric predictors as they are, others as treatment dummies (first level dropped)."""
    parts: list[np.ndarray] = []
    for name in predictors:
        column = df[name]
        if pd.api.types.is_numeric_dtype(column) and not isinstance(
            column.dtype, pd.CategoricalDtype
        ):
            parts.append(column.to_numpy(dtype=float)[:, None])
        else:
            dummies = pd.get_dummies(column, drop_first=True, dtype=float)
            parts.append(dummies.to_numpy())
    return np.hstack(parts) if parts else np.empty((len(df), 0))


def _reverse_map(original: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The original values arranged in the rank order of ``target``."""
    out = np.empty_like(original)
    out[np.argsort(target, kind="stable")] = np.sort(original, kind="stable")
    return out


def shuffle(
    df: pd.DataFrame,
    numeric: Sequence[Hashable],
    predictors: Sequence[Hashable],
    seed: Seed = None,
) -> pd.DataFrame:
    """A copy of ``df`` with the ``numeric`` variables shuffled given ``predictors``."""
    numeric, predictors = list(numeric), list(predictors)
    absent = [v for v in [*numeric, *predictors] if v not in df.columns]
    if absent:
        raise ValueError(f"variables not in the data: {absent!r}")
    if not numeric or not predictors:
        raise ValueError("shuffle needs at least one numeric variable and one predictor")
    if set(numeric) & set(predictors):
        raise ValueError("a variable cannot be both shuffled and a predictor")
    if df[[*numeric, *predictors]].isna().to_numpy().any():
        raise ValueError("shuffle needs complete records in the numeric variables and predictors")
    X = df[numeric].apply(pd.to_numeric, errors="raise").to_numpy(dtype=float)
    S = _design(df, predictors)
    n, q = X.shape
    if n < 3:
        raise ValueError("shuffle needs at least 3 records")
    ranks = stats.rankdata(np.hstack([X, S]), axis=0, method="average")
    scores = np.asarray(stats.norm.ppf((ranks - 0.5) / n))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(ranks, rowvar=False)  # Spearman = Pearson on average ranks
    if not np.isfinite(rho).all():
        raise ValueError("shuffle needs non-constant numeric variables and predictors")
    pmc = 2.0 * np.sin(np.pi * rho / 6.0)
    r_xs, r_xx, r_ss = pmc[:q, q:], pmc[:q, :q], pmc[q:, q:]
    try:
        B = np.linalg.solve(r_ss, r_xs.T).T  # R_XS R_SS^-1 (R_SS symmetric)
    except np.linalg.LinAlgError:
        raise ValueError("the predictors are collinear (singular correlation matrix)") from None
    sigma = r_xx - B @ r_xs.T
    # Clip tiny negative eigenvalues from rounding before drawing the normal errors.
    eigval, eigvec = np.linalg.eigh((sigma + sigma.T) / 2)
    root = eigvec * np.sqrt(np.clip(eigval, 0.0, None))
    rng = np.random.default_rng(seed)
    y_star = scores[:, q:] @ B.T + rng.standard_normal((n, q)) @ root.T
    out = df.copy()
    for j, name in enumerate(numeric):
        out[name] = _reverse_map(X[:, j], y_star[:, j])
    return out
