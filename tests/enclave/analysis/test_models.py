"""Regressions: the statsmodels result comes back unchanged; the recorded output is the
coefficient table with the model checks (ACRO: df_resid only)."""

from __future__ import annotations

import pandas as pd
import pytest
import statsmodels.api as sm

import enclave.analysis as ea
from enclave.analysis import AnalysisError, Session
from output_checker.status import Status
from tests.enclave.analysis.conftest import Echo


def test_ols_array_api_returns_the_fit_and_records_coefficients(
    session: Session, charities: pd.DataFrame, echo: Echo
) -> None:
    exog = ea.add_constant(charities[["inc_grants", "inc_donations", "total_costs"]])
    result = session.ols(charities.inc_activity, exog)
    assert result.df_resid == 914
    assert result.rsquared > 0.8
    output = session.outputs.get("output_0")
    assert output.status is Status.PASS
    file = output.files[0]
    assert file.record is not None and file.record["model"]["df_resid"] == 914
    assert file.data.decode().splitlines()[0] == "term,params,bse,pvalues"
    assert "residual df = 914" in echo.last


def test_ten_rows_fail_on_degrees_of_freedom(session: Session, charities: pd.DataFrame) -> None:
    small = charities.head(10)
    session.olsr("inc_activity ~ inc_grants + inc_donations + total_costs", data=small)
    record = session.outputs.get("output_0").files[0].record
    assert record is not None
    assert record["checks"]["dof"]["status"] == "fail"
    assert record["model"]["df_resid"] == 6


def test_formula_logit_probit_and_glm(session: Session, charities: pd.DataFrame) -> None:
    frame = charities.assign(alive=(charities.survivor == "Alive").astype(int))
    session.logitr("alive ~ total_costs + C(grant_type)", data=frame)
    session.probit("alive ~ total_costs", data=frame)
    session.glm("alive ~ total_costs", data=frame, family=sm.families.Binomial())
    session.glm(frame.inc_grants.round(), ea.add_constant(frame[["total_costs"]]) / 1e5,
                family=sm.families.Poisson())  # fmt: skip
    methods = [o.method for o in session.outputs]
    assert methods == ["logit", "probit", "glm", "glm"]
    # R/G has 48 charities: every level of the categorical regressor is counted
    levels = session.outputs.get("output_0").files[0].record["model"]["levels"]  # type: ignore[index]
    assert {lv["level"] for lv in levels if lv["column"] == "C(grant_type)"} == {
        "G",
        "N",
        "R",
        "R/G",
    }


def test_model_errors_are_one_line_and_record_nothing(
    session: Session, charities: pd.DataFrame
) -> None:
    with pytest.raises(AnalysisError, match="cannot be built"):
        session.olsr("inc_activity ~ no_such_column", data=charities)
    with pytest.raises(AnalysisError, match="the data are empty"):
        session.olsr("inc_activity ~ inc_grants", data=charities.iloc[0:0])
    with pytest.raises(AnalysisError, match="give exog"):
        session.ols(charities.inc_activity)
    with pytest.raises(AnalysisError, match="needs data"):
        session.ols("inc_activity ~ inc_grants")
    assert len(session.outputs) == 0
