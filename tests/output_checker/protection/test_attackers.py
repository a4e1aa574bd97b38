"""Attackers beyond one cell (spec §10.5): the sum of two small primaries in one relation
(tau-Argus's pair check), and a contributor who alone makes up several cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from output_checker import Parameters, check_table
from output_checker.errors import InputError
from output_checker.protect import model_of
from output_checker.protection import (
    TableModel,
    audit,
    pair_sums,
    protect_exact,
    protect_heuristic,
)
from output_checker.protection.audit import AttackerLP, apriori_bounds, owner_scenarios
from output_checker.status import Status

R3, C3 = ["R1", "R2", "R3"], ["C1", "C2", "C3"]


def two_small_cells_in_a_row() -> tuple[TableModel, np.ndarray, list[int]]:
    model = TableModel.with_totals([R3, C3])
    values = model.complete([[3, 4, 50], [20, 30, 40], [25, 35, 45]])
    return model, values, [model.cell("R1", "C1"), model.cell("R1", "C2")]


def attack_sum(model: TableModel, values: np.ndarray, suppressed: np.ndarray, cells: list[int]):
    """The attacker's interval for the sum of ``cells`` given the published table."""
    lo, hi = apriori_bounds(values, None, None)
    lp = AttackerLP(model, values, suppressed, lo, hi)
    group = np.array(cells)
    low, high = lp.solve_sums([group, group], np.array([False, True]))
    return low.value, high.value


def test_pairs_are_primaries_sharing_a_relation_with_few_contributors() -> None:
    model, values, primary = two_small_cells_in_a_row()
    r3c3 = model.cell("R3", "C3")
    found = pair_sums(model, [*primary, r3c3], values, 10, 1.0)
    assert found == [(tuple(sorted(primary)), 1.0)]  # R3/C3 shares no relation with them
    assert pair_sums(model, primary, values, 7, 1.0) == []  # 3 + 4 contributors is not < 7
    levels = np.zeros(model.n_cells)
    levels[primary] = [2.0, 5.0]
    assert pair_sums(model, primary, values, 10, levels)[0][1] == 5.0


@pytest.mark.parametrize("method", [protect_exact, protect_heuristic])
def test_without_the_pair_check_the_sum_is_disclosed_and_with_it_it_is_not(method) -> None:
    model, values, primary = two_small_cells_in_a_row()
    plain = method(model, values, primary, 1, 1)
    assert plain.status == Status.PASS and plain.protected.all()
    # The attack: each cell has its interval, but row R1 gives their sum away (7 < 10).
    assert attack_sum(model, values, plain.suppressed, primary) == pytest.approx((7, 7))

    sums = pair_sums(model, primary, values, 10, 1.0)
    guarded = method(model, values, primary, 1, 1, sums=sums)
    assert guarded.status == Status.PASS and guarded.protected.all()
    lo, hi = attack_sum(model, values, guarded.suppressed, primary)
    assert lo <= 6 and hi >= 8
    (shipped,) = guarded.sums
    assert shipped.protected and (shipped.lo, shipped.hi) == pytest.approx((lo, hi))
    assert guarded.to_dict()["sums"][0]["cells"] == sorted(primary)
    assert guarded.cost > plain.cost


def test_a_sum_that_no_pattern_can_protect_fails_with_its_name() -> None:
    model, values, primary = two_small_cells_in_a_row()
    grand = float(values.max())
    result = protect_exact(model, values, primary, 1, 1, sums=[(primary, 2 * grand)])
    assert result.status == Status.FAIL and "the sum of ('R1', 'C1') and ('R1', 'C2')" in (
        result.reason
    )


@pytest.mark.parametrize(
    ("sums", "message"),
    [
        ([([0], 1.0)], "at least two cells"),
        ([([0, 2], 1.0)], "must be a primary"),
        ([([0, 1], 0.0)], "must be positive"),
    ],
)
def test_bad_groups_are_refused(sums, message) -> None:
    model, values, primary = two_small_cells_in_a_row()
    assert primary == [0, 1]  # R1/C1 and R1/C2; cell 2 is R1/C3
    with pytest.raises(InputError, match=message):
        protect_exact(model, values, primary, 1, 1, sums=sums)


def test_check_table_protects_pair_sums_by_default() -> None:
    counts = {("r1", "c1"): 3, ("r1", "c2"): 4, ("r1", "c3"): 50}
    rows = [
        (r, c)
        for r in ("r1", "r2", "r3")
        for c in ("c1", "c2", "c3")
        for _ in range(counts.get((r, c), 30))
    ]
    cohort = pd.DataFrame(rows, columns=["cat_a", "cat_b"])
    for pair_audit, disclosed in ((False, True), (True, False)):
        result = check_table(
            cohort, "cat_a", "cat_b", margins=True, protect=True,
            parameters=Parameters(pair_audit=pair_audit),
        )  # fmt: skip
        assert result.status == Status.PASS
        model = model_of(result.table)
        values = result.table.value[result.shown]
        small = list(np.flatnonzero(result.primary))
        assert len(small) == 2
        lo, hi = attack_sum(model, values, result.suppressed, small)
        assert (hi - lo < 0.5) is disclosed


# ----- sole contributors of several cells (§10.5) ---------------------------------------------
def test_a_contributor_alone_in_two_cells_is_one_attacker_knowing_both() -> None:
    model = TableModel.with_totals([R3, C3])
    owner = np.full(model.n_cells, -1)
    owner[[model.cell("R1", "C2"), model.cell("R1", "C3")]] = 7  # one entity, both cells
    owner[model.cell("R3", "C3")] = 8
    p = model.cell("R1", "C1")
    found = owner_scenarios(model, [p], owner)
    assert (p, (model.cell("R1", "C2"), model.cell("R1", "C3"))) in found
    assert found == [(p, (model.cell("R1", "C2"), model.cell("R1", "C3")))]  # R3/C3: no relation
    assert all(p not in known for _, known in found)


def test_knowing_two_cells_at_once_can_disclose_what_each_alone_cannot() -> None:
    """The attack the joint scenario defends against: a whole row suppressed, where one
    entity alone makes up two of its three cells."""
    model = TableModel.with_totals([R3, C3])
    values = model.complete([[3, 1, 1], [20, 30, 40], [25, 35, 45]])
    row = [model.cell("R1", c) for c in C3]
    below = [model.cell("R2", c) for c in C3]
    pattern = np.zeros(model.n_cells, dtype=bool)
    pattern[row + below] = True
    p, c2, c3 = row
    for known in ([c2], [c3]):
        alone = audit(model, values, pattern, known=known, targets=[p])
        lo, hi = alone.interval(p)
        assert hi - lo >= 2
    both = audit(model, values, pattern, known=[c2, c3], targets=[p])
    assert both.interval(p) == pytest.approx((3, 3))


def test_check_table_defends_against_a_contributor_of_several_cells() -> None:
    # Entity "e" alone makes up R1/C2 and R1/C3; R1/C1 has three people: all three are unsafe.
    rows = [("R1", "C1", f"p{i}") for i in range(3)]
    rows += [("R1", "C2", "e"), ("R1", "C3", "e")]
    rows += [(r, c, f"{r}{c}{i}") for r in ("R2", "R3") for c in C3 for i in range(25)]
    cohort = pd.DataFrame(rows, columns=["cat_a", "cat_b", "person"])
    result = check_table(
        cohort, "cat_a", "cat_b", entity="person", margins=True, protect=True,
        parameters=Parameters(singleton_audit=True),
    )  # fmt: skip
    protection = result.protection
    assert protection is not None and protection.result is not None
    model = model_of(result.table)
    values = result.table.value[result.shown]
    e_cells = {model.cell(0, 1), model.cell(0, 2)}  # R1/C2, R1/C3 in the shown grid
    joint = [s for s in protection.result.scenarios if set(s.known) == e_cells]
    assert joint and all(s.protected for s in protection.result.scenarios)
    p = model.cell(0, 0)
    if result.suppressed[list(e_cells)].all():
        attack = audit(model, values, result.suppressed, known=sorted(e_cells), targets=[p])
        lo, hi = attack.interval(p)
        assert hi - lo >= 2  # the entity cannot pin R1/C1 down
