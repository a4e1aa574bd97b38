"""Individual, global and household risk against sdcMicro's tests and rendered examples."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from output_checker.microdata.risk.frequencies import frequencies
from output_checker.microdata.risk.individual import (
    household_risk,
    individual_risk,
    kanon_violations,
    measure_risk,
    risk_threshold,
)
from tests.output_checker.microdata.conftest import RUniform
from tests.output_checker.microdata.test_frequencies import W8, r_array

NA = np.nan
# tests/testthat/test_indivRisk.R: the data sets and the asserted risk vectors.
NO_MISSING = r_array([2, 3, 2, 2, 3, 3, 1, 2, 3, 3, 3, 3, 3, 3, 4, 3, 1, 3, 1, 2, 1, 1, 1, 1], 8, 3)
WITH_MISSING = r_array(
    [2, 3, 2, 2, 3, 3, 1, NA, 3, 3, 3, 3, 3, 3, 4, 3, 1, 3, NA, 2, 1, 1, NA, 1], 8, 3
)
INDIVRISK_WEIGHTED = [
    (NO_MISSING, "approx", 1, [0.01369863, 0.08579129, 0.01369863, 0.17707583, 0.01877883,
                               0.01877883, 0.03931625, 0.01369863]),
    (NO_MISSING, "approx", 2, [0.02739726, 0.17158258, 0.02739726, 0.35415167, 0.03755767,
                               0.03755767, 0.07863251, 0.02739726]),
    (NO_MISSING, "exact", 1, [0.01355297, 0.08579129, 0.01355297, 0.17707583, 0.01877883,
                              0.01877883, 0.03931625, 0.01355297]),
    (NO_MISSING, "exact", 2, [0.02710594, 0.17158258, 0.02710594, 0.35415167, 0.03755767,
                              0.03755767, 0.07863251, 0.02710594]),
    (WITH_MISSING, "approx", 1, [0.013698630, 0.085791288, 0.010554090, 0.032466112,
                                 0.009836066, 0.009836066, 0.039316254, 0.005973716]),
    (WITH_MISSING, "approx", 2, [0.02739726, 0.17158258, 0.02110818, 0.06493222, 0.01967213,
                                 0.01967213, 0.07863251, 0.01194743]),
    (WITH_MISSING, "exact", 1, [0.013552968, 0.085791288, 0.010504889, 0.032466112,
                                0.009756889, 0.009756889, 0.039316254, 0.005962551]),
    (WITH_MISSING, "exact", 2, [0.02710594, 0.17158258, 0.02100978, 0.06493222, 0.01951378,
                                0.01951378, 0.07863251, 0.01192510]),
]  # fmt: skip


@pytest.mark.parametrize(("data", "method", "qual", "expected"), INDIVRISK_WEIGHTED)
def test_indivrisk_weighted_vectors(
    data: pd.DataFrame, method: str, qual: float, expected: list[float]
) -> None:
    f = frequencies(data, W8)
    risk = individual_risk(f.fk, f.Fk, method=method, qual=qual)
    # the expected values are written with 8-9 decimals: agree to half a unit of the 8th
    np.testing.assert_allclose(risk, expected, rtol=0, atol=5e-9)


@pytest.mark.parametrize("data", [NO_MISSING, WITH_MISSING])
@pytest.mark.parametrize("method", ["approx", "exact"])
@pytest.mark.parametrize("qual", [1.0, 2.0])
def test_indivrisk_unweighted_and_survey_false(
    data: pd.DataFrame, method: str, qual: float
) -> None:
    # test_indivRisk.R: survey=FALSE gives 1/fk whatever method/qual; unweighted gives qual/fk
    one_over_fk = {
        id(NO_MISSING): [1 / 3, 1, 1 / 3, 1, 0.5, 0.5, 1, 1 / 3],
        id(WITH_MISSING): [1 / 3, 1, 0.25, 0.5, 1 / 3, 1 / 3, 1, 0.2],
    }[id(data)]
    weighted = frequencies(data, W8)
    survey_false = individual_risk(weighted.fk, weighted.Fk, method=method, qual=qual,
                                   survey=False)  # fmt: skip
    np.testing.assert_allclose(survey_false, one_over_fk)
    unweighted = frequencies(data)
    risk = individual_risk(unweighted.fk, unweighted.Fk, method=method, qual=qual)
    np.testing.assert_allclose(risk, qual * np.array(one_over_fk))


def test_francdat_indivrisk_example(sdcmicro_dir: Path) -> None:
    # man/indivRisk.Rd example output (rendered reference page indivRisk.html)
    data = pd.read_csv(sdcmicro_dir / "francdat.csv")
    f = frequencies(data[["Key1", "Key2", "Key3", "Key4"]], data["w"].to_numpy())
    expected = [0.01714426, 0.02204233, 0.02204233, 0.17707583, 0.01165448, 0.29706308,
                0.40235948, 0.01714426]  # fmt: skip
    np.testing.assert_allclose(individual_risk(f.fk, f.Fk), expected, rtol=0, atol=5e-9)


def exact_by_loops(fk: int, pk: float) -> float:
    """Spec §2.3 exact formula written out with plain loops (integer fk > 2)."""

    def b(i: int) -> float:
        return ((fk - 1 - i) ** 2 / ((i + 1) * (fk - 2 - i))
                * (pk ** (i + 2 - fk) - 1) / (pk ** (i + 1 - fk) - 1))  # fmt: skip

    bb = 0.0
    for m in range(fk - 2):
        prod = 1.0
        for j in range(m + 1):
            prod *= b(j)
        bb += (-1) ** (m + 1) * prod
    a = (pk ** (1 - fk) - 1) / (fk - 1)
    return (pk / (1 - pk)) ** fk * (a * (1 + bb) + (-1) ** fk * math.log(pk))


def test_exact_method_matches_loop_transcription() -> None:
    fk = np.array([3.0, 4.0, 5.0, 7.0, 10.0, 4.0])
    Fk = np.array([30.0, 9.0, 80.0, 21.0, 40.0, 400.0])
    got = individual_risk(fk, Fk, method="exact")
    expected = [exact_by_loops(int(f), f / F) for f, F in zip(fk, Fk, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_fractional_fk_between_one_and_two_gets_zero_unless_fk_equals_Fk() -> None:
    risk = individual_risk(np.array([1.5, 1.5, 2.5]), np.array([30.0, 1.5, 25.0]))
    assert risk[0] == 0.0
    assert risk[1] == pytest.approx(1 / 1.5)
    # fk > 2 uses the approximation even when fractional
    assert risk[2] == pytest.approx(0.1 / (2.5 - 0.9))


def test_calcrisks_without_missing(r_set_seed: Callable[[int], RUniform]) -> None:
    # tests/testthat/test_calcRisks.R, first case: set.seed(3), keys Var4..Var6, unweighted
    rng = r_set_seed(3)
    rng.runif(30, 1, 100)
    keys = pd.DataFrame({
        "Var4": np.round(rng.runif(10, 1, 4)),
        "Var5": np.round(rng.runif(10, 1, 6)),
        "Var6": np.round(rng.runif(10, 1, 3)),
    })  # fmt: skip
    res = measure_risk(keys)
    assert res.global_risk == pytest.approx(0.8)
    assert res.expected_reidentifications == pytest.approx(8)
    assert res.global_risk_pct == pytest.approx(80)
    assert res.threshold == 0
    np.testing.assert_allclose(res.individual, [0.5, 1.0, 0.5, 1.0, 1.0, 0.5, 1.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(res.fk, [2, 1, 2, 1, 1, 2, 1, 2, 1, 1])
    np.testing.assert_array_equal(res.Fk, res.fk)


def test_calcrisks_with_missing(r_set_seed: Callable[[int], RUniform]) -> None:
    # tests/testthat/test_calcRisks.R, second case: set.seed(3), six keys with NAs
    rng = r_set_seed(3)
    rng.runif(20, 1, 100)
    highs = {"Var6": 2, "Var7": 4, "Var8": 6, "Var9": 3, "Var10": 5, "Var11": 2}
    keys = pd.DataFrame({name: np.round(rng.runif(4, 1, hi)) for name, hi in highs.items()})
    missing = {"Var6": [0, 2, 3], "Var7": [1, 2], "Var8": [2], "Var9": [0, 2], "Var10": [1, 2],
               "Var11": [2]}  # fmt: skip
    for name, rows in missing.items():
        keys.loc[rows, name] = NA
    res = measure_risk(keys)
    assert res.global_risk == pytest.approx(0.4375)
    assert res.expected_reidentifications == pytest.approx(1.75)
    assert res.threshold == 0
    np.testing.assert_allclose(res.individual, [0.5, 0.5, 0.25, 0.5])
    np.testing.assert_array_equal(res.fk, [2, 2, 4, 2])


def load_testdata(sdcmicro_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sdcmicro_dir / "testdata.csv")


KEYS5 = ["urbrur", "roof", "walls", "water", "sex"]


def test_measure_risk_testdata_unweighted(sdcmicro_dir: Path) -> None:
    # man/measure_risk.Rd example output (rendered reference page measure_risk.html)
    data = load_testdata(sdcmicro_dir)
    res = measure_risk(data[KEYS5])
    assert res.n_higher_risk == 165
    assert res.expected_reidentifications == pytest.approx(93)
    assert round(res.global_risk_pct, 2) == 2.03
    assert round(res.threshold, 2) == 0.03
    np.testing.assert_array_equal(res.fk[:6], [359, 351, 359, 359, 161, 150])
    np.testing.assert_allclose(
        res.individual[:6],
        [0.002785515, 0.002849003, 0.002785515, 0.002785515, 0.006211180, 0.006666667],
        rtol=1e-6,
    )


def test_measure_risk_testdata_weighted_with_households(sdcmicro_dir: Path) -> None:
    data = load_testdata(sdcmicro_dir)
    res = measure_risk(data[KEYS5], data["sampling_weight"].to_numpy(), household=data["ori_hid"])
    assert res.n_higher_risk == 0
    assert round(res.expected_reidentifications, 2) == 1.53
    assert round(res.global_risk_pct, 2) == 0.03
    assert math.isnan(res.threshold)  # printed "Threshold: Inf"
    np.testing.assert_allclose(
        res.individual[:6],
        [2.793218e-05, 2.857061e-05, 2.793218e-05, 2.793218e-05, 6.249609e-05, 6.710959e-05],
        rtol=1e-6,
    )
    np.testing.assert_array_equal(res.Fk[:6], [35900, 35100, 35900, 35900, 16100, 15000])
    assert res.household_expected_reidentifications is not None
    assert round(res.household_expected_reidentifications, 2) == 7.18
    assert res.household_global_risk_pct is not None
    assert round(res.household_global_risk_pct, 2) == 0.16
    # with max_global_risk = 0.0001 the printed threshold is round(threshold, 2) = 0
    strict = measure_risk(data[KEYS5], data["sampling_weight"].to_numpy(), max_global_risk=1e-4)
    assert round(strict.threshold, 2) == 0
    assert strict.threshold == reference_threshold(strict.individual, 1e-4)


def test_print_sdcmicroobj_kanon_and_risk(sdcmicro_dir: Path) -> None:
    # man/print.sdcMicroObj.Rd example: keys urbrur, roof, walls, relat, sex, weighted
    data = load_testdata(sdcmicro_dir)
    keys = data[["urbrur", "roof", "walls", "relat", "sex"]]
    res = measure_risk(keys, data["sampling_weight"].to_numpy())
    assert [res.kanon_violations(k) for k in (2, 3, 5)] == [26, 52, 141]
    assert round(res.expected_reidentifications, 2) == 2.41
    assert round(res.global_risk_pct, 2) == 0.05
    assert res.n_higher_risk_2mad == 0


def reference_threshold(risk: np.ndarray, g: float) -> float:
    """sdcMicro's measure_threshold loop, observation by observation (src/Measure_Threshold.h)."""
    r = sorted(risk, reverse=True)
    target = g * len(r)
    sum_risk = 0.0
    for value in r:
        sum_risk += value
    if sum_risk < target:
        return math.nan
    current = r[0]
    for above, value in enumerate(r):
        if value != current:
            if sum_risk + value * above < target:
                return value
            current = value
        sum_risk -= value
    return 0.0


@settings(max_examples=80, deadline=None)
@given(
    risk=st.lists(st.sampled_from([0.0, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0]), min_size=1,
                  max_size=60),
    g=st.sampled_from([0.001, 0.01, 0.05, 0.2, 0.5]),
)  # fmt: skip
def test_threshold_matches_reference_loop(risk: list[float], g: float) -> None:
    expected = reference_threshold(np.array(risk), g)
    got = risk_threshold(np.array(risk), g)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_threshold_levels() -> None:
    # Sorted: 0.2, 0.2, 0.15, 0.1 x 6, 0.05; sum 1.2 >= target 0.1 * 10 = 1. Level 0.15:
    # remaining 0.8 + 0.15 * 2 records above = 1.1 (not < 1); level 0.1: 0.65 + 0.1 * 3 = 0.95 < 1.
    risk = np.array([0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.15])
    assert risk_threshold(risk, 0.1) == 0.1
    # already safe: NaN; no level qualifies: 0
    assert math.isnan(risk_threshold(np.full(10, 0.001), 0.01))
    assert risk_threshold(np.full(10, 0.5), 0.01) == 0.0


def test_household_risk_is_product_form() -> None:
    risk = np.array([0.1, 0.2, 0.5, 0.3, 0.0])
    hh = np.array(["b", "a", "b", "c", "a"])
    got = household_risk(risk, hh)
    expected = [1 - 0.9 * 0.5, 1 - 0.8 * 1.0, 1 - 0.9 * 0.5, 0.3, 1 - 0.8 * 1.0]
    np.testing.assert_allclose(got, expected)
    with pytest.raises(ValueError, match="missing"):
        household_risk(risk, np.array([1, 2, np.nan, 1, 2]))


def test_kanon_violations_rounds_k_and_uses_Fk_when_weighted() -> None:
    fk = np.array([1, 2, 2, 3, 5.0])
    assert kanon_violations(fk, 3) == 3
    assert kanon_violations(fk, 2.4) == 1
    res = measure_risk(pd.DataFrame({"a": [1, 1, 2]}), weights=np.array([1.0, 1.0, 10.0]))
    assert res.kanon_violations(2) == 1
    assert res.kanon_violations(3, weighted=True) == 2  # Fk = 2, 2, 10
    assert res.kanon_violations(2, weighted=True) == 0
    with pytest.raises(ValueError, match="k"):
        kanon_violations(fk, 0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: individual_risk(np.ones(2), np.ones(2), method="bogus"), "method"),
        (lambda: individual_risk(np.ones(2), np.ones(3)), "same length"),
        (lambda: risk_threshold(np.ones(3), 1.0), "max_global_risk"),
        (lambda: risk_threshold(np.array([0.1, np.nan]), 0.1), "finite"),
        (lambda: measure_risk(pd.DataFrame({"a": [1]}), max_global_risk=0), "max_global_risk"),
        (lambda: household_risk(np.ones(3), np.ones(2)), "length"),
    ],
)
def test_bad_input(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
