"""Evidence for the model checks, read from a fitted statsmodels result.

Every number comes from the fitted model's own data (``model.exog``, ``model.endog``, its
weights and its formula design), never from figures the researcher supplies. ``None`` marks
evidence that could not be read, which the checks turn into ``review``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from statsmodels.discrete.discrete_model import BinaryModel, MultinomialModel, Poisson
from statsmodels.genmod.families import Binomial
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.regression.linear_model import GLS, OLS, WLS, RegressionResults

_LINEAR = OLS | WLS | GLS  # GLSAR is a GLS
_DUMMY_NAME = re.compile(r"^(?P<term>[^:]+?)\[(?:[TS]\.)?(?P<level>[^\[\]:]*)\]$")


@dataclass(frozen=True)
class Level:
    """Units (rows) at one level of a binary or categorical variable. Never a unit value."""

    source: str  # "regressor", "categorical", "outcome", or the weights/offset attribute
    column: str
    level: str
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "column": self.column, "level": self.level, "n": self.n}


@dataclass(frozen=True)
class ModelEvidence:
    """What the checks need, read from the fitted model. ``None`` means "could not be read"."""

    model_class: str
    family: str | None
    link: str | None
    supported: bool
    nobs: float | None
    k: int | None
    df_resid: float | None
    rsquared: float | None
    residual_variance: float | None
    response_square: float | None  # mean squared response: the scale of "zero" residuals
    levels: tuple[Level, ...] | None
    level_note: str | None
    coefficients_csv: str


def _attempt(read: Callable[[], Any]) -> Any:
    """The value, or None when the model cannot give it (removed data, odd model class)."""
    try:
        return read()
    except Exception:  # any failure only downgrades the checks that need it to review
        return None


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if np.isfinite(number) else None


def _is_binary_model(model: Any) -> bool:
    discrete = isinstance(model, BinaryModel) and not isinstance(model, MultinomialModel)
    return discrete or (isinstance(model, GLM) and isinstance(model.family, Binomial))


def _family(model: Any) -> tuple[str | None, str | None]:
    if isinstance(model, GLM):
        return type(model.family).__name__, type(model.family.link).__name__
    if _is_binary_model(model):
        return "Binomial", type(model).__name__
    if isinstance(model, Poisson):
        return "Poisson", "Log"
    if isinstance(model, _LINEAR):
        return "Gaussian", "Identity"
    return None, None


def extract_evidence(result: Any) -> ModelEvidence:
    """Read N, k, df_resid, R², residual variance, level counts and the coefficient table."""
    res = getattr(result, "_results", result)
    model = res.model
    params = _attempt(lambda: np.asarray(res.params, dtype=float))
    if params is None:
        params = np.full(0, np.nan)
    supported = (
        params.ndim == 1
        and params.size > 0
        and (isinstance(model, _LINEAR | GLM | Poisson) or _is_binary_model(model))
    )
    family, link = _family(model)
    # a perfect fit divides by zero in bse/pvalues: that is evidence (lookup), not an error
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        nobs = _finite(_attempt(lambda: res.nobs))
        df_resid = _finite(_attempt(lambda: res.df_resid))
        rsquared = (
            _finite(_attempt(lambda: res.rsquared)) if isinstance(res, RegressionResults) else None
        )
        resid = _attempt(lambda: _response_residuals(res))
        levels, level_note = _attempt(lambda: _levels(model)) or (None, "levels could not be read")
        table = _coefficient_table(result, params)
    return ModelEvidence(
        model_class=type(model).__name__,
        family=family,
        link=link,
        supported=supported,
        nobs=nobs,
        k=int(params.size) if params.size else None,
        df_resid=df_resid,
        rsquared=rsquared,
        residual_variance=None if resid is None else _finite(np.mean(resid[0] ** 2)),
        response_square=None if resid is None else _finite(np.mean(resid[1] ** 2)),
        levels=levels,
        level_note=level_note,
        coefficients_csv=table.to_csv(),
    )


def _response_residuals(res: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Residuals on the response scale and the response they belong to."""
    model = res.model
    if isinstance(model, GLM):
        resid = np.asarray(res.resid_response, dtype=float)
        return resid, resid + np.asarray(res.mu, dtype=float)
    endog = np.asarray(model.endog, dtype=float)
    # predict() without new exog uses the model's own design: no formula is evaluated
    fitted = np.asarray(model.predict(np.asarray(res.params, dtype=float)), dtype=float)
    return endog - fitted, endog


def _coefficient_table(result: Any, params: npt.NDArray[np.float64]) -> pd.DataFrame:
    raw = getattr(result, "params", None)
    names = list(raw.index) if isinstance(raw, pd.Series) else None
    if names is None:
        exog_names = _attempt(lambda: list(result.model.exog_names))
        names = exog_names if exog_names and len(exog_names) == params.size else None
    index = pd.Index(names or [f"param_{i}" for i in range(params.size)], name="term")
    columns: dict[str, Any] = {}
    for column in ("params", "bse", "pvalues"):
        values = _attempt(partial(_flat, result, column))
        columns[column] = values if values is not None and values.size == params.size else np.nan
    return pd.DataFrame(columns, index=index)


def _flat(result: Any, attribute: str) -> npt.NDArray[np.float64]:
    return np.asarray(getattr(result, attribute), dtype=float).ravel()


@dataclass(frozen=True, eq=False)
class _Term:
    """A categorical term's columns in exog and, when the formula design says, its coding."""

    name: str
    columns: tuple[int, ...]
    categories: tuple[str, ...] | None
    coding: npt.NDArray[np.float64] | None  # one row per category (patsy contrast matrix)


def _levels(model: Any) -> tuple[tuple[Level, ...] | None, str | None]:
    exog, endog = getattr(model, "exog", None), getattr(model, "endog", None)
    if exog is None or endog is None:
        return None, "the model holds no data (saved with remove_data?): levels cannot be counted"
    x = np.asarray(exog, dtype=float)
    raw_names = getattr(model, "exog_names", None) or []
    names = [str(n) for n in raw_names] if len(raw_names) == x.shape[1] else []
    names = names or [f"x{j}" for j in range(x.shape[1])]
    levels: list[Level] = []
    in_terms: set[int] = set()
    for term in _categorical_terms(model, names):
        levels += _term_levels(x, term, names)
        in_terms.update(term.columns)
    rest = [j for j in range(x.shape[1]) if j not in in_terms]
    levels += _binary_levels(x[:, rest], [names[j] for j in rest], "regressor")
    outcome, note = _outcome_levels(model, np.asarray(endog, dtype=float))
    levels += outcome
    attrs = (
        ("freq_weights", "var_weights", "offset", "exposure")
        if isinstance(model, GLM)
        else ("weights", "offset", "exposure")
    )
    for attr in attrs:
        values = getattr(model, attr, None)
        if values is not None and np.ndim(values) == 1 and np.shape(values)[0] == x.shape[0]:
            levels += _binary_levels(np.asarray(values, dtype=float)[:, None], [attr], attr)
    return tuple(levels), note


def _binary_levels(x: npt.NDArray[np.float64], names: list[str], source: str) -> list[Level]:
    """Both levels of every two-valued column (constants carry no level)."""
    if x.shape[1] == 0:
        return []
    low, high = x.min(axis=0), x.max(axis=0)
    two_valued = (low != high) & ((x == low) | (x == high)).all(axis=0)
    n_high = (x == high).sum(axis=0)
    out = []
    for j in np.flatnonzero(two_valued):
        # values other than 0/1 could be a unit's own value, so they are not shown
        labels = ("0", "1") if (low[j], high[j]) == (0.0, 1.0) else ("lower value", "higher value")
        out.append(Level(source, names[j], labels[0], int(x.shape[0] - n_high[j])))
        out.append(Level(source, names[j], labels[1], int(n_high[j])))
    return out


def _outcome_levels(model: Any, y: npt.NDArray[np.float64]) -> tuple[list[Level], str | None]:
    raw_name = getattr(model, "endog_names", None)
    name = str(raw_name[0] if isinstance(raw_name, list) else raw_name or "y")
    binary = _is_binary_model(model)
    trials = getattr(model, "n_trials", None)
    if binary and y.ndim == 1 and trials is not None and not np.all(np.asarray(trials) == 1):
        # grouped binomial: statsmodels keeps the proportion and the number of trials
        events = float(np.sum(y * trials))
        trials_total = float(np.sum(trials))
        counts = [("events", round(events)), ("non-events", round(trials_total - events))]
        return [Level("outcome", name, lvl, n) for lvl, n in counts], None
    levels = _binary_levels(y[:, None], [name], "outcome") if y.ndim == 1 else []
    if binary and not levels:
        return (
            [],
            "the binary outcome is not given as 0/1 or event counts: levels cannot be counted",
        )
    return levels, None


def _categorical_terms(model: Any, names: list[str]) -> list[_Term]:
    """Categorical terms of a formula model: from the patsy or formulaic design when the model
    has one, else from patsy-style column names (a model loaded from a file keeps no design,
    because rebuilding it would evaluate the formula)."""
    data = getattr(model, "data", None)
    spec = getattr(data, "model_spec", None)
    terms = None
    if spec is not None and hasattr(spec, "term_codings"):
        terms = _attempt(lambda: _patsy_terms(spec))
    elif spec is not None and hasattr(spec, "term_indices"):
        terms = _attempt(lambda: _formulaic_terms(spec))
    if terms is not None:
        return list(terms)
    return _named_terms(names) if getattr(data, "formula", None) else []


def _patsy_terms(spec: Any) -> list[_Term]:
    terms = []
    for term, subterms in spec.term_codings.items():
        if len(term.factors) != 1 or len(subterms) != 1:
            continue
        factor = term.factors[0]
        info = spec.factor_infos[factor]
        if info.type != "categorical":
            continue
        cols = spec.term_slices[term]
        coding = np.asarray(subterms[0].contrast_matrices[factor].matrix, dtype=float)
        categories = tuple(str(c) for c in info.categories)
        terms.append(_Term(term.name(), tuple(range(cols.start, cols.stop)), categories, coding))
    return terms


def _formulaic_terms(spec: Any) -> list[_Term]:
    terms = []
    for term, indices in spec.term_indices.items():
        factors = list(term.factors)
        state = spec.encoder_state.get(str(factors[0])) if len(factors) == 1 else None
        if state is None or getattr(state[0], "value", None) != "categorical":
            continue
        categories = state[1].get("categories")
        cats = tuple(str(c) for c in categories) if categories is not None else None
        terms.append(_Term(str(term), tuple(indices), cats, None))
    return terms


def _named_terms(names: list[str]) -> list[_Term]:
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        match = _DUMMY_NAME.match(name)
        if match:
            groups.setdefault(match["term"], []).append(j)
    return [_Term(term, tuple(cols), None, None) for term, cols in groups.items()]


def _term_levels(x: npt.NDArray[np.float64], term: _Term, names: list[str]) -> list[Level]:
    """Units per level of one categorical term, the reference level included: each level is
    one distinct row of the term's columns."""
    block = x[:, list(term.columns)]
    rows, counts = _distinct_rows(block)
    coding, categories = term.coding, term.categories
    if coding is not None and categories and coding.shape == (len(categories), block.shape[1]):
        per_category = counts @ (rows[:, None, :] == coding[None, :, :]).all(axis=2)
        return [
            Level("categorical", term.name, c, int(n))
            for c, n in zip(categories, per_category, strict=True)
            if n > 0
        ]
    labels = [_dummy_level(names[j]) for j in term.columns]
    unnamed = [c for c in categories or () if c not in labels]
    reference = unnamed[0] if len(unnamed) == 1 else "reference"
    out = []
    for row, n in zip(rows, counts, strict=True):
        hot = np.flatnonzero(row)
        if hot.size == 1 and row[hot[0]] == 1.0:
            label = labels[hot[0]]
        elif hot.size == 0 or np.all(row == -1.0):
            label = reference
        else:
            label = "coding " + ",".join(f"{v:g}" for v in row)
        out.append(Level("categorical", term.name, label, int(n)))
    return out


def _distinct_rows(
    block: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """The distinct rows of ``block`` and how many times each occurs.

    Rows are grouped by a random projection (one sort of n numbers instead of a
    lexicographic sort of n rows); the grouping is then verified exactly, falling back to
    ``np.unique(axis=0)`` in the vanishingly rare case of a collision.
    """
    weights = np.random.default_rng(0).random(block.shape[1]) + 0.5
    _, first, inverse, counts = np.unique(
        block @ weights, return_index=True, return_inverse=True, return_counts=True
    )
    rows = block[first]
    if not np.array_equal(rows[inverse], block):
        return np.unique(block, axis=0, return_counts=True)
    return rows, counts


def _dummy_level(name: str) -> str:
    match = _DUMMY_NAME.match(name)
    return match["level"] if match else name
