"""Invariant PRAM: matrix construction, invariance, resampling and sdcMicro's test_pram.R cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from output_checker.microdata.methods.pram import invariant_matrix, pram


def _testdata(sdcmicro_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sdcmicro_dir / "testdata.csv")


def _brute_force_rs(p: np.ndarray, pds: np.ndarray, alpha: float) -> np.ndarray:
    """The spec's formulas written out element by element (independent of the vectorised code)."""
    n_levels = len(p)
    P = [[pds[i] if i == j else (1 - pds[i]) / (n_levels - 1) for j in range(n_levels)]
         for i in range(n_levels)]  # fmt: skip
    Q = [[0.0] * n_levels for _ in range(n_levels)]
    for k in range(n_levels):
        s = sum(p[m] * P[m][k] for m in range(n_levels))
        for j in range(n_levels):
            Q[k][j] = P[j][k] * p[j] / s
    R = [[sum(P[i][m] * Q[m][j] for m in range(n_levels)) for j in range(n_levels)]
         for i in range(n_levels)]  # fmt: skip
    return np.array(
        [
            [alpha * R[i][j] + (1 - alpha) * (i == j) for j in range(n_levels)]
            for i in range(n_levels)
        ]
    )


@settings(max_examples=80, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=0, max_value=1000), min_size=2, max_size=8).filter(
        lambda c: sum(c) > 0
    ),
    pd_low=st.floats(min_value=0.0, max_value=0.99),
    alpha=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_invariant_matrix_leaves_shares_unchanged(
    counts: list[int], pd_low: float, alpha: float, seed: int
) -> None:
    p = np.array(counts, dtype=float) / sum(counts)
    pds = np.random.default_rng(seed).uniform(pd_low, 1.0, size=p.size)
    rs = invariant_matrix(p, pds, alpha)
    np.testing.assert_allclose(p @ rs, p, atol=1e-12)
    np.testing.assert_allclose(rs.sum(axis=1), 1.0, atol=1e-12)
    assert (rs >= -1e-15).all()
    if (p > 0).all():
        np.testing.assert_allclose(rs, _brute_force_rs(p, pds, alpha), atol=1e-12)


def test_stratified_matrices_are_invariant_per_stratum(sdcmicro_dir: Path) -> None:
    data = _testdata(sdcmicro_dir)
    result = pram(data["roof"], strata=data[["urbrur", "sex"]], seed=11)
    levels = sorted(data["roof"].unique())
    assert len(result.transitions) == 4
    for (variable, (urbrur, sex)), matrix in result.transitions.items():
        assert variable == "roof"
        assert list(matrix.index) == levels
        subset = data.loc[(data["urbrur"] == urbrur) & (data["sex"] == sex), "roof"]
        p = subset.value_counts().reindex(levels, fill_value=0).to_numpy() / len(subset)
        np.testing.assert_allclose(p @ matrix.to_numpy(), p, atol=1e-12)


def test_resampling_follows_the_transition_matrix() -> None:
    """Empirical transition shares over 300k records match Rs (binomial 5-sigma bounds)."""
    rng = np.random.default_rng(0)
    x = pd.Series(rng.choice(["a", "b", "c"], size=300_000, p=[0.6, 0.3, 0.1]), name="v")
    result = pram(x, pd=0.5, alpha=0.8, seed=5)
    rs = result.transitions[("v", None)]
    crosstab = pd.crosstab(x, result.values["v"])
    for origin in rs.index:
        row_total = crosstab.loc[origin].sum()
        for target in rs.columns:
            expected = rs.loc[origin, target]
            observed = crosstab.loc[origin, target] / row_total
            assert abs(observed - expected) <= 5 * np.sqrt(expected * (1 - expected) / row_total)


def test_frequencies_are_preserved_on_average_over_seeds() -> None:
    """The invariant matrix keeps expected counts: the mean over 200 seeds is near the original."""
    rng = np.random.default_rng(1)
    x = pd.Series(rng.choice([1, 2, 3, 4], size=5_000, p=[0.5, 0.3, 0.15, 0.05]), name="v")
    original = x.value_counts().sort_index().to_numpy()
    after = np.array(
        [pram(x, seed=s).values["v"].value_counts().sort_index().to_numpy() for s in range(200)]
    )
    # Single runs move counts by tens of records; the mean of 200 runs stays within 2 %.
    np.testing.assert_allclose(after.mean(axis=0), original, rtol=0.02, atol=5)
    assert (after != original).any()


def test_same_seed_same_result_and_missing_kept(sdcmicro_dir: Path) -> None:
    data = _testdata(sdcmicro_dir)[["roof", "walls"]].astype(float)
    data.loc[[0, 5], "roof"] = np.nan
    first = pram(data, seed=3)
    second = pram(data, seed=3)
    pd.testing.assert_frame_equal(first.values, second.values)
    assert first.values["roof"].isna().sum() == 2
    assert first.values.loc[[0, 5], "roof"].isna().all()
    assert set(first.values["walls"].dropna()) <= set(data["walls"])
    assert first.changed["roof"] == int((first.values["roof"] != data["roof"]).sum() - 2)
    assert first.frequencies["roof"]["original"].sum() == len(data)


def test_identity_matrix_changes_nothing(sdcmicro_dir: Path) -> None:
    """test_pram.R: 'Identity matrix should result in NO change'; a list mixes matrix and pd."""
    data = _testdata(sdcmicro_dir)
    levels = sorted(data["roof"].unique())
    identity = pd.DataFrame(np.eye(len(levels)), index=levels, columns=levels)
    result = pram(data["roof"], transition=identity, seed=1)
    assert (result.values["roof"].astype(int) == data["roof"]).all()
    multi = pram(data[["roof", "walls"]], pd={"roof": 0.8, "walls": 0.5},
                 transition={"roof": identity}, seed=1)  # fmt: skip
    assert (multi.values["roof"].astype(int) == data["roof"]).all()
    assert (multi.values["walls"].astype(int) != data["walls"]).any()


def test_pd_and_alpha_change_the_result() -> None:
    """test_pram.R 'pram responds correctly to pd and alpha changes' (same seed, other pd/alpha)."""
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"Var3": rng.integers(1, 3, 100), "Var5": rng.integers(1, 7, 100)})
    default = pram(data["Var3"], strata=data["Var5"], seed=123).values
    low_alpha = pram(data["Var3"], strata=data["Var5"], alpha=0.1, seed=123).values
    low_pd = pram(data["Var3"], strata=data["Var5"], pd=0.1, seed=123).values
    assert not default.equals(low_alpha)
    assert not default.equals(low_pd)


def test_missing_strata_form_their_own_stratum() -> None:
    x = pd.Series(list("aabbabba"), name="v")
    strata = pd.Series([1, 1, 2, 2, np.nan, np.nan, 1, 2])
    result = pram(x, strata=strata, seed=2)
    keys = [key for _, key in result.transitions]
    assert keys[:2] == [1.0, 2.0]
    assert np.isnan(keys[2])
    # Stratum 1 holds a, a, b: its matrix keeps exactly those shares.
    p = np.array([2 / 3, 1 / 3])
    np.testing.assert_allclose(p @ result.transitions[("v", 1.0)].to_numpy(), p, atol=1e-12)


def test_alpha_zero_is_the_identity() -> None:
    x = pd.Series(list("aabbbcccc"), name="v")
    result = pram(x, alpha=0.0, seed=0)
    assert (result.values["v"] == x).all()
    assert result.changed["v"] == 0


def test_bad_parameters_are_rejected() -> None:
    x = pd.Series(["a", "b"], name="v")
    with pytest.raises(ValueError, match="pd"):
        pram(x, pd=1.5)
    bad = pd.DataFrame([[0.5, 0.4], [0.0, 1.0]], index=["a", "b"], columns=["a", "b"])
    with pytest.raises(ValueError, match="summing to 1"):
        pram(x, transition=bad)
    wrong_labels = pd.DataFrame(np.eye(2), index=["a", "z"], columns=["a", "z"])
    with pytest.raises(ValueError, match="levels"):
        pram(x, transition=wrong_labels)
