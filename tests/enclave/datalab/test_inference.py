"""The weighted Welch t-test with comparison weights rescaled to Kish's effective n."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from enclave.datalab.errors import DataLabError
from enclave.datalab.inference import weighted_welch


def hand_welch(
    x_t: np.ndarray, x_c: np.ndarray, w: np.ndarray, alpha: float = 0.05
) -> tuple[float, float, float, float]:
    """Difference, CI and p by the textbook formulas, with n_eff = (sum w)^2 / sum w^2."""
    n_t = x_t.size
    n_c = w.sum() ** 2 / (w**2).sum()
    w = w * n_c / w.sum()
    mean_c = (w * x_c).sum() / w.sum()
    var_t = x_t.var(ddof=1)
    var_c = (w * (x_c - mean_c) ** 2).sum() / (n_c - 1)
    se = np.sqrt(var_t / n_t + var_c / n_c)
    df = (var_t / n_t + var_c / n_c) ** 2 / (
        (var_t / n_t) ** 2 / (n_t - 1) + (var_c / n_c) ** 2 / (n_c - 1)
    )
    difference = x_t.mean() - mean_c
    half = stats.t.ppf(1 - alpha / 2, df) * se
    p = 2 * stats.t.sf(abs(difference / se), df)
    return difference, difference - half, difference + half, p


def test_weighted_welch_matches_the_hand_formula() -> None:
    rng = np.random.default_rng(4)
    x_t = (rng.random(300) < 0.2).astype(float)
    x_c = (rng.random(5_000) < 0.3).astype(float)
    w = rng.exponential(1.0, 5_000) * (rng.random(5_000) < 0.7)
    result = weighted_welch(x_t, x_c, w)
    difference, low, high, p = hand_welch(x_t, x_c[w > 0], w[w > 0])
    assert result.difference == pytest.approx(difference)
    assert result.ci_low == pytest.approx(low)
    assert result.ci_high == pytest.approx(high)
    assert result.p_value == pytest.approx(p)
    assert result.n_treated == 300
    assert result.n_comparison == int((w > 0).sum())
    assert result.effective_n == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert result.significant == (p < 0.05)
    half_t = stats.t.ppf(0.975, 299) * x_t.std(ddof=1) / np.sqrt(300)
    assert result.treated_ci == pytest.approx((x_t.mean() - half_t, x_t.mean() + half_t))
    assert result.comparison_ci[0] < result.mean_comparison < result.comparison_ci[1]


def test_equal_weights_give_the_ordinary_welch_test() -> None:
    rng = np.random.default_rng(5)
    x_t, x_c = rng.normal(0.2, 1, 80), rng.normal(0, 2, 200)
    result = weighted_welch(x_t, x_c, np.full(200, 0.4))
    reference = stats.ttest_ind(x_t, x_c, equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.statistic == pytest.approx(reference.statistic)


def test_scaling_the_weights_changes_nothing() -> None:
    rng = np.random.default_rng(6)
    x_t, x_c, w = rng.normal(size=90), rng.normal(size=400), rng.random(400)
    one, other = weighted_welch(x_t, x_c, w), weighted_welch(x_t, x_c, 37 * w)
    assert one.p_value == pytest.approx(other.p_value)
    assert one.ci_low == pytest.approx(other.ci_low)


def test_raw_att_weights_would_overstate_the_standard_error() -> None:
    """Radius weights summing to n_t = 100 over 20,000 people: the rescaled test uses the
    far larger n_eff, so its interval is narrower than one on the raw weights."""
    rng = np.random.default_rng(7)
    x_t = (rng.random(100) < 0.2).astype(float)
    x_c = (rng.random(20_000) < 0.3).astype(float)
    w = np.full(20_000, 100 / 20_000)
    result = weighted_welch(x_t, x_c, w)
    var_t, var_c = x_t.var(ddof=1), x_c.var(ddof=1)
    raw_se = np.sqrt(var_t / 100 + var_c / 100)
    assert result.effective_n == pytest.approx(20_000)
    assert (result.ci_high - result.ci_low) / 2 < 1.96 * raw_se * 0.75


def test_bad_input_is_refused() -> None:
    with pytest.raises(DataLabError, match="differ in length"):
        weighted_welch(np.ones(3), np.ones(3), np.ones(2))
    with pytest.raises(DataLabError, match="non-negative"):
        weighted_welch(np.ones(3), np.ones(3), np.array([1.0, -1.0, 1.0]))
    with pytest.raises(DataLabError, match="effective comparison n"):
        weighted_welch(np.ones(3), np.ones(3), np.array([1.0, 0.0, 0.0]))
    with pytest.raises(DataLabError, match="finite"):
        weighted_welch(np.array([1.0, np.nan]), np.ones(3), np.ones(3))


def test_identical_outcomes_give_no_significance() -> None:
    result = weighted_welch(np.zeros(70), np.zeros(500), np.ones(500))
    assert result.difference == 0
    assert not result.significant
