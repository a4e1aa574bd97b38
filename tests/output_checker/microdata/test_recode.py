"""Global recoding, category merging and top/bottom coding against sdcMicro's tests and examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from output_checker.microdata.methods.recode import (
    global_recode,
    group_and_rename,
    top_bottom_code,
)

# set.seed(3); runif(10, 1, 100) in sdcMicro's tests/testthat/test_topBotCoding.R and
# test_globalRecode.R. The values are read off the expected outputs of test_topBotCoding.R
# (values <= 35 survive top coding at 35, the others survive bottom coding).
SAMPLE = np.array(
    [
        17.63611,
        80.94412,
        39.10929,
        33.44570,
        60.60797,
        60.83501,
        13.33871,
        30.16549,
        58.18338,
        63.46695,
    ]
)


def _class_pattern(codes: list[int]) -> str:
    """Codes as the letters A, B, C ... used by sdcMicro's test_globalRecode.R."""
    return ",".join("ABCDEFGH"[c] for c in codes)


# --- top/bottom coding: tests/testthat/test_topBotCoding.R --------------------------------------


def test_top_coding_matches_sdcmicro() -> None:
    expected = [17.63611, 0, 0, 33.44570, 0, 0, 13.33871, 30.16549, 0, 0]
    np.testing.assert_allclose(top_bottom_code(SAMPLE, 35, 0, "top"), expected, atol=1e-3)


def test_bottom_coding_matches_sdcmicro() -> None:
    expected = [0, 80.94412, 39.10929, 0, 60.60797, 60.83501, 0, 0, 58.18338, 63.46695]
    np.testing.assert_allclose(top_bottom_code(SAMPLE, 35, 0, "bottom"), expected, atol=1e-3)


def test_top_bottom_coding_leaves_missing_values() -> None:
    x = pd.Series(SAMPLE.copy())
    x[[0, 1, 6]] = np.nan  # sample_Data[c(1,2,7),1] <- NA
    top = top_bottom_code(x, 35, 0, "top")
    bottom = top_bottom_code(x, 35, 0, "bottom")
    np.testing.assert_allclose(
        top, [np.nan, np.nan, 0, 33.44570, 0, 0, np.nan, 30.16549, 0, 0], atol=1e-3
    )
    np.testing.assert_allclose(
        bottom,
        [np.nan, np.nan, 39.10929, 0, 60.60797, 60.83501, np.nan, 0, 58.18338, 63.46695],
        atol=1e-3,
    )
    assert x.isna().sum() == 3  # the input is not modified


def test_top_coding_examples_from_the_reference_pages(sdcmicro_dir: Path) -> None:
    """man/topBotCoding.Rd examples as rendered on the sdcMicro site."""
    free1 = pd.read_csv(sdcmicro_dir / "free1.csv")
    assert top_bottom_code(free1["DEBTS"], 9000, 9100, "top").max() == 9100
    testdata = pd.read_csv(sdcmicro_dir / "testdata.csv")
    age = top_bottom_code(testdata["age"], 80, 81, "top")
    assert (age.min(), age.max()) == (0, 81)


def test_top_coding_is_strict() -> None:
    assert list(top_bottom_code(np.array([1, 2, 3]), 2, 9, "top")) == [1, 2, 9]
    assert list(top_bottom_code(np.array([1, 2, 3]), 2, 0, "bottom")) == [0, 2, 3]
    with pytest.raises(ValueError, match="kind"):
        top_bottom_code(np.array([1.0]), 0, 0, "middle")  # type: ignore[arg-type]


# --- global recoding: tests/testthat/test_globalRecode.R (assertions kept in comments there) ---


@pytest.mark.parametrize(
    ("method", "pattern"),
    [
        ("equidistant", "A,C,B,A,C,C,A,A,B,C"),
        ("logEqui", "B,C,B,B,B,B,A,B,B,C"),
        ("equalAmount", "A,C,B,A,B,C,A,A,B,C"),
    ],
)
def test_computed_breaks_match_sdcmicro_tests(method: str, pattern: str) -> None:
    recoded = global_recode(SAMPLE, 3, labels=[1, 2, 3], method=method)  # type: ignore[arg-type]
    assert _class_pattern(list(recoded.cat.codes)) == pattern
    unlabelled = global_recode(SAMPLE, 3, method=method)  # type: ignore[arg-type]
    assert _class_pattern(list(unlabelled.cat.codes)) == pattern


def test_explicit_breaks_match_sdcmicro_tests() -> None:
    recoded = global_recode(SAMPLE, [0, 30, 60, 90], labels=[1, 2, 3])
    assert _class_pattern(list(recoded.cat.codes)) == "A,C,B,B,C,C,A,B,B,C"


@pytest.mark.parametrize("method", ["equidistant", "logEqui", "equalAmount"])
def test_one_break_gives_one_class(method: str) -> None:
    recoded = global_recode(SAMPLE, 1, method=method)  # type: ignore[arg-type]
    assert len(recoded.cat.categories) == 1
    assert recoded.notna().all()


def test_label_count_must_match() -> None:
    with pytest.raises(ValueError, match="lengths of 'breaks' and 'labels' differ"):
        global_recode(SAMPLE, 3, labels=[1, 2, 3, 4, 5], method="equidistant")
    with pytest.raises(ValueError, match="lengths of 'breaks' and 'labels' differ"):
        global_recode(SAMPLE, [0, 30, 60, 90], labels=[1, 2, 3, 4, 5])


def test_categorical_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="'x' must be numeric"):
        global_recode(pd.Series(["1", "2"], dtype="category"), 1, method="equidistant")


def test_values_outside_explicit_breaks_become_missing() -> None:
    """test_globalRecode.R: breaks c(0,2,3,4) on values 13..81 give only NA."""
    assert global_recode(SAMPLE, [0, 2, 3, 4], labels=[1, 2, 3]).isna().all()


# --- man/globalRecode.Rd examples as rendered on the sdcMicro site ------------------------------


def test_free1_age_explicit_breaks(sdcmicro_dir: Path) -> None:
    age = pd.read_csv(sdcmicro_dir / "free1.csv")["AGE"]
    recoded = global_recode(age, [1, 9, 19, 29, 39, 49, 59, 69, 100])
    counts = recoded.value_counts(sort=False)
    assert list(counts.index) == [
        "(1,9]", "(9,19]", "(19,29]", "(29,39]", "(39,49]", "(49,59]", "(59,69]", "(69,100]",
    ]  # fmt: skip
    assert list(counts) == [0, 312, 815, 968, 717, 455, 511, 222]
    labelled = global_recode(age, [1, 9, 19, 29, 39, 49, 59, 69, 100], labels=range(1, 9))
    assert list(labelled.head(6)) == [5, 3, 5, 3, 3, 3]


@pytest.mark.parametrize(
    ("method", "labels", "counts"),
    [
        (
            "equidistant",
            ["[14,24]", "(24,34]", "(34,44]", "(44,55]", "(55,65]", "(65,75]"],
            [689, 910, 925, 551, 496, 429],
        ),
        (
            "logEqui",
            ["[6,10]", "(10,18]", "(18,33]", "(33,61]", "(61,110]", "(110,201]"],
            [0, 251, 1248, 1870, 631, 0],
        ),
        (
            "equalAmount",
            ["[15,24]", "(24,32]", "(32,38]", "(38,47]", "(47,61]", "(61,74]"],
            [689, 725, 590, 697, 668, 631],
        ),
    ],
)
def test_free1_age_six_classes(
    sdcmicro_dir: Path, method: str, labels: list[str], counts: list[int]
) -> None:
    age = pd.read_csv(sdcmicro_dir / "free1.csv")["AGE"]
    table = global_recode(age, 6, method=method).value_counts(sort=False)  # type: ignore[arg-type]
    assert list(table.index) == labels
    assert list(table) == counts


def test_testdata2_water_three_classes(sdcmicro_dir: Path) -> None:
    water = pd.read_csv(sdcmicro_dir / "testdata2.csv")["water"]
    table = global_recode(water, 3, method="equidistant").value_counts(sort=False)
    assert table.to_dict() == {"[0,3]": 47, "(3,7]": 40, "(7,10]": 6}


def test_explicit_count_needs_a_method() -> None:
    with pytest.raises(ValueError, match="explicit"):
        global_recode(SAMPLE, 3)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=40
    ),
    breaks=st.lists(
        st.floats(min_value=-2e6, max_value=2e6, allow_nan=False),
        min_size=2,
        max_size=8,
        unique=True,
    ),
)
def test_explicit_breaks_put_each_value_in_its_interval(
    values: list[float], breaks: list[float]
) -> None:
    """Brute force: value v is in class i iff b[i] < v <= b[i+1]; outside every class -> NaN."""
    b = sorted(breaks)
    codes = list(global_recode(np.array(values), b).cat.codes)
    for v, code in zip(values, codes, strict=True):
        inside = [i for i in range(len(b) - 1) if b[i] < v <= b[i + 1]]
        assert (inside[0] if inside else -1) == code


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=0.5, max_value=1e5, allow_nan=False), min_size=2, max_size=40
    ),
    n_classes=st.integers(min_value=1, max_value=6),
    method=st.sampled_from(["equidistant", "logEqui", "equalAmount"]),
)
def test_computed_breaks_classify_every_value(
    values: list[float], n_classes: int, method: str
) -> None:
    """Every value falls in exactly one class and no value is lost (include.lowest)."""
    if method == "equalAmount" and len(set(values)) == 1 and n_classes > 1:
        with pytest.raises(ValueError, match="distinct"):
            global_recode(np.array(values), n_classes, method=method)
        return
    recoded = global_recode(np.array(values), n_classes, method=method)  # type: ignore[arg-type]
    assert recoded.notna().all()
    for v, label in zip(values, recoded, strict=True):
        low, high = (float(s) for s in str(label)[1:-1].split(","))
        # Labels carry 8 significant digits, so compare with that precision.
        tol = 1e-7 * max(abs(low), abs(high), 1.0)
        assert low - tol <= v <= high + tol


# --- groupAndRename ---------------------------------------------------------------------------


def test_group_and_rename_merges_levels(sdcmicro_dir: Path) -> None:
    """man/groupAndRename.Rd: urbrur levels 1 and 2 merged into "1" leave one level."""
    urbrur = pd.read_csv(sdcmicro_dir / "testdata2.csv")["urbrur"].astype(str)
    merged = group_and_rename(urbrur, {"1": ["1", "2"]})
    assert list(merged.cat.categories) == ["1"]
    assert (merged == "1").all()


def test_group_and_rename_keeps_order_and_other_levels() -> None:
    x = pd.Series(pd.Categorical(["a", "b", "c", None, "d"], categories=["a", "b", "c", "d"]))
    merged = group_and_rename(x, {"bd": ["b", "d"]})
    assert list(merged.cat.categories) == ["a", "bd", "c"]
    assert list(merged.astype(object).fillna("NA")) == ["a", "bd", "c", "NA", "bd"]
    with_na = group_and_rename(x, {"bd": ["b", "d"]}, na_to="bd")
    assert list(with_na) == ["a", "bd", "c", "bd", "bd"]
    assert x.isna().sum() == 1


def test_group_and_rename_rejects_bad_groups() -> None:
    x = pd.Series(["a", "b"])
    with pytest.raises(ValueError, match="not present"):
        group_and_rename(x, {"z": ["q"]})
    with pytest.raises(ValueError, match="more than once"):
        group_and_rename(x, {"z": ["a"], "y": ["a"]})
