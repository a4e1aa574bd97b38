"""fk/Fk against sdcMicro's freqCalc tests and examples, and a pairwise brute-force reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from output_checker.microdata.risk.frequencies import frequencies

NA = np.nan
# Weights of the inline freqCalc tests (sdcMicro tests/testthat/test_freqCalc.R).
W8 = np.array([18.0, 45.5, 39.0, 17.0, 92.0, 8.0, 123.5, 51])


def r_array(values: list[float], rows: int, cols: int) -> pd.DataFrame:
    """R's ``array(values, dim=c(rows, cols))`` (column-major) as a DataFrame."""
    return pd.DataFrame(np.array(values, dtype=float).reshape(cols, rows).T)


# (data, weights, expected Fk weighted, expected fk, n1, n2): tests/testthat/test_freqCalc.R
FREQCALC_CASES = [
    (
        r_array([2, 3, 2, 2, 3, 3, 1, 2, 3, 3, 3, 3, 3, 3, 4, 3, 1, 3, 1, 2, 1, 1, 1, 1], 8, 3),
        W8,
        [108.0, 45.5, 108.0, 17.0, 100.0, 100.0, 123.5, 108.0],
        [3, 1, 3, 1, 2, 2, 1, 3],
        3,
        2,
    ),
    (
        r_array([2, 3, 2, 2, 3, 3, 1, 2, 3, 3, 3, 3, 3, 3, 4, 3, 1, 3, NA, 2, 1, 1, NA, 1], 8, 3),
        W8,
        [108.0, 45.5, 125.0, 56.0, 100.0, 100.0, 123.5, 108.0],
        [3, 1, 4, 2, 2, 2, 1, 3],
        2,
        3,
    ),
    (
        r_array([2, 3, NA, 2, 3, 3, 1, 2, 3, 3, NA, 3, 3, 3, 4, 3] + [NA] * 8, 8, 3),
        W8,
        [125.0, 184.5, 394.0, 125.0, 184.5, 184.5, 162.5, 125.0],
        [4, 4, 8, 4, 4, 4, 2, 4],
        0,
        1,
    ),
    (
        r_array([2, 3, NA, 2, 1, NA, 1, 2], 8, 1),
        W8,
        [133.0, 92.5, 394.0, 133.0, 262.5, 394.0, 262.5, 133.0],
        [5, 3, 8, 5, 4, 8, 4, 5],
        0,
        0,
    ),
    (
        r_array(
            [2, 3, NA, 2, 3, 3, 1, NA, 3, 3, NA, 3, 3, 2, 2, 3, NA, NA, 1, 2, NA, NA, 4, 4], 3, 8
        ),
        np.array([18.0, 45.5, 122]),
        [18.0, 167.5, 167.5],
        [1, 2, 2],
        1,
        2,
    ),
]


@pytest.mark.parametrize("case", FREQCALC_CASES)
def test_freqcalc_inline_cases_weighted_and_unweighted(case: tuple) -> None:
    data, weights, expected_Fk, expected_fk, n1, n2 = case
    weighted = frequencies(data, weights)
    np.testing.assert_allclose(weighted.Fk, expected_Fk)
    np.testing.assert_array_equal(weighted.fk, expected_fk)
    assert (weighted.n1, weighted.n2) == (n1, n2)
    unweighted = frequencies(data)
    np.testing.assert_array_equal(unweighted.fk, expected_fk)
    np.testing.assert_array_equal(unweighted.Fk, expected_fk)


def francdat_keys(sdcmicro_dir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    data = pd.read_csv(sdcmicro_dir / "francdat.csv")
    return data[["Key1", "Key2", "Key3", "Key4"]], data["w"].to_numpy()


def test_francdat_example(sdcmicro_dir: Path) -> None:
    # man/freqCalc.Rd example output (rendered reference page freqCalc.html)
    keys, w = francdat_keys(sdcmicro_dir)
    f = frequencies(keys, w)
    np.testing.assert_array_equal(f.fk, [2, 2, 2, 1, 1, 1, 1, 2])
    np.testing.assert_allclose(f.Fk, [110.0, 84.5, 84.5, 17.0, 541.0, 8.0, 5.0, 110.0])
    # print.freqCalc: "4 obs. violate 2-anonymity", "8 obs. violate 3-anonymity"
    assert f.n1 == 4
    assert f.n1 + f.n2 == 8


@pytest.mark.parametrize(
    ("alpha", "fk", "Fk"),
    [
        (1.0, [3, 2, 4, 3, 3, 2, 2, 3], [149.0, 84.5, 194.5, 563.0, 566.0, 549.0, 22.0, 149.0]),
        (
            0.5,
            [2.5, 1.5, 4.0, 2.5, 2.0, 1.5, 1.5, 2.5],
            [129.5, 65.0, 194.5, 292.5, 553.5, 278.5, 13.5, 129.5],
        ),
        (
            0.1,
            [2.1, 1.1, 4.0, 2.1, 1.2, 1.1, 1.1, 2.1],
            [113.9, 49.4, 194.5, 76.1, 543.5, 62.1, 6.7, 113.9],
        ),
    ],
)
def test_francdat_with_missing_values_and_alpha(
    sdcmicro_dir: Path, alpha: float, fk: list[float], Fk: list[float]
) -> None:
    # man/freqCalc.Rd: x[3,5] <- NA; x[4,2] <- x[4,4] <- NA; x[5,6] <- NA; x[6,2] <- NA
    keys, w = francdat_keys(sdcmicro_dir)
    keys = keys.copy()
    keys.loc[2, "Key3"] = NA
    keys.loc[3, ["Key1", "Key2"]] = NA
    keys.loc[4, "Key4"] = NA
    keys.loc[5, "Key1"] = NA
    f = frequencies(keys, w, alpha=alpha)
    np.testing.assert_allclose(f.fk, fk, atol=1e-12)
    np.testing.assert_allclose(f.Fk, Fk)


def brute_force(codes: np.ndarray, weights: np.ndarray, alpha: float) -> tuple[list, list]:
    """Spec §2.2 record by record: O(n^2) over pairs of records."""
    n, m = codes.shape
    observed = codes >= 0
    fk, Fk = [], []
    for i in range(n):
        if not observed[i].any():
            fk.append(float(n))
            Fk.append(float(weights.sum()))
            continue
        f = F = 0.0
        for j in range(n):
            both = observed[i] & observed[j]
            if not (codes[i, both] == codes[j, both]).all():
                continue
            if m == 1:
                share = 1.0 if observed[j].all() else alpha
            elif observed[i].all():
                # complete record: same pattern counts 1, an incomplete (not all-NA) one alpha
                if not observed[j].any():
                    continue
                share = 1.0 if observed[j].all() else alpha
            elif observed[j].all() or (
                (observed[j] == observed[i]).all() and (codes[i] == codes[j]).all()
            ):
                share = 1.0  # complete records and the same pattern count fully
            else:
                share = alpha
            f += share
            F += share * weights[j]
        fk.append(f)
        Fk.append(F)
    return fk, Fk


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 30),
    m=st.integers(1, 4),
    alpha=st.sampled_from([1.0, 0.5, 0.0]),
)
def test_matches_pairwise_brute_force(data: st.DataObject, n: int, m: int, alpha: float) -> None:
    codes = np.array(
        data.draw(
            st.lists(st.lists(st.integers(-1, 2), min_size=m, max_size=m), min_size=n, max_size=n)
        ),
        dtype=np.int64,
    )
    weights = np.array(data.draw(st.lists(st.floats(0.5, 20.0), min_size=n, max_size=n)))
    keys = pd.DataFrame(np.where(codes >= 0, codes, np.nan))
    fk, Fk = brute_force(codes, weights, alpha)
    got = frequencies(keys, weights, alpha=alpha)
    np.testing.assert_allclose(got.fk, fk, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.Fk, Fk, rtol=1e-12, atol=1e-9)


def test_codes_compared_by_value_for_any_dtype() -> None:
    numeric = pd.DataFrame({"a": [1.0, 2.0, np.nan, 1.0], "b": [3, 3, 4, 4]})
    mixed = pd.DataFrame(
        {
            "a": pd.Series(["x", "y", None, "x"], dtype=object),
            "b": pd.Categorical(["p", "p", "q", "q"]),
        }
    )
    nullable = pd.DataFrame({"a": pd.array([7, 8, pd.NA, 7], dtype="Int64"), "b": [0, 0, 1, 1]})
    expected = frequencies(numeric).fk
    # row 3 matches (1, 4) and the wildcard row 2 (NA, 4); row 0 matches only itself
    np.testing.assert_array_equal(expected, [1, 1, 2, 2])
    np.testing.assert_array_equal(frequencies(mixed).fk, expected)
    np.testing.assert_array_equal(frequencies(nullable).fk, expected)


def test_large_data_without_missing_values_match_groupby() -> None:
    rng = np.random.default_rng(3)
    keys = pd.DataFrame({f"k{j}": rng.integers(0, c, 200_000) for j, c in enumerate([3, 7, 40])})
    w = rng.random(len(keys))
    f = frequencies(keys, w)
    grouped = keys.assign(w=w).groupby(list(keys.columns))["w"]
    np.testing.assert_array_equal(f.fk, grouped.transform("size").to_numpy())
    np.testing.assert_allclose(f.Fk, grouped.transform("sum").to_numpy())


def test_input_order_is_kept_and_inputs_not_mutated() -> None:
    keys = pd.DataFrame({"a": [1, 2, 1, np.nan], "b": [1, 1, 1, 2]})
    before = keys.copy()
    f = frequencies(keys.iloc[::-1].reset_index(drop=True))
    np.testing.assert_array_equal(f.fk, frequencies(keys).fk[::-1])
    pd.testing.assert_frame_equal(keys, before)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"weights": np.ones(2)}, "weights"),
        ({"weights": np.array([1.0, np.nan, 1.0])}, "weights"),
    ],
)
def test_bad_input(kwargs: dict, message: str) -> None:
    keys = pd.DataFrame({"a": [1, 2, 3]})
    with pytest.raises(ValueError, match=message):
        frequencies(keys, **kwargs)


def test_keys_must_be_a_frame_with_columns() -> None:
    with pytest.raises(ValueError, match="DataFrame"):
        frequencies(np.ones((3, 2)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        frequencies(pd.DataFrame(index=range(3)))
