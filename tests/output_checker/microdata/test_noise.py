"""Noise addition: sdcMicro's test_addNoise.R assertions, restricted noise exactly, moments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checker.microdata.methods.noise import add_noise, restricted_factor

METHODS = ["additive", "additive0", "correlated", "correlated2", "restr"]


def _tarragona(sdcmicro_dir: Path) -> pd.DataFrame:
    """Tarragona[, 5:7] as in the dUtility/dRisk examples."""
    return pd.read_csv(sdcmicro_dir / "Tarragona.csv").iloc[:, 4:7]


@pytest.mark.parametrize("method", METHODS)
def test_every_column_changes_and_more_noise_changes_more(sdcmicro_dir: Path, method: str) -> None:
    """test_addNoise.R: all column mean absolute changes > 0; noise=150 changes more than 20
    (correlated2: delta 0.1 more than 0.01)."""
    data = _tarragona(sdcmicro_dir)
    cols = list(data.columns)
    strong = add_noise(data, cols, method=method, seed=3)  # type: ignore[arg-type]
    if method == "correlated2":
        weak = add_noise(data, cols, method=method, delta=0.01, seed=3)
    else:
        weak = add_noise(data, cols, method=method, noise=20, seed=3)  # type: ignore[arg-type]
    change_strong = (strong - data).abs().mean()
    change_weak = (weak - data).abs().mean()
    assert (change_strong > 0).all()
    assert change_strong.mean() > change_weak.mean()


@pytest.mark.parametrize("method", ["additive", "additive0", "correlated2", "restr"])
def test_missing_values_stay_missing(method: str) -> None:
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.uniform(1, 100, size=(10, 3)), columns=["a", "b", "c"])
    data.iloc[[1, 4], 0] = np.nan
    data.iloc[7, 2] = np.nan
    out = add_noise(data, ["a", "b", "c"], method=method, seed=1)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(out.isna(), data.isna())
    assert data.iloc[[1, 4], 0].isna().all()  # input untouched


def test_restricted_noise_is_deterministic_and_exact(sdcmicro_dir: Path) -> None:
    """restr: c x + (1 - c) mean with c from the spec's two formulas (N = 834 >= 500 here)."""
    data = _tarragona(sdcmicro_dir)
    out = add_noise(data, list(data.columns), method="restr", noise=150)
    n, w = len(data), 1.5
    c = np.sqrt((n - 1) / (n + n * w - 1))
    np.testing.assert_allclose(out, c * data + (1 - c) * data.mean(), rtol=1e-12)
    pd.testing.assert_frame_equal(out, add_noise(data, list(data.columns), method="restr"))
    # Means are kept and variances shrink by exactly c^2.
    np.testing.assert_allclose(out.mean(), data.mean(), rtol=1e-12)
    np.testing.assert_allclose(out.var(), c**2 * data.var(), rtol=1e-10)


def test_restricted_factor_small_samples() -> None:
    assert restricted_factor(10, 150) == pytest.approx(np.sqrt((10 - 1 - 1.5) / (11 * 2.5)))
    assert restricted_factor(499, 20) == pytest.approx(np.sqrt((498 - 0.2) / (500 * 1.2)))
    assert restricted_factor(500, 20) == pytest.approx(np.sqrt(499 / (500 + 100 - 1)))


def test_additive_noise_has_the_requested_spread() -> None:
    rng = np.random.default_rng(4)
    data = pd.DataFrame({"a": rng.normal(50, 10, 200_000), "b": rng.lognormal(3, 1, 200_000)})
    out = add_noise(data, ["a", "b"], noise=50, seed=9)
    noise = out - data
    np.testing.assert_allclose(noise.std(), 0.5 * data.std(), rtol=0.01)
    np.testing.assert_allclose(noise.mean(), 0, atol=0.02 * data.std().max())
    assert abs(noise.corr().iloc[0, 1]) < 0.01  # independent per variable
    pd.testing.assert_frame_equal(out, add_noise(data, ["a", "b"], noise=50, seed=9))


def test_additive0_keeps_zeros() -> None:
    data = pd.DataFrame({"a": [0.0, 1.0, 2.0, 0.0, 5.0] * 20})
    out = add_noise(data, ["a"], method="additive0", seed=2)
    assert (out.loc[data["a"] == 0, "a"] == 0).all()
    assert (out.loc[data["a"] != 0, "a"] != data.loc[data["a"] != 0, "a"]).all()


def test_correlated_noise_follows_the_covariance() -> None:
    rng = np.random.default_rng(5)
    base = rng.multivariate_normal([0, 0], [[4, 3], [3, 9]], size=200_000)
    data = pd.DataFrame(base, columns=["a", "b"])
    noise = add_noise(data, ["a", "b"], method="correlated", noise=150, seed=1) - data
    np.testing.assert_allclose(noise.cov(), 1.5 * data.cov(), rtol=0.02)


def test_correlated2_keeps_means_and_variances() -> None:
    rng = np.random.default_rng(6)
    data = pd.DataFrame({"a": rng.normal(100, 15, 200_000), "b": rng.gamma(2, 3, 200_000)})
    out = add_noise(data, ["a", "b"], method="correlated2", delta=0.3, seed=4)
    np.testing.assert_allclose(out.mean(), data.mean(), rtol=0.005)
    np.testing.assert_allclose(out.var(), data.var(), rtol=0.02)
    assert ((out - data).abs().mean() > 0).all()


def test_bad_input() -> None:
    data = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="at least 2 variables"):
        add_noise(data, ["a"], method="correlated")
    with pytest.raises(ValueError, match="unknown noise method"):
        add_noise(data, ["a"], method="ROMM")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not in the data"):
        add_noise(data, ["z"])
