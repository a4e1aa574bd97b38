"""The propensity model: encoding with reference levels, the rank check before fitting,
and recovery of a known logistic model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from enclave.datalab import propensity
from enclave.datalab.errors import DataLabError
from enclave.datalab.propensity import INTERCEPT, dependent_columns, encode, fit_propensity


def _people(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(35, 10, n),
            "region": rng.choice(["north", "east", "south"], n),
            "employed": rng.random(n) < 0.4,
        }
    )
    score = (
        -2.0
        + 0.03 * (frame["age"] - 35)
        + 0.8 * (frame["region"] == "north")
        - 0.5 * (frame["region"] == "south")
        + 1.0 * frame["employed"]
    )
    return frame, rng.random(n) < expit(score.to_numpy())


def test_encoding_keeps_every_level_and_drops_the_first_sorted_one() -> None:
    frame = pd.DataFrame({"region": ["south", "east", "north"], "flag": [True, False, True]})
    encoded = encode(frame, ["region", "flag"])
    assert list(encoded.levels.columns) == ["region=east", "region=north", "region=south", "flag"]
    assert encoded.reference == ("region=east",)
    assert list(encoded.design.columns) == ["region=north", "region=south", "flag"]
    assert encoded.levels["flag"].tolist() == [1.0, 0.0, 1.0]


def test_a_declared_category_order_chooses_the_reference() -> None:
    frame = pd.DataFrame({"size": pd.Categorical(["big", "small"], categories=["small", "big"])})
    assert encode(frame, ["size"]).reference == ("size=small",)


def test_unknown_covariates_are_named() -> None:
    with pytest.raises(DataLabError, match="covariates not in the data: height"):
        encode(pd.DataFrame({"age": [1.0]}), ["age", "height"])


def test_fit_recovers_the_true_coefficients_with_standard_errors() -> None:
    frame, treated = _people(40_000)
    encoded = encode(frame, ["age", "region", "employed"])
    model = fit_propensity(encoded.design, treated)
    coefficients = dict(zip(model.columns, model.coefficients, strict=True))
    errors = dict(zip(model.columns, model.standard_errors, strict=True))
    # east is the reference level, whose effect is 0 in the true model
    truth = {
        INTERCEPT: -2.0 - 0.03 * 35,
        "age": 0.03,
        "region=north": 0.8,
        "region=south": -0.5,
        "employed": 1.0,
    }
    for term, value in truth.items():
        coefficient, se = coefficients[term], errors[term]
        assert se > 0
        assert abs(coefficient - value) < 4 * se, term
    assert model.logit_treated.size == treated.sum()
    assert model.logit_comparison.size == (~treated).sum()


def test_a_full_dummy_set_with_an_intercept_is_refused_by_name() -> None:
    frame, treated = _people(2_000)
    encoded = encode(frame, ["age", "region"])
    with pytest.raises(DataLabError, match=r"rank-deficient.*region=south"):
        fit_propensity(encoded.levels, treated)


def test_a_duplicated_covariate_is_refused_by_name() -> None:
    frame, treated = _people(2_000)
    frame["age_in_months"] = frame["age"] * 12
    with pytest.raises(DataLabError, match=r"rank-deficient.*age_in_months"):
        fit_propensity(encode(frame, ["age", "age_in_months"]).design, treated)


def test_a_constant_covariate_is_refused_by_name() -> None:
    frame, treated = _people(2_000)
    frame["cohort_year"] = 2020.0
    with pytest.raises(DataLabError, match=r"rank-deficient.*cohort_year"):
        fit_propensity(encode(frame, ["age", "cohort_year"]).design, treated)


def test_an_all_zero_column_is_refused_by_name() -> None:
    frame, treated = _people(500)
    frame["never"] = 0
    with pytest.raises(DataLabError, match="all-zero columns: never"):
        fit_propensity(encode(frame, ["age", "never"]).design, treated)


def test_perfect_separation_is_refused() -> None:
    frame = pd.DataFrame({"age": np.arange(200.0)})
    with pytest.raises(DataLabError, match="separate treated from comparison"):
        fit_propensity(encode(frame, ["age"]).design, frame["age"].to_numpy() >= 100)


def test_a_level_found_among_comparison_people_only_is_separation() -> None:
    frame, treated = _people(3_000)
    frame["programme_area"] = np.where(treated, "a", np.where(np.arange(3_000) % 2, "a", "b"))
    with pytest.raises(DataLabError, match="separate treated from comparison"):
        fit_propensity(encode(frame, ["age", "programme_area"]).design, treated)


def test_missing_values_and_one_group_only_are_refused() -> None:
    frame = pd.DataFrame({"age": [1.0, np.nan, 3.0, 4.0]})
    with pytest.raises(DataLabError, match="finite and complete"):
        fit_propensity(encode(frame, ["age"]).design, np.array([True, False, False, False]))
    with pytest.raises(DataLabError, match="both treated and comparison"):
        fit_propensity(encode(frame, ["age"]).design, np.zeros(4, dtype=bool))


def test_dependent_columns_names_the_later_of_two_collinear_columns() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=100)
    b = rng.normal(size=100)
    x = np.column_stack([np.ones(100), a, b, 2 * a - b])
    assert dependent_columns(x, ["one", "a", "b", "c"]) == ["c"]
    assert dependent_columns(x[:, :3], ["one", "a", "b"]) == []


def test_the_warm_start_for_large_pools_reaches_the_same_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame, treated = _people(30_000, seed=9)
    design = encode(frame, ["age", "region", "employed"]).design
    cold = fit_propensity(design, treated)
    monkeypatch.setattr(propensity, "WARM_START_ROWS", 3_000)
    warm = fit_propensity(design, treated)
    np.testing.assert_allclose(warm.coefficients, cold.coefficients, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(warm.standard_errors, cold.standard_errors, rtol=1e-6)
    assert warm.iterations < cold.iterations
