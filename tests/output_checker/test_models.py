"""Model checks (spec §5, §12.1): T18-T20, level counts, lookup models, unit-level outputs, and
parity with ACRO 1.0.2's regression check (A13 on generated data)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels import formula as sm_formula

from output_checker.errors import InputError, ParameterError
from output_checker.models import ModelResult, check_model, recheck_record
from output_checker.parameters import Parameters
from output_checker.status import Status


def _ols(n: int, k: int, seed: int = 0) -> Any:
    """A real OLS fit with N = n and k = k parameters (a constant and k - 1 regressors)."""
    rng = np.random.default_rng(seed)
    exog = sm.add_constant(rng.normal(size=(n, k - 1)))
    endog = exog @ rng.normal(size=k) + rng.normal(size=n)
    return sm.OLS(endog, exog).fit()


def _frame(n: int = 120, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    frame["y"] = 1.5 * frame["x"] - frame["z"] + rng.normal(size=n)
    return frame


def _statuses(result: ModelResult) -> dict[str, str]:
    return {name: check.status.label for name, check in result.checks.items()}


# ----- T18-T20 (spec §13.1) -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("vector", "n", "k", "dof", "saturation", "canonical", "acro"),
    [
        ("T18", 25, 16, "fail", "fail", "fail", "fail"),
        ("T19", 26, 16, "pass", "fail", "fail", "pass"),
        ("T20", 25, 8, "pass", "pass", "pass", "pass"),
    ],
)
def test_dof_and_saturation_vectors(
    vector: str, n: int, k: int, dof: str, saturation: str, canonical: str, acro: str
) -> None:
    fit = _ols(n, k)
    result = check_model(fit)
    record = result.to_dict()
    assert record["model"]["nobs"] == n and record["model"]["k"] == k
    assert record["model"]["df_resid"] == n - k
    assert record["checks"]["dof"]["status"] == dof, vector
    assert record["checks"]["saturation"]["status"] == saturation, vector
    assert record["checks"]["saturation"]["limit"] == pytest.approx(0.33 * n)
    assert result.status.label == canonical, result.summary()
    acro_result = check_model(fit, conventions="acro")
    assert set(acro_result.checks) == {"dof"}
    assert acro_result.status.label == acro


def test_tightened_dof_threshold_is_used() -> None:
    params = Parameters.for_conventions("default").tightened(dof_threshold=20)
    result = check_model(_ols(25, 8), parameters=params)  # T20: df_resid 17
    assert result.checks["dof"].status == Status.FAIL
    assert result.checks["dof"].numbers["threshold"] == 20


def test_parameters_for_other_conventions_are_refused() -> None:
    with pytest.raises(ParameterError):
        check_model(_ols(40, 3), conventions="acro", parameters=Parameters())


def test_small_sample_fails_sample_size() -> None:
    result = check_model(_ols(8, 2))
    assert result.checks["sample_size"].status == Status.FAIL
    assert result.checks["sample_size"].numbers == {"nobs": 8.0, "threshold": 10}


# ----- per-level counts -----------------------------------------------------------------------
def test_one_person_dummy_fails_canonically_but_passes_acro() -> None:
    frame = _frame()
    frame["alone"] = 0
    frame.loc[17, "alone"] = 1
    frame.loc[17, "y"] = 123.456789  # that person's value: the dummy's coefficient returns it
    fit = sm.OLS(frame["y"], sm.add_constant(frame[["x", "alone"]])).fit()
    result = check_model(fit)
    assert result.checks["level_count"].status == Status.FAIL
    failing = result.checks["level_count"].numbers["failing"]
    assert failing == [{"source": "regressor", "column": "alone", "level": "1", "n": 1}]
    assert "alone=1 (1)" in result.summary()
    text = json.dumps(result.to_dict())
    assert "123.45" not in text  # evidence names the level, never the unit's value
    assert check_model(fit, conventions="acro").status == Status.PASS  # ACRO's gap (§5)


def test_two_valued_regressor_levels_are_not_shown_as_values() -> None:
    frame = _frame()
    frame["dose"] = np.where(np.arange(len(frame)) < 3, 37.25, 12.5)
    fit = sm.OLS(frame["y"], sm.add_constant(frame[["x", "dose"]])).fit()
    failing = check_model(fit).checks["level_count"].numbers["failing"]
    assert failing == [{"source": "regressor", "column": "dose", "level": "higher value", "n": 3}]
    assert "37.25" not in json.dumps(check_model(fit).to_dict())


def test_logit_with_five_events_fails() -> None:
    frame = _frame(200)
    frame["event"] = 0
    frame.loc[[3, 40, 77, 120, 199], "event"] = 1
    fits = [
        smf.logit("event ~ x", frame).fit(disp=0),
        sm.Probit(frame["event"], sm.add_constant(frame[["x"]])).fit(disp=0),
        smf.glm("event ~ x", frame, family=sm.families.Binomial()).fit(),
    ]
    for fit in fits:
        result = check_model(fit)
        assert result.status == Status.FAIL, type(fit.model).__name__
        failing = result.checks["level_count"].numbers["failing"]
        assert failing == [{"source": "outcome", "column": "event", "level": "1", "n": 5}]
        assert result.to_dict()["model"]["family"] == "Binomial"


def test_logit_with_enough_events_passes() -> None:
    frame = _frame(200)
    frame["event"] = (frame["x"] + np.random.default_rng(5).normal(size=200) > 0).astype(int)
    result = check_model(smf.logit("event ~ x + z", frame).fit(disp=0))
    assert result.status == Status.PASS, result.summary()
    outcome = [lv for lv in result.evidence.levels or () if lv.source == "outcome"]
    assert sum(lv.n for lv in outcome) == 200 and len(outcome) == 2


def test_grouped_binomial_counts_events_and_non_events() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=30)
    events = np.zeros(30, dtype=int)
    events[:4] = 1  # four events in all, spread over four groups of 20 trials
    endog = np.column_stack([events, 20 - events])
    fit = sm.GLM(endog, sm.add_constant(x), family=sm.families.Binomial()).fit()
    failing = check_model(fit).checks["level_count"].numbers["failing"]
    assert [(lv["source"], lv["level"], lv["n"]) for lv in failing] == [("outcome", "events", 4)]


def _rare_reference_frame() -> pd.DataFrame:
    frame = _frame(90)
    # "a" sorts first, so it is the reference level: it has no dummy column of its own
    frame["g"] = ["a"] * 3 + ["b", "c"] * 43 + ["b"]
    return frame


def test_formula_categorical_with_rare_reference_level_fails() -> None:
    frame = _rare_reference_frame()
    fit = smf.ols("y ~ x + C(g)", frame).fit()
    assert "C(g)[T.a]" not in fit.model.exog_names
    levels = {(lv.column, lv.level): lv.n for lv in check_model(fit).evidence.levels or ()}
    assert levels == {("C(g)", "a"): 3, ("C(g)", "b"): 44, ("C(g)", "c"): 43}
    result = check_model(fit)
    assert result.checks["level_count"].status == Status.FAIL
    assert result.checks["level_count"].numbers["failing"] == [
        {"source": "categorical", "column": "C(g)", "level": "a", "n": 3}
    ]


def test_sum_coded_categorical_counts_every_level() -> None:
    frame = _rare_reference_frame()
    fit = smf.ols("y ~ x + C(g, Sum)", frame).fit()
    levels = {lv.level: lv.n for lv in check_model(fit).evidence.levels or ()}
    assert levels == {"a": 3, "b": 44, "c": 43}


def test_formulaic_engine_reference_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sm_formula.options, "formula_engine", "formulaic")
    fit = smf.ols("y ~ x + C(g)", _rare_reference_frame()).fit()
    assert type(fit.model.data.model_spec).__module__.startswith("formulaic")
    result = check_model(fit)
    assert result.checks["level_count"].numbers["failing"] == [
        {"source": "categorical", "column": "C(g)", "level": "a", "n": 3}
    ]


def test_binary_weights_levels_are_counted() -> None:
    frame = _frame()
    weights = np.ones(len(frame))
    weights[:2] = 2.0
    fit = sm.WLS(frame["y"], sm.add_constant(frame[["x"]]), weights=weights).fit()
    failing = check_model(fit).checks["level_count"].numbers["failing"]
    assert failing == [{"source": "weights", "column": "weights", "level": "higher value", "n": 2}]


def test_poisson_glm_with_offset_passes() -> None:
    frame = _frame()
    rng = np.random.default_rng(9)
    frame["count"] = rng.poisson(np.exp(0.3 * frame["x"] + 1.0))
    frame["exposure"] = rng.uniform(1.0, 3.0, size=len(frame))
    fit = smf.glm(
        "count ~ x", frame, family=sm.families.Poisson(), offset=np.log(frame["exposure"])
    ).fit()
    result = check_model(fit)
    assert result.status == Status.PASS, result.summary()
    assert result.to_dict()["model"]["family"] == "Poisson"


# ----- lookup models and unit-level outputs ---------------------------------------------------
def test_perfect_fit_is_a_lookup_model() -> None:
    frame = _frame()
    frame["y"] = 2.0 * frame["x"] + 1.0
    result = check_model(smf.ols("y ~ x", frame).fit())
    lookup = result.checks["lookup"]
    assert lookup.status == Status.FAIL
    assert lookup.numbers["rsquared"] == pytest.approx(1.0, abs=1e-12)
    assert result.status == Status.FAIL


def test_ordinary_fit_is_not_a_lookup_model() -> None:
    lookup = check_model(_ols(200, 3)).checks["lookup"]
    assert lookup.status == Status.PASS
    assert 0 < lookup.numbers["rsquared"] < 1 and lookup.numbers["residual_variance"] > 0


@pytest.mark.parametrize(
    "unit_level", ["residuals", "fittedvalues", "predictions", "leverage", "influence", "resid"]
)
def test_unit_level_outputs_fail(unit_level: str) -> None:
    fit = _ols(200, 3)
    result = check_model(fit, outputs=("coefficients", unit_level))
    assert result.checks["unit_level"].status == Status.FAIL
    assert result.status == Status.FAIL
    assert check_model(fit, outputs=("coefficients", "summary")).status == Status.PASS


def test_unknown_output_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown model output 'everything'"):
        check_model(_ols(200, 3), outputs=("coefficients", "everything"))


def test_not_a_model_is_an_input_error() -> None:
    with pytest.raises(InputError, match="fitted statsmodels result"):
        check_model(pd.DataFrame({"a": [1, 2]}))


# ----- what cannot be read is never passed ----------------------------------------------------
def test_unsupported_model_class_goes_to_review() -> None:
    frame = _frame(300)
    frame["choice"] = np.digitize(frame["x"], [-0.5, 0.5])
    fit = sm.MNLogit(frame["choice"], sm.add_constant(frame[["z"]])).fit(disp=0)
    result = check_model(fit)
    assert result.status == Status.REVIEW
    assert any("MNLogit is not supported" in note for note in result.notes)


def test_model_saved_without_data_goes_to_review(tmp_path: Path) -> None:
    fit = _ols(200, 3)
    path = tmp_path / "no-data.pickle"
    fit.save(path, remove_data=True)
    loaded = sm.load(path)  # our own file: the restricted loader is tested elsewhere
    result = check_model(loaded)
    assert result.status == Status.REVIEW
    assert result.checks["dof"].status == Status.PASS
    assert result.checks["level_count"].status == Status.REVIEW
    assert result.checks["sample_size"].status == Status.REVIEW


# ----- manifest record ------------------------------------------------------------------------
def test_manifest_record_envelope_and_coefficient_hash() -> None:
    frame = _frame()
    fit = smf.ols("y ~ x + z", frame).fit()
    record = check_model(fit, outputs=["coefficients", "standard_errors"]).to_dict()
    json.dumps(record, allow_nan=False)
    assert record["kind"] == "model" and record["output_type"] == "regression"
    assert record["status"] == "pass" and record["summary"].startswith("pass")
    assert record["parameters"] == Parameters().to_dict()
    assert set(record["checks"]) == {
        "dof",
        "sample_size",
        "level_count",
        "saturation",
        "lookup",
        "unit_level",
    }
    assert record["model"]["class"] == "OLS" and record["model"]["k"] == 3
    assert record["model"]["rsquared"] == pytest.approx(fit.rsquared)
    table = pd.DataFrame(
        {"params": fit.params, "bse": fit.bse, "pvalues": fit.pvalues}
    ).rename_axis("term")
    expected = hashlib.sha256(table.to_csv().encode()).hexdigest()
    assert record["output"] == {"format": "csv", "sha256": expected}


def test_array_api_names_its_columns() -> None:
    frame = _frame()
    frame["alone"] = (np.arange(len(frame)) == 5).astype(float)
    exog = sm.add_constant(frame[["x", "alone"]].to_numpy())
    record = check_model(sm.OLS(frame["y"].to_numpy(), exog).fit()).to_dict()
    assert record["checks"]["level_count"]["failing"] == [
        {"source": "regressor", "column": "x2", "level": "1", "n": 1}
    ]


# ----- ACRO parity (spec §12.5 A13, on generated data) ----------------------------------------
@pytest.fixture
def acro_session(acro: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)  # ACRO may write its outputs into the working directory
    session = acro.ACRO(suppress=False)
    monkeypatch.setattr(logging.getLogger("acro"), "disabled", True)
    return session


def test_acro_parity_ols(acro_session: Any) -> None:
    frame = _frame(300, seed=7)
    frame["w"] = frame["x"] * 0.5 + np.random.default_rng(8).normal(size=300)
    exog = sm.add_constant(frame[["x", "z", "w"]])
    for rows in (300, 10):  # A13: all rows pass; the first 10 rows give df_resid 6 and fail
        fit = acro_session.ols(frame["y"].iloc[:rows], exog.iloc[:rows])
        record = acro_session.results.get(acro_session.results.get_keys()[-1])
        ours = check_model(fit, conventions="acro")
        assert ours.status.label == record.status
        assert ours.evidence.df_resid == record.properties["dof"]
    statuses = [acro_session.results.get(key).status for key in acro_session.results.get_keys()]
    assert statuses == ["pass", "fail"]


def test_acro_parity_logit(acro_session: Any) -> None:
    frame = _frame(300, seed=11)
    frame["event"] = np.random.default_rng(12).integers(0, 2, size=300)  # no separation
    exog = sm.add_constant(frame[["x", "z"]])
    for rows in (300, 12):
        fit = acro_session.logit(frame["event"].iloc[:rows], exog.iloc[:rows])
        record = acro_session.results.get(acro_session.results.get_keys()[-1])
        assert check_model(fit, conventions="acro").status.label == record.status
    statuses = [acro_session.results.get(key).status for key in acro_session.results.get_keys()]
    assert statuses == ["pass", "fail"]  # df_resid 297, then 9


def test_distinct_rows_agree_with_numpy_unique() -> None:
    from output_checker.model_evidence import _distinct_rows

    rng = np.random.default_rng(21)
    for columns in (1, 3, 12):
        block = rng.integers(-1, 2, size=(5000, columns)).astype(float)
        rows, counts = _distinct_rows(block)
        expected_rows, expected_counts = np.unique(block, axis=0, return_counts=True)
        order = np.lexsort(rows.T[::-1])
        np.testing.assert_array_equal(rows[order], expected_rows)
        np.testing.assert_array_equal(counts[order], expected_counts)


# ----- the queue re-runs the checks on a record's evidence ------------------------------------
def _fits() -> list[Any]:
    frame = _frame()
    frame["alone"] = 0
    frame.loc[17, "alone"] = 1
    frame["b"] = (frame["z"] > 0).astype(int)
    return [
        _ols(25, 16),  # dof and saturation fail
        _ols(200, 3),  # passes
        sm.OLS(frame["y"], sm.add_constant(frame[["x", "alone"]])).fit(),  # one-person dummy
        smf.ols("y ~ x", frame.assign(y=2.0 * frame["x"] + 1.0)).fit(),  # lookup
        smf.logit("b ~ x", frame).fit(disp=0),
    ]


@pytest.mark.parametrize("which", range(5))
def test_a_record_rechecked_gives_the_sessions_verdicts(which: int) -> None:
    result = check_model(_fits()[which])
    again = recheck_record(json.loads(json.dumps(result.to_dict())), Parameters())
    assert _statuses(again) == _statuses(result)
    assert again.status == result.status


def test_a_forged_pass_is_rechecked_with_the_servers_parameters() -> None:
    record = check_model(_ols(25, 16)).to_dict()
    record["status"], record["checks"] = "pass", {}  # the session's verdict is never read
    assert recheck_record(record, Parameters()).status == Status.FAIL
    passing = check_model(_ols(200, 3)).to_dict()
    strict = recheck_record(passing, Parameters(dof_threshold=500))
    assert strict.checks["dof"].status == Status.FAIL


def test_a_record_without_its_evidence_goes_to_review() -> None:
    record = check_model(_ols(200, 3)).to_dict()
    del record["model"]["level_note"], record["model"]["response_square"]
    result = recheck_record(record, Parameters())
    assert result.status == Status.REVIEW
    assert "lacks response_square, level_note" in result.summary()


def test_a_malformed_model_record_is_an_input_error() -> None:
    record = check_model(_ols(200, 3)).to_dict()
    record["model"]["levels"] = [{"source": "regressor"}]
    with pytest.raises(InputError, match="malformed model record"):
        recheck_record(record, Parameters())
    with pytest.raises(InputError, match="not a model record"):
        recheck_record({"kind": "table"}, Parameters())
