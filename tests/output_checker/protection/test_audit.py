"""Table model and LP audit: the worked cases S00, S01, S02, S03, S05 and S07 of spec §13.2."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from output_checker.errors import InputError
from output_checker.protection import TableModel, audit, singleton_scenarios
from output_checker.protection.audit import AttackerLP, apriori_bounds


def grid(rows: int, cols: int) -> TableModel:
    return TableModel.with_totals(
        [[f"R{r + 1}" for r in range(rows)], [f"C{c + 1}" for c in range(cols)]]
    )


def cells(model: TableModel, *names: str) -> list[int]:
    return [model.cell(*name.split("/")) for name in names]


# ----- table model -----------------------------------------------------------------------------
def test_flat_constraints_are_row_and_column_sums() -> None:
    model = TableModel.with_totals([2, 3])
    m = model.constraints().toarray()
    assert model.shape == (3, 4) and m.shape == (4 + 3, 12)
    values = np.arange(12.0).reshape(3, 4)
    values[:2, 3] = values[:2, :3].sum(axis=1)
    values[2] = values[:2].sum(axis=0)
    assert np.allclose(m @ values.ravel(), 0.0)
    assert (np.abs(m).sum(axis=1) == [3, 3, 3, 3, 4, 4, 4]).all()
    assert model.is_total.reshape(3, 4)[:, 3].all() and model.is_total.reshape(3, 4)[2].all()
    assert model.is_total.sum() == 6


def test_hierarchical_and_three_dimensional_sizes() -> None:
    s04 = TableModel.from_dimensions(
        [["T", "A", "A1", "A2", "B"], ["T", "X", "Y"]],
        [{"T": ["A", "B"], "A": ["A1", "A2"]}, {"T": ["X", "Y"]}],
    )
    assert s04.constraints().shape == (11, 15)
    full = s04.complete([[3, 40], [25, 30], [50, 60]])
    expected = {
        "A1/T": 43,
        "A2/T": 55,
        "A/X": 28,
        "A/Y": 70,
        "A/T": 98,
        "B/T": 110,
        "T/X": 78,
        "T/Y": 130,
        "T/T": 208,
    }
    assert {k: full[s04.cell(*k.split("/"))] for k in expected} == expected
    s05 = TableModel.with_totals([["a", "b"]] * 3)
    assert s05.constraints().shape == (27, 27)
    assert s05.complete(np.arange(8).reshape(2, 2, 2))[s05.cell("T", "T", "T")] == 28


def test_non_additive_input_names_the_relation() -> None:
    model = grid(2, 2)
    values = model.complete([[1, 2], [3, 4]])
    model.check_additive(values)
    values[model.cell("R2", "T")] += 1  # breaks row R2 and the column of row totals
    with pytest.raises(InputError, match=r"not additive: dimension 0, 'T' = .* at \('T',\)$"):
        model.check_additive(values)
    with pytest.raises(InputError, match="not additive"):
        audit(model, values, cells(model, "R1/C1", "R1/C2"))


def test_model_round_trips_through_json() -> None:
    model = TableModel.from_dimensions(
        [["T", "A", "A1", "A2", "B"], [0, 1, "T"]],
        [{"T": ["A", "B"], "A": ["A1", "A2"]}, {"T": [0, 1]}],
    )
    again = TableModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model
    assert (again.constraints() != model.constraints()).nnz == 0
    with pytest.raises(InputError, match="not a string or an integer"):
        TableModel.with_totals([[1.5, 2.5]]).to_dict()
    with pytest.raises(InputError, match="malformed"):
        TableModel.from_dict({"codes": [["a"]]})


@pytest.mark.parametrize(
    ("dims", "hierarchies", "message"),
    [
        ([["T", "a", "a"]], [{"T": ["a"]}], "lists a code twice"),
        ([["T", "a"]], [{"T": ["b"]}], "child 'b' is not one of its codes"),
        ([["T", "a"]], [{"U": ["a"]}], "parent 'U' is not one of its codes"),
        ([["T", "a"]], [{"T": []}], "has no children"),
        ([["T", "a"]], [{"T": ["a"], "a": ["T"]}], "its own ancestor"),
        ([["T", "a"]], [], "1 dimensions but 0 hierarchies"),
        ([], [], "at least one dimension"),
    ],
)
def test_bad_models_are_rejected(
    dims: list[list[str]], hierarchies: list[dict[str, list[str]]], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        TableModel.from_dimensions(dims, hierarchies)


def test_cell_lookup_and_value_shape_errors() -> None:
    model = grid(2, 2)
    assert model.labels(model.cell("R2", "C1")) == ("R2", "C1")
    with pytest.raises(InputError, match="unknown code 'R9'"):
        model.cell("R9", "C1")
    with pytest.raises(InputError, match="9 cells but 4 values"):
        model.check_additive([1, 2, 3, 4])
    with pytest.raises(InputError, match="missing or infinite"):
        model.check_additive(np.full(9, np.nan))


# ----- audit: worked cases ---------------------------------------------------------------------
def test_s00_handbook_example() -> None:
    model = grid(3, 2)
    values = model.complete([[4, 3], [2, 1], [3, 3]])
    result = audit(model, values, cells(model, "R1/C1", "R1/C2", "R2/C1", "R2/C2"))
    assert result.interval(model.cell("R1", "C1")) == pytest.approx((3, 6))


def test_s00_interval_matches_brute_force_attack() -> None:
    """The attacker tries every integer table consistent with what is published."""
    model = grid(3, 2)
    values = model.complete([[4, 3], [2, 1], [3, 3]])
    hidden = cells(model, "R1/C1", "R1/C2", "R2/C1", "R2/C2")
    guesses = np.array(list(itertools.product(range(17), repeat=4)), dtype=np.float64)
    tables = np.tile(values, (guesses.shape[0], 1))
    tables[:, hidden] = guesses
    consistent = np.abs(tables @ model.constraints().T.toarray()).max(axis=1) == 0
    feasible = guesses[consistent, 0]
    lo, hi = audit(model, values, hidden).interval(hidden[0])
    assert (min(feasible), max(feasible)) == (lo, hi) == (3, 6)


def test_s01_intervals_and_protection() -> None:
    model = grid(3, 3)
    values = model.complete([[20, 50, 10], [8, 19, 22], [17, 32, 4]])
    pattern = cells(model, "R2/C1", "R2/C3", "R3/C1", "R3/C3")
    result = audit(model, values, pattern)
    expected = {"R2/C1": (4, 25), "R2/C3": (5, 26), "R3/C1": (0, 21), "R3/C3": (0, 21)}
    for name, interval in expected.items():
        assert result.interval(cells(model, name)[0]) == pytest.approx(interval)
    primaries = cells(model, "R2/C1", "R3/C3")
    assert result.protected(primaries, 1, 1).all()
    assert not result.protected(primaries, 1, 5).all()  # R3/C3 = 4 cannot go down by 5
    assert not result.protected(cells(model, "R1/C3"), 1, 1)[0]  # published: not protected


def test_s02_rectangle_fails_upward_and_s03_passes() -> None:
    model = grid(3, 3)
    values = model.complete([[460, 25, 300], [12, 200, 180], [150, 220, 90]])
    r1c1 = model.cell("R1", "C1")
    s02 = audit(model, values, cells(model, "R1/C1", "R1/C2", "R2/C1", "R2/C2"))
    assert s02.interval(r1c1) == pytest.approx((260, 472))
    assert not s02.protected([r1c1], 30, 30)[0]  # upward room 12 < 30
    assert s02.protected([r1c1], 12, 30)[0]
    s03 = audit(model, values, cells(model, "R1/C1", "R1/C3", "R3/C1", "R3/C3"))
    expected = {"R1/C1": (370, 610), "R1/C3": (150, 390), "R3/C1": (0, 240), "R3/C3": (0, 240)}
    for name, interval in expected.items():
        assert s03.interval(cells(model, name)[0]) == pytest.approx(interval)
    assert s03.protected([r1c1], 30, 30)[0]
    assert not s03.protected([r1c1], 30, 30, spl=250)[0]  # width 240 < sliding level


def test_s05_rectangle_in_one_layer_is_exact_disclosure() -> None:
    model = TableModel.with_totals([["a", "b"]] * 3)
    values = model.complete([[[4, 30], [20, 25]], [[15, 35], [40, 45]]])
    rect = [model.cell(*c) for c in ("aaa", "aba", "baa", "bba")]
    result = audit(model, values, rect)
    assert result.interval(rect[0]) == pytest.approx((4, 4))
    assert result.exact.all()
    assert not result.protected(rect[:1], 1, 1)[0]
    assert not result.protected(rect[:1], 0, 0)[0]  # exact disclosure fails whatever the levels
    cube = [model.cell(*c) for c in itertools.product("ab", repeat=3)]
    assert audit(model, values, cube).interval(cube[0]) == pytest.approx((0, 19))


def test_s07_singleton_breaks_the_standard_audit() -> None:
    model = TableModel.with_totals([["A", "B"], ["X1", "X2", "X3", "X4"]])
    values = model.complete([[52, 15, 62, 17], [24, 18, 31, 8]])
    c12, c14 = cells(model, "A/X2", "A/X4")
    rect = [c12, c14, *cells(model, "B/X2", "B/X4")]
    assert audit(model, values, rect).interval(c14) == pytest.approx((0, 25))
    aware = audit(model, values, rect, known=[c12])
    assert aware.interval(c14) == pytest.approx((17, 17))
    assert c12 not in aware.cells and list(aware.known) == [c12]
    assert not aware.protected([c14], 1.7, 1.7)[0]
    assert singleton_scenarios(model, [c12, c14], [c12]) == [(c14, (c12,))]


# ----- audit: bounds, input checks, LP details -------------------------------------------------
def test_intervals_respect_given_apriori_bounds() -> None:
    model = grid(3, 3)
    values = model.complete([[20, 50, 10], [8, 19, 22], [17, 32, 4]])
    pattern = cells(model, "R2/C1", "R2/C3", "R3/C1", "R3/C3")
    result = audit(model, values, pattern, lower=values * 0.5, upper=values * 1.5)
    # R3/C3 = R2/C1 − 4 must stay within [2, 6], tighter than R2/C1's own [4, 12].
    assert result.interval(pattern[0]) == pytest.approx((6, 10))


def test_negative_values_need_bounds() -> None:
    model = grid(2, 2)
    values = model.complete([[-3, 5], [4, 6]])
    pattern = cells(model, "R1/C1", "R1/C2", "R2/C1", "R2/C2")
    with pytest.raises(InputError, match="negative values"):
        audit(model, values, pattern)
    result = audit(model, values, pattern, lower=-20, upper=20)
    lo, hi = result.interval(pattern[0])
    assert lo <= -3 <= hi and lo < hi
    with pytest.raises(InputError, match="outside its a-priori bounds"):
        apriori_bounds(values, 0, 20)


def test_bad_masks_are_rejected() -> None:
    model = grid(2, 2)
    values = model.complete([[1, 2], [3, 4]])
    with pytest.raises(InputError, match="a mask of 3 cells"):
        audit(model, values, np.ones(3, dtype=bool))
    with pytest.raises(InputError, match="out of range"):
        audit(model, values, [0, 99])
    with pytest.raises(InputError, match="integer cell indices"):
        audit(model, values, [0.5])


def test_reduced_costs_match_highs_marginals_on_the_full_lp() -> None:
    """The cut coefficients come from Mᵀπ; on the LP over all cells (published ones fixed by
    their bounds) they must equal HiGHS's lower + upper marginals."""
    from scipy.optimize import linprog

    model = grid(3, 3)
    values = model.complete([[460, 25, 300], [12, 200, 180], [150, 220, 90]])
    pattern = np.zeros(model.n_cells, dtype=bool)
    pattern[cells(model, "R1/C1", "R1/C2", "R2/C1", "R2/C2")] = True
    lower, upper = np.where(pattern, 0.0, values), np.where(pattern, values.max(), values)
    lp = AttackerLP(model, values, pattern, lower, upper)
    target = model.cell("R1", "C1")
    bound = lp.solve(target, maximise=True)
    m = model.constraints()
    c = np.zeros(model.n_cells)
    c[target] = -1.0
    full = linprog(
        c, A_eq=m, b_eq=np.zeros(m.shape[0]), bounds=np.column_stack([lower, upper]), method="highs"
    )
    assert -full.fun == pytest.approx(bound.value) == pytest.approx(472)
    # Sign convention: for the maximum, r = e_i + Mᵀπ = −(lower + upper marginals).
    r_full = m.T @ full.eqlin.marginals
    r_full[target] += 1.0
    assert np.allclose(r_full, -(full.lower.marginals + full.upper.marginals))
    # The duals of the reduced LP give a weak-duality bound that is tight at this pattern.
    r = m.T @ bound.duals
    r[target] += 1.0
    room = r.clip(0) @ (upper - values) + (-r).clip(0) @ (values - lower)
    assert values[target] + room == pytest.approx(472)


def test_to_dict_is_json() -> None:
    model = grid(3, 2)
    values = model.complete([[4, 3], [2, 1], [3, 3]])
    record = audit(model, values, cells(model, "R1/C1", "R1/C2", "R2/C1", "R2/C2")).to_dict(model)
    again = json.loads(json.dumps(record))
    assert again["intervals"][0] == {"cell": 0, "codes": ["R1", "C1"], "lo": 3.0, "hi": 6.0}
