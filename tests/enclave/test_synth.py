"""The synthetic microdata generator: shape, types, determinism, Zipf levels, entities."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from enclave.synth import generate
from enclave.synth.microdata import zipf_weights

CATS = ("cat_a", "cat_b", "cat_c")


def test_columns_dtypes_and_shape() -> None:
    df = generate(5_000, seed=1)
    assert list(df.columns) == [*CATS, "income", "entity_id"]
    assert len(df) == 5_000
    for name in CATS:
        assert isinstance(df[name].dtype, pd.CategoricalDtype)
        prefix = name[-1]
        assert list(df[name].cat.categories) == [f"{prefix}{i:02d}" for i in range(10)]
        assert df[name].notna().all()
    assert df["income"].dtype == np.float64
    assert df["entity_id"].dtype == np.int64
    assert isinstance(df.index, pd.RangeIndex)


def test_labels_widen_for_many_levels() -> None:
    df = generate(2_000, n_levels=101)
    assert df["cat_b"].cat.categories[0] == "b000"
    assert df["cat_b"].cat.categories[-1] == "b100"


def test_same_seed_same_frame_and_other_seed_differs() -> None:
    first = generate(20_000, seed=7)
    pd.testing.assert_frame_equal(first, generate(20_000, seed=7))
    other = generate(20_000, seed=8)
    assert not first["income"].equals(other["income"])
    assert not first["cat_a"].equals(other["cat_a"])


def test_level_frequencies_follow_zipf_order() -> None:
    n = 200_000
    df = generate(n, seed=3, zipf_s=1.1)
    expected = zipf_weights(10, 1.1)
    for name in CATS:
        counts = df[name].value_counts(sort=False).to_numpy()
        assert (np.diff(counts) < 0).all(), f"{name} levels are not in decreasing frequency"
        # binomial standard error is at most sqrt(0.25 / n) ~ 0.0011; allow five of them
        np.testing.assert_allclose(counts / n, expected, atol=0.006)


def test_columns_are_drawn_independently() -> None:
    df = generate(50_000, seed=4)
    assert not (df["cat_a"].cat.codes.to_numpy() == df["cat_b"].cat.codes.to_numpy()).all()
    assert abs(np.corrcoef(df["cat_a"].cat.codes, df["cat_c"].cat.codes)[0, 1]) < 0.03


def test_uniform_levels_when_zipf_exponent_is_zero() -> None:
    counts = generate(100_000, seed=5, zipf_s=0.0)["cat_a"].value_counts().to_numpy()
    np.testing.assert_allclose(counts / 100_000, 0.1, atol=0.006)


def test_entities_have_several_rows() -> None:
    n = 100_000
    df = generate(n, seed=2, rows_per_entity=2.0)
    per_entity = df["entity_id"].value_counts()
    assert len(per_entity) == n // 2
    assert (per_entity >= 1).all()
    assert (per_entity >= 2).mean() > 0.5  # most entities have several rows
    assert per_entity.max() >= 4
    # entities are spread over the frame, not in consecutive blocks
    assert (df["entity_id"].diff() == 0).mean() < 0.01


def test_one_row_per_entity() -> None:
    df = generate(10_000, seed=2, rows_per_entity=1.0)
    assert df["entity_id"].is_unique


def test_income_is_lognormal() -> None:
    log_income = np.log(generate(100_000, seed=6)["income"].to_numpy())
    assert abs(log_income.mean() - 10.0) < 0.02
    assert abs(log_income.std() - 1.0) < 0.02


def test_empty_frame_keeps_columns_and_dtypes() -> None:
    df = generate(0)
    assert len(df) == 0
    assert df["entity_id"].dtype == np.int64
    assert isinstance(df["cat_a"].dtype, pd.CategoricalDtype)


def test_memory_beyond_the_frame_stays_small() -> None:
    tracemalloc.start()
    try:
        df = generate(1_000_000, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    frame = df.memory_usage(deep=True).sum()
    assert frame < 20 * 1_000_000  # int8 codes, float64 income, int64 entity
    assert peak < 1.5 * frame


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_rows": -1}, "n_rows"),
        ({"n_rows": 10, "n_levels": 0}, "n_levels"),
        ({"n_rows": 10, "n_levels": 200}, "n_levels"),
        ({"n_rows": 10, "rows_per_entity": 0.5}, "rows_per_entity"),
        ({"n_rows": 10, "zipf_s": -1.0}, "zipf_s"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate(**kwargs)  # type: ignore[arg-type]
