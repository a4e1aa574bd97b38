"""SUDA2 against sdcMicro's (2019) tests and rendered example, and explicit MSU enumeration."""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checker.microdata.risk.suda2 import msu_weights, suda2

KEYS7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]
KEYS5 = ["urbrur", "roof", "walls", "water", "sex"]


@pytest.mark.parametrize(
    ("order", "expected"),
    [("abc", [50, 37.5, 37.5]), ("acb", [50, 37.5, 37.5]), ("cab", [37.5, 50, 37.5]),
     ("cba", [37.5, 37.5, 50])],
)  # fmt: skip
def test_attribute_contributions_small_example(order: str, expected: list[float]) -> None:
    # sdcMicro tests/testthat/test_suda2.R "suda2 simple example contrubtion" 1-4 (ed5ae64)
    cols = {"a": [2, 1, 1], "b": [0, 3, 0], "c": [0, 6, 0]}
    res = suda2(pd.DataFrame({k: cols[k] for k in order}))
    assert res.attribute_contributions["contribution"].tolist() == pytest.approx(expected)
    assert res.attribute_contributions["variable"].tolist() == list(order)


def test_book_example() -> None:
    # sdcMicro test_suda2.R "suda2 book example": scores of records 5:8 are 4, 2, 6, 8
    tab = pd.DataFrame(
        {
            "age": ["20s"] * 7 + ["60s"],
            "gender": ["male"] * 4 + ["female"] * 3 + ["male"],
            "income": ["50k+", "50k+"] + ["50k-"] * 6,
            "education": ["highschool"] * 4
            + ["university", "highschool", "middleschool", "university"],
        }
    )
    assert suda2(tab).score[4:8].tolist() == [4, 2, 6, 8]


def test_sdc_guideline_example() -> None:
    # sdcMicro test_suda2.R "suda2 sdc guideline"
    testdat = pd.DataFrame(
        {
            "Residence": ["Urban"] * 4 + ["Rural"] + ["Urban"] * 5,
            "Gender": ["Female", "Female", "Female", "Male", "Female", "Male", "Female", "Male",
                       "Female", "Female"],
            "Education": ["Secondary incomplete", "Secondary incomplete", "Primary incomplete",
                          "Secondary complete", "Secondary complete", "Secondary complete",
                          "Primary complete", "Post-secondary", "Secondary incomplete",
                          "Secondary incomplete"],
            "Labor": ["Employed", "Employed", "Non-LF", "Employed", "Unemployed", "Employed",
                      "Non-LF", "Unemployed", "Non-LF", "Non-LF"],
        }
    )  # fmt: skip
    assert suda2(testdat).score.tolist() == [0, 0, 6, 0, 12, 0, 6, 10, 0, 0]


def test_testdata2_seven_keys(sdcmicro_dir: Path) -> None:
    # sdcMicro test_suda2.R: record 1 scores 2.73 (original_scores=FALSE) and 180 (TRUE)
    data = pd.read_csv(sdcmicro_dir / "testdata2.csv")
    assert round(suda2(data[KEYS7], original_scores=False).score[0], 2) == 2.73
    assert suda2(data[KEYS7], original_scores=True).score[0] == 180


def test_testdata2_rendered_example(sdcmicro_dir: Path) -> None:
    # man/suda2.Rd example as rendered on gh-pages (reference/suda2.html at a101343,
    # 2022-12-19): print(), str() of suda2(testdata2, variables=c(urbrur,roof,walls,water,sex))
    data = pd.read_csv(sdcmicro_dir / "testdata2.csv")
    res = suda2(data[KEYS5])
    assert res.score[:10].tolist() == [2, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert res.contribution["urbrur"].head(10).tolist() == [1] * 10
    assert res.dis_score[:10].tolist() == [1] * 10
    assert np.sum(res.dis_score > 0.7 + np.finfo(float).eps) == 93  # "> 0.7": 93 records
    contrib = res.attribute_contributions
    assert contrib["variable"].tolist() == KEYS5
    assert contrib["contribution"].to_numpy() == pytest.approx(
        [36.91275, 74.49664, 41.61074, 91.94631, 98.65772], abs=5e-6
    )
    levels = res.attribute_level_contributions
    assert len(levels) == 20
    assert levels["variable"].head(3).tolist() == ["urbrur", "urbrur", "roof"]
    assert levels["attribute"].head(10).tolist() == [1, 2, 2, 4, 5, 6, 9, 2, 3, 9]
    assert levels["contribution"].head(5).round(2).tolist() == [58.18, 41.82, 29.73, 32.43, 9.01]


def _brute_force(
    data: list[tuple[object, ...]], missing: set[object], m_weights: int, original: bool
) -> tuple[list[float], list[list[float]], list[list[int]]]:
    """Scores, contributions and MSU counts by listing every subset for every record."""
    n, m = len(data), len(data[0])
    if original:
        weight = {k: float(math.factorial(m_weights - k)) for k in range(1, m + 1)}
    else:
        weight = {
            k: (2 ** (m_weights - k) - 1)
            * math.factorial(k)
            * math.factorial(m_weights - k)
            / math.factorial(m_weights)
            for k in range(1, m + 1)
        }

    def unique_on(i: int, subset: tuple[int, ...]) -> bool:
        return all(any(data[j][v] != data[i][v] for v in subset) for j in range(n) if j != i)

    scores, contribs, counts = [], [], []
    for i in range(n):
        msus = []
        for size in range(1, m + 1):
            for subset in combinations(range(m), size):
                if any(data[i][v] in missing for v in subset) or not unique_on(i, subset):
                    continue
                proper = (t for s in range(1, size) for t in combinations(subset, s))
                if not any(unique_on(i, t) for t in proper):
                    msus.append(subset)
        score = sum(weight[len(s)] for s in msus)
        scores.append(score)
        contribs.append(
            [sum(weight[len(s)] for s in msus if v in s) / score if score else 0.0
             for v in range(m)]
        )  # fmt: skip
        counts.append([sum(len(s) == k for s in msus) for k in range(1, m + 1)])
    return scores, contribs, counts


def _dis(score: np.ndarray, u: int, p: int, m: int, f: float) -> np.ndarray:
    dis = u * f / (u * f + p * (1 - f))
    q = 1 + (8 - m) / 20
    pos = score > 0
    a = np.sum(score[pos] ** -q)
    out = np.zeros(len(score))
    out[pos] = 1 / (1 + (u / dis - u) / (score[pos] ** q * a))
    return out


@pytest.mark.parametrize("original", [True, False])
@pytest.mark.parametrize(("seed", "n", "m"), [(0, 25, 4), (1, 40, 5), (2, 30, 3), (3, 60, 6)])
def test_matches_explicit_enumeration(seed: int, n: int, m: int, original: bool) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"v{j}": rng.integers(0, 2 + j % 3, n).astype(float) for j in range(m)})
    frame.iloc[:4] = frame.iloc[4:8].to_numpy()  # some duplicated patterns
    frame = frame.mask(rng.random(frame.shape) < 0.06)  # NA keys
    frame.iloc[8, 0] = -999.0  # the missing code: the same value as NA
    res = suda2(frame, original_scores=original, dis_fraction=0.2)
    rows = [
        tuple("NA" if pd.isna(v) or v == -999 else v for v in r)
        for r in frame.itertuples(index=False)
    ]
    scores, contribs, counts = _brute_force(rows, {"NA"}, m, original)
    assert res.score == pytest.approx(scores, rel=1e-12)
    assert res.contribution.to_numpy() == pytest.approx(np.array(contribs), rel=1e-12)
    assert res.msu_counts.to_numpy().tolist() == counts
    patterns = pd.Series(rows).value_counts()
    u, p = int((patterns == 1).sum()), 2 * int((patterns == 2).sum())
    assert res.dis_score == pytest.approx(_dis(np.array(scores), u, p, m, 0.2), rel=1e-6)
    assert res.score.sum() > 0
    assert (res.dis_score[res.score > 0] > 0).all()
    total = np.array(scores).sum()
    expected = [100 * sum(c[v] * s for c, s in zip(contribs, scores, strict=True)) / total
                for v in range(m)]  # fmt: skip
    assert res.attribute_contributions["contribution"].to_numpy() == pytest.approx(expected)


def test_two_keys_use_three_in_the_weights() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.integers(0, 4, 30), "b": rng.integers(0, 5, 30)})
    with pytest.warns(UserWarning, match="fewer than 3"):
        res = suda2(frame)
    rows = [tuple(r) for r in frame.itertuples(index=False)]
    scores, _, _ = _brute_force(rows, set(), 3, True)
    assert res.score.tolist() == scores
    assert res.contribution.shape == (30, 2)


def test_max_size_limits_the_search() -> None:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({f"v{j}": rng.integers(0, 3, 50) for j in range(5)})
    full = suda2(frame)
    limited = suda2(frame, max_size=2)
    assert (limited.msu_counts[[3, 4, 5]].to_numpy() == 0).all()
    assert (limited.msu_counts[[1, 2]].to_numpy() == full.msu_counts[[1, 2]].to_numpy()).all()
    assert (limited.score <= full.score).all()
    assert (limited.score < full.score).any()


def test_msu_weights() -> None:
    assert msu_weights(4).tolist() == [6, 2, 1, 1]
    # IHSN: (2^(M-k) - 1) k! (M-k)! / M!, M = 3: k=1: 3*1*2/6, k=2: 1*2*1/6, k=3: 0
    assert msu_weights(3, original_scores=False) == pytest.approx([1.0, 1 / 3, 0.0])


def test_dis_fraction_zero_means_half() -> None:
    frame = pd.DataFrame(
        {"a": [1, 1, 2, 3, 3, 4], "b": [0, 0, 1, 1, 2, 2], "c": [5, 5, 5, 6, 6, 6]}
    )
    half = suda2(frame, dis_fraction=0.5).dis_score
    assert suda2(frame, dis_fraction=0).dis_score.tolist() == half.tolist()
    assert half.tolist() != suda2(frame, dis_fraction=0.01).dis_score.tolist()


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="key variable"):
        suda2(pd.DataFrame(index=[0, 1]))
    with pytest.raises(ValueError, match="max_size"):
        suda2(pd.DataFrame({"a": [1, 2], "b": [1, 2], "c": [1, 2]}), max_size=4)


def _r_runif(seed: int, n: int) -> np.ndarray:
    """R's ``set.seed(seed); runif(n)`` (Mersenne-Twister, R's seed scrambling, y / 2**32)."""
    s = seed & 0xFFFFFFFF
    for _ in range(50):
        s = (69069 * s + 1) & 0xFFFFFFFF
    state = []
    for _ in range(625):
        s = (69069 * s + 1) & 0xFFFFFFFF
        state.append(s)
    bits = np.random.MT19937()
    # R keeps the position in the first word and sets it to 624 (a fresh block is drawn).
    bits.state = {
        "bit_generator": "MT19937",
        "state": {"key": np.array(state[1:], dtype=np.uint32), "pos": 624},
    }
    return bits.random_raw(n).astype(np.float64) * 2.3283064365386963e-10


def test_seeded_sdc_object_example() -> None:
    # sdcMicro test_suda2.R "sdc without missing, DisFraction = default": set.seed(3), 30
    # runif(1, 100) for Var1-3, then Var4-6 = round(runif(10, 1, 4 / 6 / 3)) as factors.
    u = _r_runif(3, 60)
    # the same file asserts Var3 = c(23.5919862471055, 2.51765935891308, ...): checks the RNG
    assert (1 + 99 * u[20:22]).tolist() == pytest.approx([23.5919862471055, 2.51765935891308])
    keys = pd.DataFrame(
        {
            "Var4": np.round(1 + 3 * u[30:40]),
            "Var5": np.round(1 + 5 * u[40:50]),
            "Var6": np.round(1 + 2 * u[50:60]),
        }
    ).astype("category")
    res = suda2(keys)
    assert res.score.tolist() == [0, 1, 0, 2, 2, 0, 4, 0, 3, 2]
    assert res.contribution["Var4"].to_numpy() == pytest.approx(
        [0, 0, 0, 0, 0.5, 0, 0.5, 0, 0.666666666666667, 0.5]
    )
