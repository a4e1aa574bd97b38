"""The primary-rule acceptance vectors T01-T17 of the specification (§13.1).

T18-T20 (models) live in test_models.py.
"""

from __future__ import annotations

import pytest

from output_checker import NKRule, Parameters, check_table
from tests.output_checker.helpers import counts_frame, one_cell


def params(**kw: object) -> Parameters:
    return Parameters(**kw)  # type: ignore[arg-type]


def nk(n: int, k: float) -> Parameters:
    return params(nk_rules=(NKRule(n, k),), p_percent=None, threshold=1)


def p_rule(p: float) -> Parameters:
    return params(nk_rules=(), p_percent=p, threshold=1)


def fails(cell: dict[str, object], rule: str) -> bool:
    return rule in cell["rules_failed"]  # type: ignore[operator]


T01 = [50_000, 49_000] + [100] * 10
T02 = [52_000, 50_000] + [800] * 10


def test_t01_one_dominant_is_not_enough_for_p_percent() -> None:
    assert not fails(one_cell(T01, params=nk(1, 90)), "nk")
    assert fails(one_cell(T01, params=p_rule(10)), "p_percent")
    assert fails(one_cell(T01, params=nk(2, 85)), "nk")


def test_t02_nk_with_equivalent_k_is_stricter_than_p_percent() -> None:
    assert not fails(one_cell(T02, params=p_rule(10)), "p_percent")
    assert fails(one_cell(T02, params=nk(2, 100 * 100 / 110)), "nk")


def test_t03_protection_level_of_nk() -> None:
    cell = one_cell([300, 20, 10], params=nk(1, 85))
    assert fails(cell, "nk")
    assert cell["protection_level"] == pytest.approx(300 * 100 / 85 - 330, abs=0.005)
    assert 330 + cell["protection_level"] == pytest.approx(352.94, abs=0.005)


def test_t04_replicated_weights_protect_the_top_contributor() -> None:
    cell = one_cell([100, 10], weights=[4, 7], params=p_rule(10))
    assert not fails(cell, "p_percent")


def test_t05_replication_over_protects_but_sample_top_does_not() -> None:
    replicate = one_cell([100, 1], weights=[2, 3], params=p_rule(10))
    assert fails(replicate, "p_percent")
    sample_top = one_cell(
        [100, 1], weights=[2, 3], params=params(nk_rules=(), threshold=1, weights_mode="sample_top")
    )
    assert not fails(sample_top, "p_percent")
    # X_hat - x1 - x2 = 203 - 100 - 1 = 102, i.e. 1.02 x1
    assert sample_top["checks"]["p_percent"]["ratio"] == pytest.approx(1.02)


def test_t06_p_percent_p_q_and_their_protection_levels() -> None:
    values = [400, 50, 10]
    p10 = one_cell(values, params=p_rule(10))
    assert fails(p10, "p_percent")
    assert p10["protection_level"] == pytest.approx(30)
    assert not fails(one_cell(values, params=p_rule(2)), "p_percent")
    assert fails(
        one_cell(values, params=params(nk_rules=(), p_percent=None, pq=(10, 50), threshold=1)),
        "p_percent",
    )
    nk285 = one_cell(values, params=nk(2, 85))
    assert fails(nk285, "nk")
    assert nk285["protection_level"] == pytest.approx(69.41, abs=0.005)


def test_t07_p_percent_boundary_is_strict() -> None:
    assert not fails(one_cell([100, 50, 10], params=p_rule(10)), "p_percent")


def test_t08_nk_boundary_strict_canonically_but_not_in_acro_mode() -> None:
    assert not fails(one_cell([45, 45, 10], params=nk(2, 90)), "nk")
    acro = Parameters.for_conventions("acro").tightened(threshold=10)
    assert fails(one_cell([45, 45, 10], params=acro, conventions="acro"), "nk")


def test_t09_dominance_but_p_percent_safe() -> None:
    values = [60, 30, 10]
    assert fails(one_cell(values, params=nk(1, 50)), "nk")
    assert fails(one_cell(values, params=nk(2, 67)), "nk")
    assert not fails(one_cell(values, params=p_rule(10)), "p_percent")


def test_t10_two_largest() -> None:
    values = [45, 25, 10, 10, 10]
    assert not fails(one_cell(values, params=nk(1, 50)), "nk")
    assert fails(one_cell(values, params=nk(2, 67)), "nk")
    assert not fails(one_cell(values, params=nk(2, 85)), "nk")


def test_t11_contributions_are_aggregated_per_entity() -> None:
    values, people = [40, 35, 15, 10], ["A", "A", "B", "C"]
    assert not fails(one_cell(values, params=nk(1, 50)), "nk")
    per_entity = one_cell(values, entities=people, params=nk(1, 50))
    assert fails(per_entity, "nk")
    assert per_entity["evidence"]["n_entities"] == 3
    assert per_entity["checks"]["nk"]["ratio_1,50"] == pytest.approx(0.75)


def test_t12_negative_values_use_absolute_contributions() -> None:
    cell = one_cell([100, -80, 10], params=nk(1, 50))
    assert fails(cell, "nk")
    assert cell["evidence"]["n_negative"] == 1
    acro = one_cell([100, -80, 10], conventions="acro")
    assert acro["checks"]["nk"]["status"] == "review"
    assert acro["checks"]["p_percent"]["status"] == "review"


@pytest.mark.parametrize(("count", "unsafe"), [(9, True), (10, False)])
def test_t13_t14_threshold_boundary(count: int, unsafe: bool) -> None:
    frame = counts_frame({"r": [count]}, ["c"])
    [cell] = check_table(frame, "row", "col").to_dict()["cells"]
    assert fails(cell, "threshold") is unsafe
    # sdcTable's maxN = 10 is inclusive: the same as T = 11 here
    [strict] = check_table(frame, "row", "col", parameters=params(threshold=11)).to_dict()["cells"]
    assert fails(strict, "threshold")


def test_t15_zero_is_not_a_small_count_but_follows_the_zeros_policy() -> None:
    frame = counts_frame({"r": [2, 0, 5]}, ["a", "b", "c"])
    result = check_table(frame, "row", "col", parameters=params(threshold=3, class_share=None))
    cells = {c["columns"][0]: c for c in result.to_dict()["cells"]}
    assert fails(cells["a"], "threshold")
    assert not fails(cells["b"], "threshold")
    assert cells["b"]["checks"]["zero"]["status"] == "review"
    strict_zeros = check_table(frame, "row", "col", parameters=params(threshold=3, zeros="fail"))
    cells = {c["columns"][0]: c for c in strict_zeros.to_dict()["cells"]}
    assert cells["b"]["checks"]["zero"]["status"] == "fail"
    acro = check_table(frame, "row", "col", conventions="acro").to_dict()["cells"]
    assert {c["columns"][0]: c["status"] for c in acro}["b"] == "fail"


def test_t16_full_cell_is_group_disclosure() -> None:
    frame = counts_frame({"r1": [0, 30, 0], "r2": [20, 20, 20]}, ["a", "b", "c"])
    cells = check_table(frame, "row", "col").to_dict()["cells"]
    by = {(c["index"][0], c["columns"][0]): c for c in cells}
    assert fails(by[("r1", "b")], "class_disclosure")
    assert not fails(by[("r2", "b")], "class_disclosure")


def test_t17_share_just_over_ninety_percent() -> None:
    frame = counts_frame({"r1": [92, 10], "r2": [50, 50]}, ["a", "b"])
    by = {
        (c["index"][0], c["columns"][0]): c
        for c in check_table(frame, "row", "col").to_dict()["cells"]
    }
    assert fails(by[("r1", "a")], "class_disclosure")
    assert by[("r1", "a")]["checks"]["class_disclosure"]["share"] == pytest.approx(92 / 102)
    assert not fails(by[("r2", "a")], "class_disclosure")
