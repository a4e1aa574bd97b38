"""Rank swapping (sdcMicro test_rankSwap.R cases, rank-distance bound, multisets) and shuffling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from output_checker.microdata.methods.shuffle import shuffle
from output_checker.microdata.methods.swapping import rank_swap

NUMERIC = ["expend", "income", "savings"]


# --- rank swapping ----------------------------------------------------------------------------


@pytest.mark.parametrize("criterion", [{"p": 0.0}, {"r0": 1.0}, {"k0": 0.0}])
def test_zero_range_leaves_data_unchanged(criterion: dict[str, float]) -> None:
    """tests/testthat/test_rankSwap.R: a = 1:10000 with P=0, R0=1 or K0=0 (no top/bottom coding)
    comes back unchanged."""
    data = pd.DataFrame({"a": np.arange(1, 10_001), "b": np.arange(1, 10_001)})
    swapped = rank_swap(data, ["a"], top_percent=0, bottom_percent=0, seed=1, **criterion)
    assert (swapped["a"] == data["a"]).all()


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.float64, st.integers(2, 300), elements=st.floats(-1e6, 1e6), unique=True),
    p=st.floats(min_value=0.0, max_value=100.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_swaps_keep_values_and_respect_the_rank_range(x: np.ndarray, p: float, seed: int) -> None:
    """Without top/bottom coding the multiset is kept and every record's new value has a rank
    within P % of n of its old value (|i - j| < P n / 100)."""
    data = pd.DataFrame({"v": x})
    swapped = rank_swap(data, ["v"], p=p, top_percent=0, bottom_percent=0, seed=seed)["v"]
    assert sorted(swapped) == sorted(x)
    old_rank = stats.rankdata(x)
    new_rank = stats.rankdata(swapped)
    moved = np.abs(old_rank - new_rank)
    assert (moved[moved > 0] < p * len(x) / 100).all()


def test_swapping_is_a_pairing() -> None:
    """Each swapped record takes the value of a record that takes its value."""
    x = np.arange(1000, dtype=float)
    swapped = rank_swap(pd.DataFrame({"v": x}), ["v"], p=10, top_percent=0,
                        bottom_percent=0, seed=4)["v"].to_numpy()  # fmt: skip
    partner = swapped.astype(int)  # value i came from record i
    np.testing.assert_array_equal(partner[partner], np.arange(1000))
    assert (partner != np.arange(1000)).mean() > 0.9


def test_top_and_bottom_values_are_replaced_by_their_means() -> None:
    """TopPercent/BottomPercent: the largest and smallest 5 % are grouped (set to their mean)."""
    rng = np.random.default_rng(3)
    x = rng.permutation(np.arange(1.0, 101.0))
    swapped = rank_swap(pd.DataFrame({"v": x}), ["v"], p=5, seed=1)["v"].to_numpy()
    top = x >= 96
    bottom = x <= 5
    np.testing.assert_allclose(swapped[top], np.mean([96, 97, 98, 99, 100]))
    np.testing.assert_allclose(swapped[bottom], 3.0)
    middle = ~(top | bottom)
    assert sorted(swapped[middle]) == sorted(x[middle])


def test_default_r0_swaps_and_missing_values_stay(sdcmicro_dir: Path) -> None:
    """man/rankSwap.Rd example: rankSwap(testdata2, c(age, income, expend, savings))."""
    data = pd.read_csv(sdcmicro_dir / "testdata2.csv")
    data.loc[[0, 10], "income"] = np.nan
    variables = ["age", *NUMERIC]
    swapped = rank_swap(data, variables, seed=8)
    assert swapped.loc[[0, 10], "income"].isna().all()
    assert swapped["income"].notna().sum() == len(data) - 2
    assert (swapped["expend"] != data["expend"]).mean() > 0.5
    pd.testing.assert_frame_equal(swapped, rank_swap(data, variables, seed=8))
    pd.testing.assert_frame_equal(swapped.drop(columns=variables), data.drop(columns=variables))


def test_only_one_criterion() -> None:
    data = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="only one"):
        rank_swap(data, ["a"], p=5, r0=0.9)
    with pytest.raises(ValueError, match="not in the data"):
        rank_swap(data, ["z"])


# --- shuffling --------------------------------------------------------------------------------


def _related(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n)
    group = rng.choice(["u", "v", "w"], size=n)
    return pd.DataFrame(
        {
            "s": s,
            "g": group,
            "y1": np.exp(s + 0.3 * rng.normal(size=n)),
            "y2": 2 * s + (group == "w") + rng.normal(size=n),
        }
    )


def test_shuffle_keeps_values_and_rank_relations() -> None:
    data = _related(20_000, 1)
    out = shuffle(data, ["y1", "y2"], ["s", "g"], seed=5)
    for name in ["y1", "y2"]:
        assert sorted(out[name]) == sorted(data[name])  # reverse mapping: same multiset
        assert (out[name] != data[name]).mean() > 0.9
        before = stats.spearmanr(data[name], data["s"]).statistic
        after = stats.spearmanr(out[name], data["s"]).statistic
        assert after == pytest.approx(before, abs=0.02)
    cross_before = stats.spearmanr(data["y1"], data["y2"]).statistic
    cross_after = stats.spearmanr(out["y1"], out["y2"]).statistic
    assert cross_after == pytest.approx(cross_before, abs=0.03)
    pd.testing.assert_frame_equal(out, shuffle(data, ["y1", "y2"], ["s", "g"], seed=5))
    assert (out[["s", "g"]] == data[["s", "g"]]).all().all()


def test_shuffle_rejects_missing_values_and_overlap() -> None:
    data = _related(50, 2)
    data.loc[3, "y1"] = np.nan
    with pytest.raises(ValueError, match="complete"):
        shuffle(data, ["y1", "y2"], ["s"])
    with pytest.raises(ValueError, match="both"):
        shuffle(_related(50, 2), ["y1", "s"], ["s"])
