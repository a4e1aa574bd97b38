"""The propensity model (spec 8.4): an unpenalised logistic regression of treatment on
pre-index covariates, fitted with statsmodels so that it has standard errors.

Categorical covariates (any non-numeric, non-boolean column) enter as dummies with one
reference level dropped, the first level in sorted (or declared category) order. The rank
of the design is checked before fitting: a full dummy set plus an intercept, a constant
column or a covariate that is a sum of others gives a singular Hessian, and statsmodels
would then fail with an obscure linear-algebra error or return meaningless standard errors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

from enclave.datalab.errors import DataLabError

INTERCEPT = "(intercept)"
CONDITION_LIMIT = 1e-10
"""Smallest eigenvalue / largest of the normalised Gram matrix below which the design is
treated as singular (a condition number of the design above 1e5)."""
WARM_START_ROWS = 100_000
"""Above this many comparison people the Newton iterations start from a fit on every treated
person and an evenly spaced subsample of this many comparison people."""
SEPARATION_LOGIT = 25.0
"""|logit(PS)| beyond which a failed fit is reported as separation (PS within 1e-11 of 0/1)."""


def is_categorical(column: pd.Series) -> bool:
    """A column enters the model as dummies unless it is numeric or boolean."""
    return not (
        pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)
    )


@dataclass(frozen=True, eq=False)
class Encoded:
    """Covariates as float columns: numeric and boolean as they are, each categorical as one
    column per level (``name=level``); ``reference`` names each categorical's dropped level."""

    levels: pd.DataFrame
    reference: tuple[str, ...]

    @property
    def design(self) -> pd.DataFrame:
        """The model's columns: every level but the reference ones."""
        return self.levels.drop(columns=list(self.reference))


def encode(frame: pd.DataFrame, covariates: Sequence[str]) -> Encoded:
    """Encode ``covariates`` of ``frame``; the reference level of a categorical is its first
    level in declared category order, or in sorted order for other columns."""
    missing = [c for c in covariates if c not in frame.columns]
    if missing:
        raise DataLabError(f"covariates not in the data: {', '.join(missing)}")
    if not covariates:
        raise DataLabError("no covariates given for the propensity model")
    parts: list[pd.DataFrame] = []
    reference: list[str] = []
    for name in covariates:
        column = frame[name]
        if is_categorical(column):
            levels = column.astype("category")
            if not isinstance(column.dtype, pd.CategoricalDtype):
                levels = levels.cat.reorder_categories(sorted(levels.cat.categories, key=str))
            dummies = pd.get_dummies(levels, prefix=name, prefix_sep="=", dtype="float64")
            if dummies.shape[1]:
                reference.append(str(dummies.columns[0]))
            parts.append(dummies)
        else:
            parts.append(column.astype("float64").to_frame(name))
    return Encoded(pd.concat(parts, axis=1), tuple(reference))


def dependent_columns(x: np.ndarray, names: Sequence[str]) -> list[str]:
    """Columns of ``x`` that are (numerically) linear combinations of the columns before them.

    One unpivoted QR of the column-normalised design: ``|R[j, j]|`` is the distance of
    column j from the span of the earlier columns, so a tiny diagonal names the culprit.
    """
    norms = np.linalg.norm(x, axis=0)
    zero = norms == 0
    scaled = x / np.where(zero, 1.0, norms)
    r = np.linalg.qr(scaled, mode="r")
    diagonal = np.abs(np.diag(r))
    tolerance = np.sqrt(CONDITION_LIMIT) * max(float(diagonal.max()), 1.0)
    return [n for n, d, z in zip(names, diagonal, zero, strict=True) if z or d <= tolerance]


@dataclass(frozen=True, eq=False)
class Propensity:
    """A fitted propensity model and the linear predictor, logit(PS), of every row."""

    columns: tuple[str, ...]
    coefficients: np.ndarray
    standard_errors: np.ndarray
    logit: np.ndarray
    treated: np.ndarray
    iterations: int

    @property
    def logit_treated(self) -> np.ndarray:
        return np.asarray(self.logit[self.treated])

    @property
    def logit_comparison(self) -> np.ndarray:
        return np.asarray(self.logit[~self.treated])

    def table(self) -> pd.DataFrame:
        """Coefficients with their standard errors, one row per design column."""
        return pd.DataFrame(
            {"coefficient": self.coefficients, "standard_error": self.standard_errors},
            index=pd.Index(self.columns, name="term"),
        )


def _check_rank(x: np.ndarray, names: Sequence[str]) -> None:
    """Refuse a singular or nearly singular design. The test runs on the small Gram matrix
    of the column-normalised design; only a failure pays for the QR that names culprits."""
    norms = np.linalg.norm(x, axis=0)
    if (norms == 0).any():
        zero = [n for n, v in zip(names, norms, strict=True) if v == 0]
        raise DataLabError(f"the propensity design has all-zero columns: {', '.join(zero)}")
    scaled = x / norms
    eigenvalues = np.linalg.eigvalsh(scaled.T @ scaled)
    if eigenvalues.min() > CONDITION_LIMIT * eigenvalues.max():
        return
    culprits = dependent_columns(x, names) or ["(nearly collinear columns)"]
    raise DataLabError(
        "the propensity design is rank-deficient (a constant, duplicated or fully determined "
        f"covariate, or a full set of dummies): {', '.join(culprits)}"
    )


def _warm_start(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Start values for a large pool: the fit on all treated and every s-th comparison row.

    Sampling on the outcome leaves a logistic model's slopes unbiased and shifts only the
    intercept, by log(sampled fraction), so after correction this is close to the full
    MLE and the full fit needs a few Newton steps instead of fifteen (each a pass over
    millions of rows). Any trouble in the subsample just means no warm start.
    """
    comparison = np.flatnonzero(~y)
    if comparison.size <= WARM_START_ROWS:
        return None
    step = -(-comparison.size // WARM_START_ROWS)
    rows = np.concatenate([np.flatnonzero(y), comparison[::step]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fitted = sm.Logit(y[rows].astype("float64"), x[rows]).fit(
                method="newton", maxiter=50, disp=0
            )
        except (np.linalg.LinAlgError, PerfectSeparationError):
            return None
    start = np.asarray(fitted.params, dtype="float64")
    if not (fitted.mle_retvals.get("converged", False) and np.isfinite(start).all()):
        return None
    start[0] += np.log(comparison[::step].size / comparison.size)
    return start


def fit_propensity(design: pd.DataFrame, treated: np.ndarray) -> Propensity:
    """Fit treatment ~ intercept + ``design`` (rows of treated and comparison people, with
    ``treated`` marking the former) by Newton's method.

    Raises ``DataLabError`` for a rank-deficient design (naming the dependent columns), for
    perfect separation and for a fit that does not converge.
    """
    y = np.asarray(treated, dtype=bool)
    if y.shape != (len(design),):
        raise DataLabError("the treatment indicator does not fit the design")
    if y.all() or not y.any():
        raise DataLabError("the propensity model needs both treated and comparison people")
    names = [INTERCEPT, *map(str, design.columns)]
    x = np.column_stack([np.ones(len(design)), design.to_numpy(dtype="float64")])
    if not np.isfinite(x).all():
        raise DataLabError("covariates must be finite and complete for the propensity model")
    if x.shape[0] <= x.shape[1]:
        raise DataLabError(f"{x.shape[0]} people cannot fit {x.shape[1]} model terms")
    _check_rank(x, names)
    start = _warm_start(x, y)
    fitted = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fitted = sm.Logit(y.astype("float64"), x).fit(
                start_params=start, method="newton", maxiter=100, disp=0
            )
        except PerfectSeparationError:
            pass  # statsmodels < 0.14 raised where later versions warn
        except np.linalg.LinAlgError as error:
            raise DataLabError(f"the propensity model could not be fitted: {error}") from None
    problems = {type(w.message).__name__ for w in caught}
    if fitted is None:
        problems.add(PerfectSeparationWarning.__name__)
    converged = (
        fitted is not None
        and bool(fitted.mle_retvals.get("converged", False))
        and "ConvergenceWarning" not in problems
    )
    linear = x @ np.asarray(fitted.params, dtype="float64") if fitted is not None else None
    # Separation shows as a failed fit whose linear predictor runs off towards +-infinity
    # (statsmodels >= 0.15 no longer says so itself).
    separated = "PerfectSeparationWarning" in problems or (
        not converged and linear is not None and float(np.abs(linear).max()) > SEPARATION_LOGIT
    )
    if separated:
        raise DataLabError(
            "the covariates separate treated from comparison people (some values occur in "
            "one group only); the propensity model cannot be estimated"
        )
    if fitted is None or linear is None or not converged:
        raise DataLabError("the propensity model did not converge in 100 Newton steps")
    coefficients = np.asarray(fitted.params, dtype="float64")
    return Propensity(
        columns=tuple(names),
        coefficients=coefficients,
        standard_errors=np.asarray(fitted.bse, dtype="float64"),
        logit=linear,
        treated=y,
        iterations=int(fitted.mle_retvals.get("iterations", 0)),
    )
