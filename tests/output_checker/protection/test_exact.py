"""Optimal secondary suppression on the worked cases S01–S08 (spec §13.2), and the heuristic."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from output_checker.errors import InputError
from output_checker.protection import TableModel, audit, heuristic, protect_exact
from output_checker.protection.heuristic import protect, protect_heuristic
from output_checker.protection.problem import default_costs
from output_checker.status import Status


def grid(rows: list[str], cols: list[str]) -> TableModel:
    return TableModel.with_totals([rows, cols])


def names(model: TableModel, mask: np.ndarray) -> set[str]:
    return {"/".join(map(str, model.labels(int(c)))) for c in np.flatnonzero(mask)}


R3, C3 = ["R1", "R2", "R3"], ["C1", "C2", "C3"]


def test_s01_counts() -> None:
    model = grid(R3, C3)
    values = model.complete([[20, 50, 10], [8, 19, 22], [17, 32, 4]])
    original = values.copy()
    primary = [model.cell("R2", "C1"), model.cell("R3", "C3")]
    result = protect_exact(model, values, primary, 1, 1)
    assert result.status == Status.PASS and result.reason == ""
    assert names(model, result.secondary) == {"R2/C3", "R3/C1"}
    assert result.cost == 39
    expected = {"R2/C1": (4, 25), "R2/C3": (5, 26), "R3/C1": (0, 21), "R3/C3": (0, 21)}
    for name, interval in expected.items():
        assert result.audit.interval(model.cell(*name.split("/"))) == pytest.approx(interval)
    assert result.protected.all() and result.method == "exact" and result.optimal
    assert np.array_equal(values, original) and np.array_equal(result.values, original)


def test_s03_is_the_optimum_for_s02() -> None:
    model = grid(R3, C3)
    values = model.complete([[460, 25, 300], [12, 200, 180], [150, 220, 90]])
    r1c1 = model.cell("R1", "C1")
    result = protect_exact(model, values, [r1c1], 30, 30)
    assert result.status == Status.PASS
    assert names(model, result.suppressed) == {"R1/C1", "R1/C3", "R3/C1", "R3/C3"}
    assert result.cost == 540
    assert result.audit.interval(r1c1) == pytest.approx((370, 610))
    assert result.audit.interval(model.cell("R1", "C3")) == pytest.approx((150, 390))
    # The cheaper S02 rectangle (cost 237) is not protecting, so it is not the answer.
    s02 = audit(
        model, values, [r1c1, *(model.cell(*n.split("/")) for n in ("R1/C2", "R2/C1", "R2/C2"))]
    )
    assert not s02.protected([r1c1], 30, 30)[0]


def test_s04_hierarchy() -> None:
    model = TableModel.from_dimensions(
        [["T", "A", "A1", "A2", "B"], ["T", "X", "Y"]],
        [{"T": ["A", "B"], "A": ["A1", "A2"]}, {"T": ["X", "Y"]}],
    )
    values = model.complete([[3, 40], [25, 30], [50, 60]])
    result = protect_exact(model, values, [model.cell("A1", "X")], 1, 1)
    assert result.status == Status.PASS
    assert names(model, result.suppressed) == {"A1/X", "A1/Y", "A2/X", "A2/Y"}
    assert result.audit.interval(model.cell("A1", "X")) == pytest.approx((0, 28))


def test_s06_hypercube_is_the_optimum_for_s05() -> None:
    model = TableModel.with_totals([["a", "b"]] * 3)
    values = model.complete([[[4, 30], [20, 25]], [[15, 35], [40, 45]]])
    result = protect_exact(model, values, [model.cell("a", "a", "a")], 1, 1)
    assert result.status == Status.PASS
    inner = {"/".join(c) for c in itertools.product("ab", repeat=3)}
    assert names(model, result.suppressed) == inner
    assert result.cost == 214 - 4
    assert result.audit.interval(model.cell("a", "a", "a")) == pytest.approx((0, 19))


def s07() -> tuple[TableModel, np.ndarray, int, int, np.ndarray]:
    model = grid(["A", "B"], ["X1", "X2", "X3", "X4"])
    values = model.complete([[52, 15, 62, 17], [24, 18, 31, 8]])
    c12, c14 = model.cell("A", "X2"), model.cell("A", "X4")
    levels = np.zeros(model.n_cells)
    levels[[c12, c14]] = [1.5, 1.7]
    return model, values, c12, c14, levels


def test_s07_standard_optimum_is_the_leaky_rectangle() -> None:
    model, values, c12, c14, levels = s07()
    result = protect_exact(model, values, [c12, c14], levels, levels)
    assert result.status == Status.PASS
    assert names(model, result.suppressed) == {"A/X2", "A/X4", "B/X2", "B/X4"}
    # ...which the contributor of the singleton c12 sees through.
    aware = audit(model, values, result.suppressed, known=[c12])
    assert aware.interval(c14) == pytest.approx((17, 17))


@pytest.mark.parametrize("how", ["singletons", "scenarios"])
def test_s08_singleton_aware_optimum(how: str) -> None:
    model, values, c12, c14, levels = s07()
    if how == "singletons":
        result = protect_exact(model, values, [c12, c14], levels, levels, singletons=[c12])
    else:
        result = protect_exact(model, values, [c12, c14], levels, levels, scenarios=[(c14, [c12])])
    assert result.status == Status.PASS
    assert names(model, result.suppressed) == {"A/X1", "A/X2", "A/X4", "B/X1", "B/X2", "B/X4"}
    assert result.cost == 52 + 24 + 18 + 8
    (scenario,) = result.scenarios
    assert (scenario.cell, scenario.known, scenario.protected) == (c14, (c12,), True)
    assert (scenario.lo, scenario.hi) == pytest.approx((0, 25))
    assert audit(model, values, result.suppressed, known=[c12]).interval(c14) == pytest.approx(
        (0, 25)
    )


# ----- failure modes ---------------------------------------------------------------------------
def test_unprotectable_primary_fails_with_a_reason() -> None:
    model = TableModel.from_dimensions([["T", "x"]], [{"T": ["x"]}])
    result = protect_exact(model, [5, 5], [model.cell("x")], 1, 1)
    assert result.status == Status.FAIL
    assert "cannot be protected" in result.reason and "('x',)" in result.reason
    assert not result.protected.any()
    # Even with everything suppressed, x cannot exceed the a-priori bound (the grand total 5).
    everything = audit(model, [5, 5], [0, 1])
    assert everything.interval(1) == pytest.approx((0, 5))
    assert not everything.protected([1], 1, 1)[0]


def test_unprotectable_primary_does_not_stop_the_others() -> None:
    model = grid(R3, C3)
    values = model.complete([[20, 50, 10], [8, 19, 22], [17, 32, 4]])
    r2c1, r3c3 = model.cell("R2", "C1"), model.cell("R3", "C3")
    upl = np.zeros(model.n_cells)
    upl[[r2c1, r3c3]] = [1, 500]  # no table consistent with the margins lets R3/C3 reach 504
    result = protect_exact(model, values, [r2c1, r3c3], upl, 1)
    assert result.status == Status.FAIL and "('R3', 'C3')" in result.reason
    assert list(result.protected) == [True, False]
    assert audit(model, values, result.suppressed).protected([r2c1], 1, 1)[0]


def cube_needing_several_rounds() -> tuple[TableModel, np.ndarray, np.ndarray]:
    """A 5x5x5 count table with every margin whose optimum takes the MIP several rounds."""
    rng = np.random.default_rng(5)
    model = TableModel.with_totals([5, 5, 5])
    values = model.complete(rng.poisson(rng.lognormal(3.3, 1.0, (5, 5, 5))))
    return model, values, (values > 0) & (values < 10) & ~model.is_total


def test_round_cap_gives_review_with_a_repaired_pattern() -> None:
    model, values, primary = cube_needing_several_rounds()
    # no time limit: on a loaded machine the default one can end the search before optimality
    best = protect_exact(model, values, primary, 1, 1, time_limit=None)
    assert best.status == Status.PASS and best.optimal and best.rounds > 1
    capped = protect_exact(model, values, primary, 1, 1, max_rounds=1)
    assert capped.status == Status.REVIEW and "within 1 rounds" in capped.reason
    # The unfinished pattern was repaired: it protects, but need not be optimal.
    assert capped.protected.all()
    assert audit(model, values, capped.suppressed).protected(primary, 1, 1).all()
    assert capped.cost >= best.cost


def test_time_limit_gives_a_protecting_pattern_with_a_proved_bound() -> None:
    model, values, primary = cube_needing_several_rounds()
    best = protect_exact(model, values, primary, 1, 1, time_limit=None)
    hurried = protect_exact(model, values, primary, 1, 1, time_limit=0.0)
    assert hurried.status == Status.PASS and hurried.protected.all()
    assert audit(model, values, hurried.suppressed).protected(primary, 1, 1).all()
    assert hurried.lower_bound is not None
    assert hurried.lower_bound <= best.cost <= hurried.cost
    if not hurried.optimal:
        assert "above the optimum" in hurried.summary()
    assert hurried.to_dict()["lower_bound"] == hurried.lower_bound


def test_zero_cells_are_never_suppressed_and_totals_are_avoided() -> None:
    model = grid(R3, C3)
    values = model.complete([[0, 50, 10], [8, 0, 22], [17, 32, 4]])
    result = protect_exact(model, values, [model.cell("R2", "C1")], 1, 1)
    assert result.status == Status.PASS
    assert not (result.suppressed & (values == 0)).any()
    assert not (result.suppressed & model.is_total).any()
    costs = default_costs(model, values)
    assert costs[model.cell("T", "T")] > 1000 * values.max()
    assert costs[model.cell("R1", "C2")] == 50


def test_custom_costs_change_the_pattern() -> None:
    model = grid(R3, C3)
    values = model.complete([[20, 50, 10], [8, 19, 22], [17, 32, 4]])
    primary = [model.cell("R2", "C1"), model.cell("R3", "C3")]
    unity = np.where(model.is_total, 1e6, 1.0)
    result = protect_exact(model, values, primary, 1, 1, costs=unity)
    assert result.status == Status.PASS and result.cost == 2  # two secondaries at cost 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"upl": 0}, "must be positive"),
        ({"upl": np.full(16, np.nan)}, "finite protection levels"),
        ({"costs": -1}, "non-negative"),
        ({"primary": np.ones(3, dtype=bool)}, "a mask of 3 cells"),
        ({"lower": 10}, "outside its a-priori bounds"),
        ({"scenarios": [(0, [1])]}, "not a primary"),
    ],
)
def test_bad_input_is_rejected(kwargs: dict[str, object], message: str) -> None:
    model = grid(R3, C3)
    values = model.complete([[20, 50, 10], [8, 19, 22], [17, 32, 4]])
    args: dict[str, object] = {"primary": [model.cell("R2", "C1")], "upl": 1, "lpl": 1}
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        protect_exact(model, values, **args)  # type: ignore[arg-type]


def test_no_primaries_means_nothing_suppressed() -> None:
    model = grid(R3, C3)
    values = model.complete([[20, 50, 10], [18, 19, 22], [17, 32, 14]])
    result = protect_exact(model, values, [], 1, 1)
    assert result.status == Status.PASS and not result.suppressed.any() and result.cost == 0


def test_result_to_dict_is_json() -> None:
    model, values, c12, c14, levels = s07()
    result = protect_exact(model, values, [c12, c14], levels, levels, singletons=[c12])
    record = json.loads(json.dumps(result.to_dict(model)))
    assert record["status"] == "pass" and record["method"] == "exact"
    assert record["secondary"] == sorted(int(c) for c in np.flatnonzero(result.secondary))
    assert {tuple(i["codes"]) for i in record["intervals"]} == {
        ("A", "X1"),
        ("A", "X2"),
        ("A", "X4"),
        ("B", "X1"),
        ("B", "X2"),
        ("B", "X4"),
    }
    assert record["scenarios"] == [
        {"cell": c14, "known": [c12], "lo": 0.0, "hi": 25.0, "protected": True}
    ]


# ----- the large-table heuristic on the same cases ---------------------------------------------
def test_heuristic_hypercubes_match_the_optima_of_s04_and_s06() -> None:
    s04 = TableModel.from_dimensions(
        [["T", "A", "A1", "A2", "B"], ["T", "X", "Y"]],
        [{"T": ["A", "B"], "A": ["A1", "A2"]}, {"T": ["X", "Y"]}],
    )
    values = s04.complete([[3, 40], [25, 30], [50, 60]])
    result = protect_heuristic(s04, values, [s04.cell("A1", "X")], 1, 1)
    assert result.method == "heuristic" and result.status == Status.PASS
    assert names(s04, result.suppressed) == {"A1/X", "A1/Y", "A2/X", "A2/Y"}
    s05 = TableModel.with_totals([["a", "b"]] * 3)
    values = s05.complete([[[4, 30], [20, 25]], [[15, 35], [40, 45]]])
    result = protect_heuristic(s05, values, [s05.cell("a", "a", "a")], 1, 1)
    assert names(s05, result.suppressed) == {"/".join(c) for c in itertools.product("ab", repeat=3)}


def test_heuristic_repairs_what_hypercubes_miss() -> None:
    # S02: the cheapest rectangle leaves R1/C1 12 units of upward room, short of 30.
    model = grid(R3, C3)
    values = model.complete([[460, 25, 300], [12, 200, 180], [150, 220, 90]])
    r1c1 = model.cell("R1", "C1")
    result = protect_heuristic(model, values, [r1c1], 30, 30)
    assert result.status == Status.PASS and result.cost >= 540
    lo, hi = result.audit.interval(r1c1)
    assert hi >= 490 and lo <= 430
    # A primary on a row total has no hypercube; the repair loop still protects it.
    total = model.cell("R2", "T")
    result = protect_heuristic(model, values, [total], 5, 5)
    assert result.status == Status.PASS and result.protected.all()


def test_heuristic_singleton_aware() -> None:
    model, values, c12, c14, levels = s07()
    result = protect_heuristic(model, values, [c12, c14], levels, levels, singletons=[c12])
    assert result.status == Status.PASS and result.protected.all()
    aware = audit(model, values, result.suppressed, known=[c12])
    assert aware.protected([c14], levels, levels)[0]
    assert result.cost >= 102


def test_protect_uses_the_heuristic_above_the_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    model = grid(R3, C3)
    values = model.complete([[20, 50, 10], [8, 19, 22], [17, 32, 4]])
    primary = [model.cell("R2", "C1"), model.cell("R3", "C3")]
    assert protect(model, values, primary, 1, 1).method == "exact"
    monkeypatch.setattr(heuristic, "EXACT_MAX_CELLS", 10)
    assert protect(model, values, primary, 1, 1).method == "heuristic"
