"""MDAV and mafast against sdcMicro's rendered examples, a naive MDAV, and group properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from output_checker.microdata.methods.microaggregation import mafast, mdav, microaggregation

NUMERIC = ["expend", "income", "savings"]
QUANTILES = [0.0, 0.25, 0.5, 0.75, 1.0]  # R summary(): Min, 1st Qu., Median, 3rd Qu., Max


def _naive_mdav(X: np.ndarray, k: int) -> np.ndarray:
    """MDAV written plainly from the spec and Mdav.cpp (loops, no vectorisation, no caching).

    Distances accumulate float32 terms; ties in the k nearest go to the later record, the
    farthest record is the first maximum. A value missing on one side only counts the squared
    weighted range of its variable, missing on both sides counts 0.
    """
    n, p = X.shape
    w = np.ones(p)
    missing_dist = np.zeros(p)
    for j in range(p):
        col = [float(v) for v in X[:, j] if not np.isnan(v)]
        if not col:
            continue
        mean = sum(col) / len(col)
        var = sum(v * v for v in col) / len(col) - mean * mean
        if var > 0 and 1.0 / var < float("inf"):  # a rounding residue of 0 counts as 0
            w[j] = 1.0 / var
        missing_dist[j] = (max(col) - min(col)) ** 2 * w[j]

    def dist(a: np.ndarray, b: np.ndarray) -> np.float32:
        total = np.float32(0.0)
        for j in range(p):
            if np.isnan(a[j]) != np.isnan(b[j]):
                term = missing_dist[j]
            elif np.isnan(a[j]):
                term = 0.0
            else:
                term = (a[j] - b[j]) ** 2 * w[j]
            total = np.float32(total + np.float32(term))
        return total

    def centroid(rows: list[int]) -> np.ndarray:
        out = np.full(p, np.nan)
        for j in range(p):
            values = [X[i, j] for i in rows if not np.isnan(X[i, j])]
            if values:
                out[j] = sum(values) / len(values)
        return out

    remaining = list(range(n))
    groups = np.full(n, -1)
    group = 0
    while len(remaining) >= 2 * k:
        n_groups = 1 if len(remaining) < 3 * k else 2
        center = centroid(remaining)
        to_centroid = {i: dist(X[i], center) for i in remaining}
        current = max(remaining, key=lambda i: (to_centroid[i], -i))
        for _ in range(n_groups):
            d = {i: dist(X[i], X[current]) for i in remaining}
            farthest = max(remaining, key=lambda i: (d[i], -i))
            members = sorted(remaining, key=lambda i: (d[i], -i))[:k]
            groups[members] = group
            group += 1
            remaining = [i for i in remaining if i not in members]
            current = farthest
    groups[remaining] = group
    return groups


# --- reference values -------------------------------------------------------------------------


def test_mdav_testdata_matches_rendered_example(sdcmicro_dir: Path) -> None:
    """man/microaggregation.Rd: mdav, aggr=4 on testdata[1:100, c(expend, income, savings)];
    summary(m)$meansxm on the sdcMicro site (gh-pages reference/microaggregation.html)."""
    data = pd.read_csv(sdcmicro_dir / "testdata.csv").iloc[:100][NUMERIC]
    result = microaggregation(data, NUMERIC, k=4)
    expected = {
        "expend": [14471827, 22752145, 42916487, 71888065, 91918606],
        "income": [4482460, 24675000, 46850000, 65000000, 93725000],
        "savings": [872137, 2353262, 5116959, 7020042, 9407783],
    }
    for name, values in expected.items():
        # summary() prints whole numbers here, so agreement is to +-0.5.
        np.testing.assert_allclose(result.data[name].quantile(QUANTILES), values, atol=0.5)
    np.testing.assert_allclose(result.data[NUMERIC].mean(), [48440371, 49180278, 4798498], atol=0.5)
    assert (np.bincount(result.groups["expend"]) == 4).all()


def test_mafast_testdata_by_sex_matches_rendered_example(sdcmicro_dir: Path) -> None:
    """man/mafast.Rd: mafast(testdata, c(expend, income, savings), aggr=50, by="sex")."""
    data = pd.read_csv(sdcmicro_dir / "testdata.csv")
    result = microaggregation(data, NUMERIC, k=50, method="mafast", strata="sex")
    expected = {  # Min, 1st Qu., Median, 3rd Qu., Max; then Mean
        "expend": ([1117110, 25091280, 50335953, 75280845, 98533212], 50499785),
        "income": ([730220, 24260000, 49976000, 74544000, 98208333], 50115690),
        "savings": ([104676, 2370492, 4999592, 7486752, 9837175], 4964039),
    }
    for name, (quantiles, mean) in expected.items():
        np.testing.assert_allclose(result.data[name].quantile(QUANTILES), quantiles, atol=0.5)
        assert result.data[name].mean() == pytest.approx(mean, abs=0.5)
    # Groups never mix the sexes.
    assert (result.data.groupby(result.groups["income"])["sex"].nunique() == 1).all()


@pytest.mark.parametrize(("k", "expected"), [(4, 0.483871), (10, 0.01075269)])
def test_mafast_testdata2_interval_risk_matches_rendered_example(
    sdcmicro_dir: Path, k: int, expected: float
) -> None:
    """man/mafast.Rd: sdc1@risk$numeric after mafast(sdc, aggr=4) and aggr=10 on testdata2.

    dRisk (spec §2.11, computed here by hand): share of records whose every original value lies
    within xm +- 0.05 sd(xm)."""
    data = pd.read_csv(sdcmicro_dir / "testdata2.csv")
    masked = microaggregation(data, NUMERIC, k=k, method="mafast").data[NUMERIC]
    sd = masked.std()
    inside = (data[NUMERIC] >= masked - 0.05 * sd) & (data[NUMERIC] <= masked + 0.05 * sd)
    assert inside.all(axis=1).mean() == pytest.approx(expected, abs=5e-7)


# --- MDAV against the naive implementation ----------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    X=st.integers(min_value=6, max_value=80).flatmap(
        lambda n: st.integers(min_value=1, max_value=4).flatmap(
            lambda p: arrays(
                np.float64,
                (n, p),
                elements=st.floats(min_value=-1e4, max_value=1e4, allow_subnormal=False),
            )
        )
    ),
    k=st.integers(min_value=2, max_value=5),
)
def test_mdav_matches_naive_implementation(X: np.ndarray, k: int) -> None:
    np.testing.assert_array_equal(mdav(X, k), _naive_mdav(X, k))


def test_mdav_matches_naive_with_many_ties() -> None:
    """Integer data with duplicates exercise the tie rules (and the array compaction)."""
    rng = np.random.default_rng(7)
    for k in (2, 3, 5):
        X = rng.integers(0, 4, size=(150, 3)).astype(float)
        np.testing.assert_array_equal(mdav(X, k), _naive_mdav(X, k))


def test_mdav_matches_naive_with_missing_values() -> None:
    rng = np.random.default_rng(11)
    for k in (2, 3):
        X = rng.normal(size=(90, 3))
        X[rng.random(X.shape) < 0.15] = np.nan
        X[5] = np.nan  # a record missing everywhere
        np.testing.assert_array_equal(mdav(X, k), _naive_mdav(X, k))


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    X=st.integers(min_value=1, max_value=70).flatmap(
        lambda n: arrays(
            np.float64, (n, 3), elements=st.floats(min_value=-1e3, max_value=1e3, width=32)
        )
    ),
    k=st.integers(min_value=1, max_value=6),
)
def test_mdav_group_sizes_and_means(X: np.ndarray, k: int) -> None:
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    result = microaggregation(frame, ["a", "b", "c"], k=k)
    sizes = np.bincount(result.groups["a"])
    if len(X) >= 2 * k:
        assert sizes.min() >= k
        assert sizes.max() < 2 * k
    else:
        assert list(sizes) == [len(X)]
    # Each record carries its group's mean, so overall means are preserved.
    group_means = frame.groupby(result.groups["a"].to_numpy()).transform("mean")
    np.testing.assert_allclose(result.data.to_numpy(), group_means.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(result.data.mean(), frame.mean(), atol=1e-8)


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.float64, st.integers(1, 90), elements=st.floats(-1e6, 1e6)),
    k=st.integers(min_value=1, max_value=7),
)
def test_mafast_groups_are_consecutive_in_sorted_order(x: np.ndarray, k: int) -> None:
    groups = mafast(x, k)
    sizes = np.bincount(groups)
    if len(x) >= k:
        assert (sizes[:-1] == k).all()
        assert k <= sizes[-1] < 2 * k
    # Sorting by value never puts a later group before an earlier one.
    order = np.argsort(x, kind="stable")
    assert (np.diff(groups[order]) >= 0).all()


def test_missing_values_stay_missing_and_strata_are_respected() -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    frame["s"] = np.repeat(["x", "y"], 30)
    frame.loc[[3, 40], "a"] = np.nan
    result = microaggregation(frame, ["a", "b"], k=3, strata="s")
    assert result.data.loc[[3, 40], "a"].isna().all()
    assert result.data["a"].notna().sum() == 58
    assert (result.data.groupby(result.groups["a"])["s"].nunique() == 1).all()
    assert frame.loc[[3, 40], "a"].isna().all()  # input untouched
    assert (result.data["s"] == frame["s"]).all()


def test_single_variable_uses_mafast() -> None:
    """sdcMicro: microaggregation with one variable silently uses mafast (sort and cut)."""
    x = pd.DataFrame({"v": [5.0, 1.0, 4.0, 2.0, 3.0, 100.0, 7.0]})
    result = microaggregation(x, ["v"], k=3)
    # sorted: 1,2,3 | 4,5,7,100 (last group takes the remainder)
    np.testing.assert_allclose(result.data["v"], [29, 2, 29, 2, 2, 29, 29])


def test_bad_input() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="not in the data"):
        microaggregation(frame, ["zz"])
    with pytest.raises(ValueError, match="method"):
        microaggregation(frame, ["a"], method="pca")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two-dimensional"):
        mdav(np.array([1.0, 2.0]))
