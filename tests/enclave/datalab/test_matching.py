"""Caliper matching: the sorted search against a brute-force reference, ATT weights,
common support, unmatched people and a pool of two million."""

from __future__ import annotations

import time

import numpy as np
import pytest

from enclave.datalab.errors import DataLabError
from enclave.datalab.matching import caliper_width, kish_n, match, on_common_support


def brute_force(
    treated: np.ndarray, comparison: np.ndarray, caliper: float, k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Matched-set sizes and ATT weights from the full n_t x n_c distance matrix."""
    support = (treated >= comparison.min()) & (treated <= comparison.max())
    distance = np.abs(treated[:, None] - comparison[None, :])
    weights = np.zeros(comparison.size)
    sizes = np.zeros(treated.size, dtype=int)
    for i in np.flatnonzero(support):
        inside = np.flatnonzero(distance[i] <= caliper)
        if k is not None:
            inside = inside[np.argsort(distance[i, inside], kind="stable")][:k]
        sizes[i] = inside.size
        if inside.size:
            weights[inside] += 1 / inside.size
    return sizes, weights


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [None, 1, 3])
def test_sorted_search_equals_brute_force(seed: int, k: int | None) -> None:
    rng = np.random.default_rng(seed)
    comparison = rng.normal(0, 1, rng.integers(5, 300))
    treated = rng.normal(0.5, 1.2, rng.integers(1, 60))
    caliper = float(rng.uniform(0.01, 0.4))
    found = match(
        treated,
        comparison,
        caliper=caliper,
        mode="radius" if k is None else "nearest",
        k=k or 1,
    )
    sizes, weights = brute_force(treated, comparison, caliper, k)
    np.testing.assert_array_equal(found.matched_set_sizes, sizes)
    np.testing.assert_allclose(found.comparison_weights, weights, atol=1e-12)
    assert found.matched == int((sizes > 0).sum())


@pytest.mark.parametrize("mode,k", [("radius", 1), ("nearest", 1), ("nearest", 5)])
def test_weights_sum_to_matched_and_respect_the_caliper(mode: str, k: int) -> None:
    rng = np.random.default_rng(11)
    comparison = rng.normal(0, 1, 5_000)
    treated = rng.normal(1, 1, 400)
    found = match(treated, comparison, caliper=0.05, mode=mode, k=k)  # type: ignore[arg-type]
    assert found.comparison_weights.sum() == pytest.approx(found.matched)
    assert found.treated_weights.sum() == found.matched
    used = comparison[found.comparison_weights > 0]
    matched = treated[found.treated_matched]
    assert (np.abs(used[:, None] - matched[None, :]).min(axis=1) <= 0.05).all()
    if mode == "nearest":
        assert found.matched_set_sizes.max() <= k


def test_radius_takes_everyone_inside_and_one_over_m() -> None:
    comparison = np.array([0.0, 0.1, 0.2, 1.0, 1.05])
    treated = np.array([0.1, 1.0])
    found = match(treated, comparison, caliper=0.1)
    np.testing.assert_array_equal(found.matched_set_sizes, [3, 2])
    np.testing.assert_allclose(found.comparison_weights, [1 / 3, 1 / 3, 1 / 3, 1 / 2, 1 / 2])
    assert found.comparison_used == 5
    assert found.effective_comparison == pytest.approx(2**2 / (3 / 9 + 2 / 4))


def test_unmatched_and_off_support_people_are_counted() -> None:
    comparison = np.array([0.0, 0.1, 2.0, 2.1])
    treated = np.array([0.05, 1.0, 3.0, -1.0, 2.05])
    found = match(treated, comparison, caliper=0.2)
    np.testing.assert_array_equal(found.treated_on_support, [True, True, False, False, True])
    np.testing.assert_array_equal(found.treated_matched, [True, False, False, False, True])
    assert (found.treated, found.off_support, found.unmatched, found.matched) == (5, 2, 1, 2)


def test_common_support_is_the_pool_min_max() -> None:
    np.testing.assert_array_equal(
        on_common_support(np.array([-1.0, 0.0, 0.5, 1.0, 1.01]), np.array([0.0, 1.0])),
        [False, True, True, True, False],
    )


def test_caliper_is_a_fifth_of_the_pooled_sd() -> None:
    treated = np.array([1.0, 2.0, 3.0])
    comparison = np.array([0.0, 0.0, 4.0, 4.0])
    pooled = np.sqrt((1.0 + 16 / 3) / 2)
    assert caliper_width(treated, comparison) == pytest.approx(0.2 * pooled)
    assert caliper_width(treated, comparison, 0.5) == pytest.approx(0.5 * pooled)


def test_ties_go_to_the_lower_sorted_position() -> None:
    found = match(np.array([1.0]), np.array([1.5, 0.5, 1.5]), caliper=1.0, mode="nearest")
    np.testing.assert_array_equal(found.comparison_weights, [0.0, 1.0, 0.0])


def test_kish_n() -> None:
    assert kish_n(np.array([1.0, 1.0, 1.0, 1.0])) == 4
    assert kish_n(np.array([3.0, 1.0])) == pytest.approx(16 / 10)
    assert kish_n(np.zeros(3)) == 0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"caliper": 0.0}, "caliper must be positive"),
        ({"caliper": 0.1, "mode": "kernel"}, "matching mode"),
        ({"caliper": 0.1, "mode": "nearest", "k": 0}, "k >= 1"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DataLabError, match=message):
        match(np.array([0.0]), np.array([0.0, 1.0]), **kwargs)  # type: ignore[arg-type]


def test_empty_pool_and_nan_scores_are_refused() -> None:
    with pytest.raises(DataLabError, match="empty"):
        match(np.array([0.0]), np.array([]), caliper=0.1)
    with pytest.raises(DataLabError, match="finite"):
        match(np.array([np.nan]), np.array([0.0]), caliper=0.1)


def test_a_pool_of_two_million_matches_in_seconds() -> None:
    rng = np.random.default_rng(3)
    comparison = rng.normal(-3, 1.5, 2_000_000)
    treated = rng.normal(-1, 1.2, 600)
    started = time.perf_counter()
    found = match(treated, comparison, caliper=0.3)
    elapsed = time.perf_counter() - started
    assert found.comparison_weights.sum() == pytest.approx(found.matched)
    assert found.comparison_used > 1_000_000
    assert elapsed < 10, f"radius matching of a 2M pool took {elapsed:.1f} s"
