"""dRisk (interval disclosure) against sdcMicro's free1 example and a per-record loop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checker.microdata.risk.numeric import d_risk


def _onedims(x: np.ndarray, aggr: int) -> np.ndarray:
    """Independent microaggregation "onedims" (sdcMicro R/microaggregation.R): per variable,
    sorted values in consecutive groups of ``aggr``, the last group taking the remainder,
    replaced by the group mean."""
    n = len(x)
    group = np.minimum(np.arange(n) // aggr, n // aggr - 1)
    out = np.empty_like(x)
    for j in range(x.shape[1]):
        order = np.argsort(x[:, j], kind="stable")
        means = np.bincount(group, weights=x[order, j]) / np.bincount(group)
        out[order, j] = means[group]
    return out


def test_free1_onedims_example(sdcmicro_dir: Path) -> None:
    # man/dRisk.Rd example rendered on gh-pages (reference/dRisk.html, 2026-04-22):
    # dRisk(obj=free1[, 31:34], xm=microaggregation(free1[, 31:34], "onedims", aggr=3)$mx)
    # prints 0.9955.
    free1 = pd.read_csv(sdcmicro_dir / "free1.csv")
    x = free1.iloc[:, 30:34]
    assert list(x.columns) == ["INCOME", "MONEY", "ASSETS", "DEBTS"]
    xm = _onedims(x.to_numpy(dtype=float), 3)
    assert d_risk(x, xm) == 0.9955
    assert d_risk(x, pd.DataFrame(xm)) == 0.9955


def _loop(x: np.ndarray, xm: np.ndarray, k: float) -> float:
    inside = 0
    for i in range(len(x)):
        ok = True
        for j in range(x.shape[1]):
            col = [v for v in xm[:, j] if not math.isnan(v)]
            mean = sum(col) / len(col)
            sd = math.sqrt(sum((v - mean) ** 2 for v in col) / (len(col) - 1))
            lo, hi = xm[i, j] - k * sd, xm[i, j] + k * sd
            if not math.isnan(x[i, j]) and not math.isnan(xm[i, j]) and not lo <= x[i, j] <= hi:
                ok = False
        inside += ok
    return inside / len(x)


@pytest.mark.parametrize("k", [0.0, 0.05, 0.3, 1.0])
def test_matches_per_record_loop(k: float) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 3))
    xm = x + rng.normal(scale=0.2, size=x.shape)
    xm[rng.random(xm.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.05] = np.nan
    xm[:5] = x[:5]  # unchanged records are always at risk
    expected = _loop(x, xm, k)
    assert d_risk(x, xm, k=k) == pytest.approx(expected, abs=1e-15)
    assert 0 < expected < 1 or k == 1.0


def test_unperturbed_and_far_data() -> None:
    x = np.arange(12.0).reshape(6, 2)
    assert d_risk(x, x) == 1.0
    assert d_risk(x, x + 100) == 0.0
    assert d_risk(x[:, 0], x[:, 0] + 0.01) == 1.0  # a vector is one variable
    assert d_risk(x[:, 0], x[:, 0] + 0.2, k=0.05) == 0.0  # sd 3.74: half-width 0.187


def test_bad_input() -> None:
    x = np.ones((4, 2))
    with pytest.raises(ValueError, match="shape"):
        d_risk(x, np.ones((3, 2)))
    with pytest.raises(ValueError, match="numeric"):
        d_risk(pd.DataFrame({"a": ["x", "y"]}), np.ones((2, 1)))
    with pytest.raises(ValueError, match="k must"):
        d_risk(x, x, k=-1)
