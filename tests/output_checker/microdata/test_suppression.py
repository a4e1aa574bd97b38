"""Local suppression against sdcMicro's tests and rendered examples, plus k-anonymity properties."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from output_checker.microdata.methods.suppression import (
    default_importance,
    local_supp,
    local_suppression,
)
from output_checker.microdata.risk.frequencies import frequencies
from output_checker.microdata.risk.individual import individual_risk, measure_risk
from tests.output_checker.microdata.conftest import RUniform

KV7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


def r_cut_5(x: np.ndarray) -> np.ndarray:
    """Interval index of R's ``cut(x, 5)``: 5 equal-width right-closed intervals over the range,
    the outer breaks moved out by range/1000."""
    low, high = float(x.min()), float(x.max())
    breaks = np.linspace(low, high, 6)
    breaks[0], breaks[-1] = low - (high - low) / 1000, high + (high - low) / 1000
    return np.searchsorted(breaks, x, side="left")


def test_testdata2_without_strata(sdcmicro_dir: Path) -> None:
    # man/localSuppression.Rd, data.frame method: "Total number of suppressions ... 97"
    # (also tests/testthat/test_localSuppression.R: ls$newSupps == 97)
    data = pd.read_csv(sdcmicro_dir / "testdata2.csv")
    res = local_suppression(data[KV7])
    expected = {"urbrur": 3, "roof": 10, "walls": 7, "water": 56, "electcon": 0, "relat": 16,
                "sex": 5}  # fmt: skip
    assert res.suppressed.to_dict() == expected
    assert res.total_suppressed.to_dict() == expected
    assert frequencies(res.keys).fk.min() >= 2


def test_testdata2_with_age_strata(sdcmicro_dir: Path) -> None:
    # kAnon(inp, keyVars=1:7, strataVars=8) with ageG = cut(age, 5): 109 suppressions, by stratum
    data = pd.read_csv(sdcmicro_dir / "testdata2.csv")
    age_group = pd.Series(r_cut_5(data["age"].to_numpy(dtype=float))).map(lambda g: f"AG{g}")
    res = local_suppression(data[KV7], strata=age_group)
    assert res.suppressed.sum() == 109
    expected = pd.DataFrame(
        [[1, 2, 1, 1, 1, 1, 1], [2, 3, 3, 7, 0, 2, 0], [0, 10, 5, 24, 0, 3, 5],
         [2, 5, 3, 13, 2, 2, 1], [1, 1, 2, 3, 1, 1, 0]],
        index=["AG5", "AG3", "AG1", "AG2", "AG4"],
        columns=KV7,
    )  # fmt: skip
    assert res.by_stratum is not None
    pd.testing.assert_frame_equal(res.by_stratum.loc[expected.index], expected, check_dtype=False)
    assert res.suppressed.to_dict() == dict(zip(KV7, [6, 21, 14, 48, 4, 9, 7], strict=True))
    for group in age_group.unique():
        rows = (age_group == group).to_numpy()
        assert frequencies(res.keys[rows]).fk.min() >= 2


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        # man/localSuppression.Rd: localSuppression(francdat, keyVar = c(4, 5, 6))
        (["Key2", "Key3", "Key4"], {"Key2": 1, "Key3": 0, "Key4": 3}),
        # man/print.localSuppression.Rd: keyVars = c(2, 4, 5, 6)
        (["Key1", "Key2", "Key3", "Key4"], {"Key1": 1, "Key2": 1, "Key3": 0, "Key4": 2}),
    ],
)
def test_francdat_examples(sdcmicro_dir: Path, columns: list[str], expected: dict) -> None:
    data = pd.read_csv(sdcmicro_dir / "francdat.csv")
    res = local_suppression(data[columns])
    assert res.suppressed.to_dict() == expected


def seed3_frame(r_set_seed: Callable[[int], RUniform]) -> pd.DataFrame:
    """The data of test_localSuppression.R's "dataframe without missing" cases (set.seed(3))."""
    rng = r_set_seed(3)
    numeric = rng.runif(30, 1, 100).reshape(3, 10).T
    return pd.DataFrame({
        "Var3": numeric[:, 2],
        "Var4": np.round(rng.runif(10, 1, 3)),
        "Var5": np.round(rng.runif(10, 1, 2)),
        "Var6": np.round(rng.runif(10, 1, 4)),
    })  # fmt: skip


def test_seed3_cases(r_set_seed: Callable[[int], RUniform]) -> None:
    # tests/testthat/test_localSuppression.R: sum(totalSupps) == 2 and == 10
    data = seed3_frame(r_set_seed)
    assert local_suppression(data[["Var4", "Var5"]], k=2).total_suppressed.sum() == 2
    res = local_suppression(data[["Var3", "Var4", "Var5"]], k=2, importance=[3, 2, 1])
    assert res.total_suppressed.sum() == 10


def test_local_supp_testdata(sdcmicro_dir: Path) -> None:
    # man/localSupp.Rd: localSupp(sdc, keyVar = "urbrur", threshold = 0.045) -> 157 suppressions
    data = pd.read_csv(sdcmicro_dir / "testdata.csv")
    risk = measure_risk(data[KV7], data["sampling_weight"].to_numpy()).individual
    res = local_supp(data[KV7], 0.045, "urbrur", risk)
    assert res.suppressed.to_dict() == {"urbrur": 157} | {k: 0 for k in KV7[1:]}


def test_local_supp_francdat(sdcmicro_dir: Path) -> None:
    # man/localSupp.Rd: risks after suppressing Key4 where risk > 0.15
    data = pd.read_csv(sdcmicro_dir / "francdat.csv")
    keys, w = data[["Key1", "Key2", "Key3", "Key4"]], data["w"].to_numpy()
    before = frequencies(keys, w)
    res = local_supp(keys, 0.15, "Key4", individual_risk(before.fk, before.Fk))
    assert res.suppressed["Key4"] == 3
    after = frequencies(res.keys, w)
    expected = [0.017144262, 0.022042326, 0.022042326, 0.177075834, 0.003581243, 0.003581243,
                0.402359478, 0.017144262]  # fmt: skip
    np.testing.assert_allclose(individual_risk(after.fk, after.Fk), expected, rtol=0, atol=5e-10)


def test_default_importance_suppresses_many_categories_first() -> None:
    keys = pd.DataFrame({"a": [1, 2, 3, 4], "b": [1, 1, 2, 2], "c": [1, 2, 1, np.nan], "d": 0})
    # categories: a 4, b 2, c 2, d 1 -> ranks with ties in column order
    np.testing.assert_array_equal(default_importance(keys), [4, 2, 3, 1])


def test_inputs_not_mutated_and_untouched_columns_keep_dtype() -> None:
    keys = pd.DataFrame({"a": [1, 1, 2, 3], "b": ["x", "x", "y", "y"], "c": [5, 5, 5, 5]})
    before = keys.copy()
    res = local_suppression(keys, k=2)
    pd.testing.assert_frame_equal(keys, before)
    assert res.keys["c"].dtype == keys["c"].dtype
    assert res.suppressed.sum() > 0


def test_set_aside_records_are_repaired() -> None:
    # NA is filled with the first value when thinning, so the third record is set aside; with
    # alpha = 0 the kept (0) record is suppressed and the set-aside one is left alone (fk = 1).
    # sdcMicro stops there; the repair pass suppresses it too.
    keys = pd.DataFrame({"a": [0.0, np.nan, 0.0]})
    res = local_suppression(keys, k=2, alpha=0.0)
    assert frequencies(res.keys, alpha=0.0).fk.min() >= 2
    assert res.suppressed["a"] == 2


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    n=st.integers(2, 40),
    m=st.integers(1, 4),
    k=st.integers(2, 4),
    alpha=st.sampled_from([1.0, 0.5, 0.0]),
    stratified=st.booleans(),
    batched=st.booleans(),
)
def test_property_k_anonymous_and_only_suppresses(
    data: st.DataObject, n: int, m: int, k: int, alpha: float, stratified: bool, batched: bool
) -> None:
    """Both the exact rule and the batched passes of large files (forced here with
    ``fast_above=0``) end k-anonymous, suppressing only."""
    fast_above = 0 if batched else 20_000
    codes = np.array(
        data.draw(st.lists(st.lists(st.integers(-1, 3), min_size=m, max_size=m), min_size=n,
                           max_size=n)),
        dtype=float,
    )  # fmt: skip
    keys = pd.DataFrame(np.where(codes >= 0, codes, np.nan), columns=[f"k{j}" for j in range(m)])
    strata = None
    if stratified:
        strata = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
        if min(np.bincount(strata, minlength=2)[np.unique(strata)]) < k:
            with pytest.raises(ValueError, match="exceeds"):
                local_suppression(keys, k=k, strata=strata, alpha=alpha)
            return
    elif n < k:
        with pytest.raises(ValueError, match="exceeds"):
            local_suppression(keys, k=k, alpha=alpha)
        return
    res = local_suppression(keys, k=k, strata=strata, alpha=alpha, fast_above=fast_above)
    out = res.keys.to_numpy(dtype=float)
    was_missing, now_missing = codes < 0, np.isnan(out)
    # missing cells stay missing, present cells either stay unchanged or become missing
    assert (was_missing <= now_missing).all()
    kept = ~now_missing
    np.testing.assert_array_equal(out[kept], keys.to_numpy()[kept])
    assert res.suppressed.sum() == (now_missing & ~was_missing).sum()
    groups = np.zeros(n, dtype=int) if strata is None else strata
    for g in np.unique(groups):
        rows = groups == g
        fk = frequencies(res.keys[rows], alpha=alpha).fk
        assert (fk >= k).all()


def test_batched_passes_suppress_about_as_little_as_the_exact_rule() -> None:
    """On a file with thousands of problem records the batched passes reach k-anonymity with
    a number of suppressions close to sdcMicro's record-by-record rule."""
    rng = np.random.default_rng(4)
    n = 6000
    keys = pd.DataFrame(
        {f"k{j}": rng.choice(card, n, p=(w := 1 / np.arange(1, card + 1)) / w.sum())
         for j, card in enumerate((2, 5, 8, 12, 30))}
    )  # fmt: skip
    exact = local_suppression(keys, k=3)
    batched = local_suppression(keys, k=3, fast_above=0)
    assert (frequencies(batched.keys).fk >= 3).all()
    assert int((frequencies(keys).fk < 3).sum()) > 1000  # thousands of problem records
    assert batched.suppressed.sum() <= 1.1 * exact.suppressed.sum()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must"),
        ({"k": 2.5}, "k must"),
        ({"k": 5}, "exceeds"),
        ({"importance": [1, 2, 3]}, "importance"),
        ({"importance": [0, 1]}, "importance"),
        ({"alpha": 2.0}, "alpha"),
        ({"strata": [1, 2]}, "strata"),
    ],
)
def test_bad_input(kwargs: dict, message: str) -> None:
    keys = pd.DataFrame({"a": [1, 2, 3, 4], "b": [1, 1, 2, 2]})
    with pytest.raises(ValueError, match=message):
        local_suppression(keys, **kwargs)


def test_local_supp_bad_input() -> None:
    keys = pd.DataFrame({"a": [1, 2], "b": [1, 1]})
    with pytest.raises(ValueError, match="key"):
        local_supp(keys, 0.1, "zzz", np.ones(2))
    with pytest.raises(ValueError, match="risk"):
        local_supp(keys, 0.1, "a", np.ones(3))
