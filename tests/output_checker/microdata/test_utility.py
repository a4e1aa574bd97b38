"""Information-loss measures against sdcMicro's rendered summary.micro output and brute force."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checker.microdata.methods.microaggregation import microaggregation
from output_checker.microdata.utility import (
    eigen,
    frequency_changes,
    il1,
    il1s,
    numeric_utility,
    suppressions,
    total_suppressions,
    total_variation,
)

NUMERIC = ["expend", "income", "savings"]


def test_summary_micro_values_for_the_mdav_example(sdcmicro_dir: Path) -> None:
    """man/microaggregation.Rd: summary(microaggregation(testdata[1:100, c(expend, income,
    savings)], method="mdav", aggr=4)) on the sdcMicro site (reference/microaggregation.html):
    util1 (= dUtility IL1s), deigenvalues (= dUtility eigen), amean, amedian, amad, devvar, acov,
    acor, acors."""
    x = pd.read_csv(sdcmicro_dir / "testdata.csv").iloc[:100][NUMERIC]
    xm = microaggregation(x, NUMERIC, k=4).data
    u = numeric_utility(x, xm)
    assert u.il1s == pytest.approx(53.39995, abs=5e-6)
    assert u.eigen == pytest.approx(0.0596172, abs=5e-8)
    assert u.mean_change == pytest.approx(0.0, abs=1e-12)
    assert u.median_change == pytest.approx(0.1782512, abs=5e-8)
    assert u.mad_change == pytest.approx(0.5343033, abs=5e-8)
    assert u.covariance_change == pytest.approx(0.3747106, abs=5e-8)
    assert u.covariance_change / 2 == pytest.approx(0.1873553, abs=5e-8)  # acov
    assert u.correlation_change == pytest.approx(0.25935, abs=5e-6)
    assert u.spearman_change == pytest.approx(0.6424174, abs=5e-8)


def test_il1_and_il1s_brute_force() -> None:
    x = pd.DataFrame({"a": [1.0, 0.0, 4.0, 10.0, np.nan], "b": [2.0, 3.0, 0.0, 5.0, 1.0]})
    xm = pd.DataFrame({"a": [2.0, 1.0, 4.0, 8.0, 3.0], "b": [2.0, 1.0, 0.0, 6.0, np.nan]})
    expected_il1 = 0.0
    expected_il1s = 0.0
    for col in x.columns:
        values = [v for v in x[col] if not math.isnan(v)]
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        for a, b in zip(x[col], xm[col], strict=True):
            if math.isnan(a) or math.isnan(b):
                continue
            if a != 0:
                expected_il1 += 100 * abs(a - b) / abs(a)
            expected_il1s += abs(a - b) / (sd * math.sqrt(2))
    assert il1(x, xm) == pytest.approx(expected_il1)
    assert il1s(x, xm) == pytest.approx(expected_il1s)


def test_identical_data_lose_nothing() -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(50, 3)), columns=list("abc"))
    u = numeric_utility(x, x.copy())
    assert (u.il1, u.il1s, u.mean_change, u.correlation_change) == (0, 0, 0, 0)
    assert u.eigen == pytest.approx(0.0, abs=1e-12)


def test_eigen_brute_force() -> None:
    """sum |e1 - e2| / e1 over eigenvalues of the correlation matrices (complete data)."""
    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(200, 3)) @ [[1, 0.5, 0], [0, 1, 0.3], [0, 0, 1]])
    xm = x + rng.normal(scale=0.5, size=x.shape)
    e1 = np.sort(np.linalg.eigvals(np.corrcoef(x.to_numpy(), rowvar=False)).real)[::-1]
    e2 = np.sort(np.linalg.eigvals(np.corrcoef(xm.to_numpy(), rowvar=False)).real)[::-1]
    assert eigen(x, xm) == pytest.approx(float(np.sum(np.abs(e1 - e2) / e1)))
    assert math.isnan(eigen(x.assign(c=1.0), xm.assign(c=1.0)))


def test_frequency_changes_and_total_variation() -> None:
    before = pd.Series(["a", "a", "b", "c", None])
    after = pd.Series(["a", "b", "b", None, None])
    table = frequency_changes(before, after)
    counts = {k: tuple(v) for k, v in table.iterrows() if isinstance(k, str)}
    assert counts == {"a": (2, 1, -1), "b": (1, 2, 1), "c": (1, 0, -1)}
    assert table.loc[table.index.isna(), "difference"].item() == 1
    assert total_variation(before, after) == pytest.approx(2 / 5)


def test_suppressions_count_new_missing_cells_only() -> None:
    before = pd.DataFrame({"k1": [1, 2, None, 4], "k2": ["x", "y", "z", None]})
    after = pd.DataFrame({"k1": [None, 2, None, None], "k2": ["x", None, "z", None]})
    assert suppressions(before, after).to_dict() == {"k1": 2, "k2": 1}
    assert total_suppressions(before, after) == 3
    with pytest.raises(ValueError, match="same shape"):
        suppressions(before, after[["k1"]])
