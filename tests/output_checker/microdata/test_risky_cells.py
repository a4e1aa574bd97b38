"""riskyCells against sdcMicro's tests and a plain count of every sub-table."""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checker.microdata.risk.risky_cells import risky_cells

KEYS7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


@pytest.fixture(scope="module")
def testdata2(sdcmicro_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sdcmicro_dir / "testdata2.csv")


def _plain(keys: pd.DataFrame, thresholds: list[int]) -> list[int]:
    out = []
    for d, limit in enumerate(thresholds, start=1):
        for subset in combinations(keys.columns, d):
            cells = Counter(
                tuple("NA" if pd.isna(v) else v for v in row)
                for row in keys[list(subset)].itertuples(index=False)
            )
            out.append(sum(count <= limit for count in cells.values()))
    return out


def test_sdcmicro_tests(testdata2: pd.DataFrame) -> None:
    # sdcMicro tests/testthat/test_riskyCells.R (first row of each result)
    keys5 = testdata2.iloc[:, :5]
    r0 = risky_cells(keys5, [50, 25, 10, 5], max_dim=4)
    assert r0["unsafe_cells"].iloc[0] == 1
    r1 = risky_cells(keys5, 10, max_dim=3)
    assert r1["unsafe_cells"].iloc[0] == 0
    r2 = risky_cells(testdata2.iloc[:, :6], 20, level=[1, 1, 2, 3, 3, 5])
    assert r2["unsafe_cells"].iloc[0] == 0
    r3 = risky_cells(testdata2.iloc[:, [0, 2, 3, 5]], 10, level=[1, 2, 2, 4])
    assert r3["unsafe_cells"].iloc[0] == 0
    r4 = risky_cells(testdata2[KEYS7], [20, 10, 5], max_dim=3)
    assert r4["unsafe_cells"].iloc[0] == 0
    # the level variants tabulate all combinations up to the number of distinct levels
    assert len(r2) == 6 + 15 + 20 + 15
    assert list(r2.columns) == ["dim1", "dim2", "dim3", "dim4", "threshold", "unsafe_cells"]
    assert len(r3) == 4 + 6 + 4


def test_every_row_matches_plain_count(testdata2: pd.DataFrame) -> None:
    keys = testdata2[KEYS7]
    res = risky_cells(keys, [20, 10, 5], max_dim=3)
    assert res["unsafe_cells"].tolist() == _plain(keys, [20, 10, 5])
    assert res["threshold"].tolist() == [20] * 7 + [10] * 21 + [5] * 35
    assert res.iloc[7][["dim1", "dim2", "dim3"]].tolist() == ["urbrur", "roof", None]
    assert res["unsafe_cells"].sum() > 0


def test_missing_values_form_a_cell() -> None:
    rng = np.random.default_rng(1)
    keys = pd.DataFrame(
        {"a": rng.integers(0, 4, 200).astype(float), "b": rng.choice(list("xyz"), 200)}
    )
    keys.loc[rng.random(200) < 0.1, "a"] = np.nan
    keys.loc[rng.random(200) < 0.02, "b"] = None
    res = risky_cells(keys, [15, 8], max_dim=2)
    assert res["unsafe_cells"].tolist() == _plain(keys, [15, 8])
    # a has 4 values + NA, b's NA cell is tiny
    assert res["unsafe_cells"].iloc[1] >= 1


def test_bad_input(testdata2: pd.DataFrame) -> None:
    keys = testdata2.iloc[:, :3]
    with pytest.raises(ValueError, match="exactly one"):
        risky_cells(keys, 3)
    with pytest.raises(ValueError, match="exactly one"):
        risky_cells(keys, 3, max_dim=2, level=[1, 1, 2])
    with pytest.raises(ValueError, match="max_dim"):
        risky_cells(keys, 3, max_dim=4)
    with pytest.raises(ValueError, match="one per dimension"):
        risky_cells(keys, [3, 2], max_dim=3)
    with pytest.raises(ValueError, match="whole"):
        risky_cells(keys, 2.5, max_dim=1)
    with pytest.raises(ValueError, match="single threshold"):
        risky_cells(keys, [3, 2], level=[1, 2, 2])
    with pytest.raises(ValueError, match="level"):
        risky_cells(keys, 3, level=[1, 0, 2])
