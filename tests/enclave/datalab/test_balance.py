"""Standardised mean differences before and after matching, their bands and the
publication block."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enclave.datalab.balance import balance, rating
from enclave.datalab.errors import DataLabError


def test_smd_matches_a_hand_computation() -> None:
    treated = pd.DataFrame({"age": [20.0, 30.0, 40.0], "male": [1.0, 0.0, 1.0]})
    comparison = pd.DataFrame({"age": [20.0, 25.0, 50.0, 60.0], "male": [1.0, 1.0, 0.0, 0.0]})
    matched = np.array([True, True, False])
    weights = np.array([0.5, 1.0, 0.5, 0.0])
    result = balance(treated, comparison, matched, weights).table

    var_t = np.var([20, 30, 40], ddof=1)
    var_c = np.var([20, 25, 50, 60], ddof=1)
    pooled = np.sqrt((var_t + var_c) / 2)
    before = (30 - 38.75) / pooled
    after = (25 - (0.5 * 20 + 25 + 0.5 * 50) / 2) / pooled
    assert result.loc["age", "pooled_sd"] == pytest.approx(pooled)
    assert result.loc["age", "smd_before"] == pytest.approx(before)
    assert result.loc["age", "smd_after"] == pytest.approx(after)
    male_pooled = np.sqrt((np.var([1, 0, 1], ddof=1) + np.var([1, 1, 0, 0], ddof=1)) / 2)
    assert result.loc["male", "smd_after"] == pytest.approx((0.5 - 0.75) / male_pooled)


@pytest.mark.parametrize(
    "smd,expected",
    [
        (0.0, "good"),
        (-0.0499, "good"),
        (0.05, "acceptable"),
        (-0.10, "acceptable"),
        (0.1001, "poor"),
        (-1.3, "poor"),
    ],
)
def test_bands(smd: float, expected: str) -> None:
    assert rating(smd) == expected


def test_any_poor_covariate_after_matching_blocks_publication() -> None:
    rng = np.random.default_rng(0)
    treated = pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.normal(0.5, 1, 500)})
    comparison = pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.normal(0, 1, 500)})
    result = balance(treated, comparison, np.ones(500, bool), np.ones(500))
    assert result.max_abs_before == pytest.approx(result.max_abs_after)
    assert result.max_abs_after > 0.3
    assert result.poor_after == ["b"]
    assert not result.publishable
    fixed = pd.DataFrame({"a": comparison["a"], "b": treated["b"].to_numpy()})
    balanced = balance(treated, fixed, np.ones(500, bool), np.ones(500))
    assert balanced.max_abs_after < 0.10
    assert balanced.publishable


def test_a_constant_covariate_is_balanced_when_equal() -> None:
    treated = pd.DataFrame({"flag": [1.0, 1.0]})
    result = balance(treated, pd.DataFrame({"flag": [1.0, 1.0]}), np.ones(2, bool), np.ones(2))
    assert result.table.loc["flag", "smd_after"] == 0.0
    different = balance(treated, pd.DataFrame({"flag": [0.0, 0.0]}), np.ones(2, bool), np.ones(2))
    assert different.table.loc["flag", "smd_after"] == np.inf
    assert not different.publishable


def test_mismatched_columns_and_no_match_are_refused() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(DataLabError, match="differ"):
        balance(frame, pd.DataFrame({"b": [1.0, 2.0]}), np.ones(2, bool), np.ones(2))
    with pytest.raises(DataLabError, match="no treated person was matched"):
        balance(frame, frame, np.zeros(2, bool), np.ones(2))
