"""l-diversity against sdcMicro's tests and rendered example, and a plain per-group replica."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from output_checker.microdata.risk.ldiversity import ldiversity

KEYS5 = ["urbrur", "roof", "walls", "water", "sex"]


def test_na_keys_form_their_own_group() -> None:
    # sdcMicro tests/testthat/test_ldiversity.R, "handles NAs and distinct counts correctly"
    data = pd.DataFrame(
        {
            "sex": ["female", "female", "female", "male", "male", "female", "female"],
            "occupation": [None, None, None, "teacher", "teacher", "nurse", "nurse"],
            "ethnicity": ["other"] * 5 + ["majority"] * 2,
            "sensitive": [1, 0, 2, 1, 0, 0, 1],
        }
    )
    res = ldiversity(data[["sex", "occupation", "ethnicity"]], data["sensitive"])
    assert res["sensitive_Distinct_Ldiversity"].tolist() == [3, 3, 3, 2, 2, 2, 2]


def test_input_order_and_index_kept() -> None:
    # sdcMicro test_ldiversity.R, "maintains original row order"
    data = pd.DataFrame({"id": [3, 1, 2], "sens": [10, 20, 10]}, index=[7, 5, 9])
    res = ldiversity(data[["id"]], data["sens"])
    assert len(res) == 3
    assert list(res.index) == [7, 5, 9]
    assert (res["sens_Distinct_Ldiversity"] == 1).all()


def test_several_sensitive_variables() -> None:
    # sdcMicro test_ldiversity.R, "handles multiple sensitive variables"
    data = pd.DataFrame({"key": [1, 1, 1], "sens1": ["A", "B", "A"], "sens2": ["X", "Y", "Z"]})
    res = ldiversity(data[["key"]], data[["sens1", "sens2"]])
    assert res.loc[0, "sens1_Distinct_Ldiversity"] == 2
    assert res.loc[0, "sens2_Distinct_Ldiversity"] == 3
    assert "MultiEntropy_Ldiversity" not in res.columns  # not faked (always 0 in sdcMicro)


def test_testdata_example_matches_rendered_output(sdcmicro_dir: Path) -> None:
    # sdcMicro man/measure_risk.Rd example, output rendered on the gh-pages branch
    # (reference/measure_risk.html, 2026-04-22): head(res2) and print(res2).
    data = pd.read_csv(sdcmicro_dir / "testdata.csv")
    res = ldiversity(data[KEYS5], data[["electcon", "relat"]])
    expected = {
        "electcon_Distinct_Ldiversity": [3, 3, 3, 3, 2, 2],
        "electcon_Entropy_Ldiversity": [1.765424, 1.855345, 1.765424, 1.765424, 1.172525, 1.130836],
        "electcon_Recursive_Ldiversity": [1, 1, 1, 1, 1, 1],
        "relat_Distinct_Ldiversity": [5, 8, 5, 5, 5, 4],
        "relat_Entropy_Ldiversity": [2.276001, 2.997907, 2.276001, 2.276001, 2.209202, 2.240133],
        "relat_Recursive_Ldiversity": [2, 2, 2, 2, 2, 2],
    }
    for column, values in expected.items():
        assert res[column].head(6).to_numpy() == pytest.approx(values, abs=5e-7), column
    # summary(): Min. 1st Qu. Median Mean 3rd Qu. Max.
    for column, summary in {
        "electcon_Distinct_Ldiversity": (1, 2, 3, 2.374, 3, 3),
        "relat_Distinct_Ldiversity": (1, 5, 5, 5.524, 7, 8),
    }.items():
        col = res[column]
        quartiles = col.quantile([0, 0.25, 0.5, 0.75, 1]).tolist()
        assert quartiles == [summary[i] for i in (0, 1, 2, 4, 5)]
        assert round(col.mean(), 3) == summary[3]


def _replica(
    keys: pd.DataFrame, sens: pd.Series, c: float, missing: float
) -> tuple[list[int], list[float], list[int]]:
    """Per-group loop written from the C++ description: one group at a time, in plain Python."""
    rows = [tuple("NA" if pd.isna(v) else v for v in row) for row in keys.itertuples(index=False)]
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row, []).append(i)
    numeric = pd.api.types.is_numeric_dtype(sens)
    out_d, out_e, out_r = [0] * len(rows), [0.0] * len(rows), [0] * len(rows)
    for members in groups.values():
        size = len(members)
        n_missing = 0
        freq: Counter[object] = Counter()
        for i in members:
            v = sens.iloc[i]
            if pd.isna(v):
                freq[("nan", i)] += 1  # NaN equals nothing
            elif numeric and v == missing:
                n_missing += 1
            else:
                freq[v] += 1
        counts = sorted(freq.values(), reverse=True)
        distinct = len(counts) + (1 if n_missing and counts else 0)
        ent = sum(f / size * math.log(f / size) for f in counts)
        if n_missing and counts:
            ent += n_missing / size * math.log(n_missing / size)
        if len(counts) > 1:
            cf = np.float32(c)
            total = np.float32(0.0)
            for f in counts[1:]:
                total = np.float32(total + np.float32(f))
            total = np.float32(total * cf)
            rank, j = 1, 1
            while j < len(counts) and total > np.float32(counts[0]):
                total = np.float32(total - np.float32(cf * np.float32(counts[j])))
                rank += 1
                j += 1
        else:
            rank = 1 if counts else 0  # all-missing group: 0 here (stale value in sdcMicro)
        for i in members:
            out_d[i], out_e[i], out_r[i] = distinct, math.exp(-ent), rank
    return out_d, out_e, out_r


@pytest.mark.parametrize("c", [2.0, 3.0, 0.7, 1.3, 1.1])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_plain_per_group_loop(seed: int, c: float) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    keys = pd.DataFrame(
        {
            "a": rng.integers(0, 3, n).astype(float),
            "b": rng.choice(["x", "y", "z", None], n),
        }
    )
    keys.loc[rng.random(n) < 0.1, "a"] = np.nan
    sens = pd.Series(rng.integers(0, 6, n).astype(float))
    sens[rng.random(n) < 0.1] = -999.0  # the missing code
    sens[rng.random(n) < 0.05] = np.nan  # R NA: a category per record
    # one group whose sensitive values are all the missing code
    keys.loc[:4, ["a", "b"]] = [99.0, "only-missing"]
    sens[:5] = -999.0
    res = ldiversity(keys, sens.rename("s"), l_recurs_c=c)
    distinct, entropy, recursive = _replica(keys, sens, c, -999.0)
    assert res["s_Distinct_Ldiversity"].tolist() == distinct
    assert res["s_Entropy_Ldiversity"].to_numpy() == pytest.approx(entropy, rel=1e-12)
    assert res["s_Recursive_Ldiversity"].tolist() == recursive
    assert res["s_Distinct_Ldiversity"].iloc[0] == 0
    assert res["s_Entropy_Ldiversity"].iloc[0] == 1.0


def test_many_groups_and_categories_match_the_loop() -> None:
    # many (group, category) pairs: the sorting path rather than the counting one
    rng = np.random.default_rng(11)
    n = 3000
    keys = pd.DataFrame({"a": rng.integers(0, 300, n), "b": rng.integers(0, 4, n)})
    sens = pd.Series(rng.normal(size=n).round(1), name="s")
    sens[rng.random(n) < 0.2] = np.nan
    for c in (2.0, 0.9):
        res = ldiversity(keys, sens, l_recurs_c=c)
        distinct, entropy, recursive = _replica(keys, sens, c, -999.0)
        assert res["s_Distinct_Ldiversity"].tolist() == distinct
        assert res["s_Entropy_Ldiversity"].to_numpy() == pytest.approx(entropy, rel=1e-12)
        assert res["s_Recursive_Ldiversity"].tolist() == recursive


def test_missing_code_rule() -> None:
    keys = pd.DataFrame({"k": [1] * 6})
    # categories 5 (x3), 6 (x1) and the missing code twice
    sens = pd.Series([5, 5, 5, 6, -999, -999], name="s")
    res = ldiversity(keys, sens).iloc[0]
    assert res["s_Distinct_Ldiversity"] == 3  # 2 categories + 1 for the missing code
    p = np.array([3, 1, 2]) / 6
    assert res["s_Entropy_Ldiversity"] == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    # recursive ignores the missing code: 3 < 2 * 1 fails, so l = 1
    assert res["s_Recursive_Ldiversity"] == 1
    # a string column never matches the numeric missing code
    res_str = ldiversity(keys, sens.astype(str)).iloc[0]
    assert res_str["s_Distinct_Ldiversity"] == 3
    # a custom code
    # 5 as the code: categories 6 (x1) and -999 (x2) plus the code; 2 < 2 * 1 fails: l = 1
    as5 = ldiversity(keys, sens, missing=5).iloc[0]
    assert (as5["s_Distinct_Ldiversity"], as5["s_Recursive_Ldiversity"]) == (3, 1)
    # 6 as the code: categories 5 (x3) and -999 (x2); 3 < 2 * 2 holds: l = 2
    as6 = ldiversity(keys, sens, missing=6).iloc[0]
    assert (as6["s_Distinct_Ldiversity"], as6["s_Recursive_Ldiversity"]) == (3, 2)


def test_recursive_constant() -> None:
    keys = pd.DataFrame({"k": [0] * 10})
    sens = pd.Series([1] * 4 + [2] * 3 + [3] * 2 + [4], name="s")
    # f = 4, 3, 2, 1: l = 2 needs 4 < c * 6, l = 3 needs 4 < c * 3, l = 4 needs 4 < c * 1
    for c, expected in [(0.5, 1), (1.0, 2), (2.0, 3), (5.0, 4), (-1.0, 2)]:
        assert ldiversity(keys, sens, l_recurs_c=c).iloc[0]["s_Recursive_Ldiversity"] == expected


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_row_permutation_only_permutes_the_result(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    keys = pd.DataFrame({"a": rng.integers(0, 3, n), "b": rng.integers(0, 2, n)})
    sens = pd.Series(rng.integers(0, 4, n), name="s")
    res = ldiversity(keys, sens)
    perm = rng.permutation(n)
    res_perm = ldiversity(keys.iloc[perm], sens.iloc[perm])
    pd.testing.assert_frame_equal(res_perm, res.iloc[perm])


def test_bad_input() -> None:
    keys = pd.DataFrame({"k": [1, 2]})
    with pytest.raises(ValueError, match="at most 5"):
        ldiversity(keys, pd.DataFrame({f"s{i}": [1, 2] for i in range(6)}))
    with pytest.raises(ValueError, match="also a key"):
        ldiversity(keys, pd.DataFrame({"k": [1, 2]}))
    with pytest.raises(ValueError, match="same number of rows"):
        ldiversity(keys, pd.Series([1, 2, 3], name="s"))
    with pytest.raises(ValueError, match="one record"):
        ldiversity(pd.DataFrame({"k": []}), pd.Series([], name="s", dtype=float))
    with pytest.raises(ValueError, match="key variable"):
        ldiversity(pd.DataFrame(index=[0, 1]), pd.Series([1, 2], name="s"))
