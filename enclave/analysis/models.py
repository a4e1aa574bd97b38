"""Regressions with statsmodels' signatures (array and formula APIs), each checked before it
is recorded: residual degrees of freedom, sample size, units per level of every categorical or
binary regressor and of a binary outcome, saturation, lookup models (spec §5). The fitted
statsmodels result is returned unchanged; the recorded output is its coefficient table."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from enclave.analysis.context import Context, Made, command, find_source
from enclave.analysis.errors import AnalysisError
from enclave.analysis.outputs import OutputFile
from enclave.analysis.recipes import provenance_of
from output_checker import CheckerError

_CONSTANT_NAMES = frozenset({"const", "Intercept", "intercept"})


def _array_model(kind: str) -> Callable[..., Any]:
    import statsmodels.api as sm

    factories: dict[str, Callable[..., Any]] = {
        "ols": sm.OLS, "logit": sm.Logit, "probit": sm.Probit, "glm": sm.GLM,
    }  # fmt: skip
    return factories[kind]


def _formula_model(kind: str) -> Callable[..., Any]:
    import statsmodels.formula.api as smf

    factories: dict[str, Callable[..., Any]] = {
        "ols": smf.ols, "logit": smf.logit, "probit": smf.probit, "glm": smf.glm,
    }  # fmt: skip
    return factories[kind]


def _fit(model: Any, kind: str) -> Any:
    """Fit quietly (no optimiser chatter); statsmodels' own errors become one line."""
    try:
        with warnings.catch_warnings():
            # convergence and perfect-prediction warnings are kept on the result, not raised
            warnings.simplefilter("ignore")
            return model.fit(disp=0) if kind in ("logit", "probit") else model.fit()
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AnalysisError(f"the {kind} model cannot be fitted: {first}") from None


def _build(factory: Callable[..., Any], kind: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return factory(*args, **kwargs)
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AnalysisError(f"the {kind} model cannot be built: {first}") from None


def _array_columns(endog: Any, exog: Any) -> dict[str, pd.Series[Any]]:
    """Named columns of array-API inputs, for provenance (constants are the model's own)."""
    columns: dict[str, pd.Series[Any]] = {}
    if isinstance(endog, pd.Series) and endog.name is not None:
        columns[str(endog.name)] = endog
    if isinstance(exog, pd.Series) and exog.name is not None:
        columns[str(exog.name)] = exog
    elif isinstance(exog, pd.DataFrame):
        for name in exog.columns:
            if str(name) not in _CONSTANT_NAMES:
                columns[str(name)] = exog[name]
    return columns


def _formula_columns(formula: str, data: Any) -> dict[str, pd.Series[Any]]:
    if not isinstance(data, pd.DataFrame):
        return {}
    return {
        str(c): data[c]
        for c in data.columns
        if re.search(rf"(?<![\w.]){re.escape(str(c))}(?![\w.])", formula)
    }


def _check_rows(n: int) -> None:
    if n == 0:
        raise AnalysisError("the data are empty: there is nothing to fit")


def fit(
    ctx: Context,
    kind: str,
    endog: Any,
    exog: Any = None,
    *,
    data: Any = None,
    options: Mapping[str, Any] | None = None,
) -> Made:
    """Fit and check one model. ``endog`` is the response (array API) or a formula string
    (formula API, with ``data``); ``options`` go to the statsmodels constructor."""
    opts = dict(options or {})
    if isinstance(endog, str):
        if not isinstance(data, pd.DataFrame):
            raise AnalysisError(f"the {kind} formula API needs data=<a pandas DataFrame>")
        _check_rows(len(data))
        columns = _formula_columns(endog, data)
        model = _build(_formula_model(kind), kind, endog, data=data, **opts)
        call = command(kind, formula=endog, data=data)
    else:
        if exog is None and kind != "glm":
            raise AnalysisError(f"{kind}: give exog (the regressors) or use a formula")
        n = len(endog) if hasattr(endog, "__len__") else 0
        _check_rows(n)
        columns = _array_columns(endog, exog)
        model = _build(_array_model(kind), kind, endog, exog, **opts)
        regressors = [c for c in columns if not (isinstance(endog, pd.Series) and c == endog.name)]
        call = command(kind, endog=endog, exog=regressors or None)
    # raises when recipes are required and nothing ties the data to a registered dataset
    source = find_source(ctx, columns, table=False)
    result = _fit(model, kind)
    from output_checker.models import check_model

    try:
        checked = check_model(result, conventions=ctx.conventions, parameters=ctx.parameters)
    except CheckerError as error:
        raise AnalysisError(str(error)) from None
    record = checked.to_dict()
    data_bytes = checked.evidence.coefficients_csv.encode("utf-8")
    file = OutputFile("coefficients", "csv", data_bytes, record, None)
    return Made(result, (file,), provenance_of(source, table=False), kind, call)
