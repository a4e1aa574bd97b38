"""The LP audit of hidden cells across releases, by attempting the attacks of issue 11."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from output_checker.columns import ALL
from output_checker.errors import InputError
from output_checker.ledger import (
    Kind,
    LPFinding,
    attacker_interval,
    components,
    index_rows,
    lp_findings,
    merge_atoms,
    stack,
)
from output_checker.ledger.lp_audit import (
    ComponentLPs,
    _collided,
    _differences,
    _LargeRows,
    _local_point,
    _peels_off,
    _RowBox,
)

from .helpers import RANDOM_BOUNDS, clients, exact_interval, random_history, table


def _ages() -> list[int]:
    """30 clients aged 10–15, one aged 16 and two aged 17."""
    return [10 + i % 6 for i in range(30)] + [16, 17, 17]


def _hidden(new_key_rows: list[tuple[object, ...]], keys: set[tuple[object, ...]]) -> list[int]:
    return [i for i, key in enumerate(new_key_rows) if key in keys]


def test_cell_recovered_by_subtraction_across_releases_is_flagged_exactly() -> None:
    frame = clients(_ages())
    n = len(frame)
    earlier = stack(
        [
            table("all-clients", frame, ["everyone"], n_entities=n),
            table("all-income", frame, ["everyone"], n_entities=n, values="income"),
        ]
    )
    new = stack(
        [
            table("by-age", frame, ["age"], n_entities=n),
            table("income-by-age", frame, ["age"], n_entities=n, values="income"),
        ]
    )
    keys = [new.ref(r).key for r in range(new.n_rows)]
    hidden = _hidden(keys, {(16,)})  # the count and the income of the lone 16-year-old
    assert len(hidden) == 2
    findings = lp_findings(earlier, new, hidden, upl=1.0, lpl=1.0)
    by_kind = {f.cell.quantity.kind: f for f in findings}
    assert set(by_kind) == {Kind.COUNT, Kind.SUM}
    income_16 = float(frame.loc[frame.age == 16, "income"].sum())
    assert by_kind[Kind.COUNT].lo == pytest.approx(1.0)
    assert by_kind[Kind.COUNT].hi == pytest.approx(1.0)
    assert by_kind[Kind.SUM].lo == pytest.approx(income_16)
    assert by_kind[Kind.SUM].hi == pytest.approx(income_16)
    assert by_kind[Kind.COUNT].earlier_outputs == ("all-clients",)
    assert by_kind[Kind.SUM].earlier_outputs == ("all-income",)
    # without the earlier total the same suppression holds: the risk is across releases
    alone = lp_findings(None, new, hidden, upl=1.0, lpl=1.0)
    assert alone == ()


def test_secondary_suppression_protects_the_cell() -> None:
    frame = clients(_ages())
    n = len(frame)
    earlier = table("all-clients", frame, ["everyone"], n_entities=n)
    new = table("by-age", frame, ["age"], n_entities=n)
    keys = [new.ref(r).key for r in range(new.n_rows)]
    primary_only = _hidden(keys, {(16,)})
    with_secondary = _hidden(keys, {(16,), (17,)})
    assert lp_findings(earlier, new, primary_only, upl=1.0, lpl=1.0) != ()
    assert lp_findings(earlier, new, with_secondary, upl=1.0, lpl=1.0) == ()
    # a protection level wider than the pair's joint total (3) is still a finding
    wide = lp_findings(earlier, new, with_secondary, upl=4.0, lpl=0.0)
    assert {f.cell.key for f in wide} == {(16,), (17,)}
    assert all((f.lo, f.hi) == pytest.approx((0.0, 3.0)) for f in wide)


def test_chain_of_rows_pins_a_cell_beyond_one_hop() -> None:
    # t = {0}; published {0,1}, {1,2}, {2}: x2, then x1, then x0 follow
    pattern = sparse.csr_matrix(
        np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=np.float64)
    )
    values = np.array([2.0, 5.0, 7.0, 4.0])
    published = np.array([False, True, True, True])
    lower, upper = np.zeros(3), np.full(3, 10.0)
    labels = components(pattern, published)
    found = attacker_interval(pattern, values, published, 0, lower, upper, labels)
    assert (found.lo, found.hi) == pytest.approx((2.0, 2.0))
    assert sorted(found.binding.tolist()) == [1, 2, 3]
    # dropping {2} (what a one-hop reduction does) frees the cell
    published[3] = False
    loose = attacker_interval(pattern, values, published, 0, lower, upper, labels=None)
    assert loose.hi - loose.lo > 1.0


def test_reduced_lp_matches_the_full_lp_on_random_instances() -> None:
    # reduced = entities merged into atoms, then only the target's components
    rng = np.random.default_rng(11)
    compared = merged = 0
    for _ in range(60):
        n_rows, n_entities = int(rng.integers(2, 9)), int(rng.integers(2, 10))
        dense = (rng.random((n_rows, n_entities)) < 0.3).astype(np.float64)
        pattern = sparse.csr_matrix(dense)
        truth = rng.integers(0, 6, n_entities).astype(np.float64)
        values = dense @ truth
        published = rng.random(n_rows) < 0.6
        # per-entity bounds around the truth, unbounded above in some instances (the count
        # default), so that merged entities carry unequal bounds
        lower = truth - rng.integers(0, 3, n_entities)
        upper = truth + rng.integers(0, 3, n_entities)
        if rng.random() < 0.3:
            upper = np.full(n_entities, np.inf)
        atoms, atom_lower, atom_upper = merge_atoms(pattern, lower, upper)
        merged += atoms.shape[1] < n_entities
        labels = components(atoms, published)
        for target in np.flatnonzero(~published).tolist():
            reduced = attacker_interval(
                atoms, values, published, target, atom_lower, atom_upper, labels
            )
            full = attacker_interval(pattern, values, published, target, lower, upper)
            assert (reduced.lo, reduced.hi) == pytest.approx((full.lo, full.hi), abs=1e-7)
            assert reduced.lo - 1e-7 <= values[target] <= reduced.hi + 1e-7
            compared += 1
    assert compared > 50
    assert merged > 10  # the atom merge was exercised, not only the component cut


def test_entity_with_different_totals_in_one_sum_is_refused() -> None:
    frame = clients([10, 11, 12])
    frame = pd.concat([frame, frame.iloc[[0]].assign(age=11)], ignore_index=True)
    n = 3
    new = table("income-by-age", frame, ["age"], n_entities=n, margins=True, values="income")
    with pytest.raises(InputError, match="one value per entity"):
        lp_findings(None, new, [0], upl=1.0, lpl=1.0)


def test_bad_inputs_are_refused_with_one_line_errors() -> None:
    frame = clients([10, 11, 12])
    new = table("income-by-age", frame, ["age"], n_entities=3, values="income")
    with pytest.raises(InputError, match="hidden"):
        lp_findings(None, new, [7], upl=1.0, lpl=1.0)
    quantity = new.quantities[0]
    with pytest.raises(InputError, match="exceeds"):
        lp_findings(None, new, [0], upl=1.0, lpl=1.0, bounds={quantity: (5.0, 1.0)})
    frame["income"] = -frame["income"]
    negative = table("loss-by-age", frame, ["age"], n_entities=3, values="income")
    with pytest.raises(InputError, match="negative"):
        lp_findings(None, negative, [0], upl=1.0, lpl=1.0)
    # with bounds given, the negative sum is audited: alone in its table, the cell is free
    assert lp_findings(None, negative, [0], upl=1.0, lpl=1.0, bounds={quantity: (-5e3, 0.0)}) == ()


def test_lp_findings_match_linprog_on_random_rounded_instances() -> None:
    rng = np.random.default_rng(5)
    compared = pinned = ranged = 0
    for instance in range(25):
        released, new, hidden = random_history(rng, int(rng.integers(4, 12)), 3)
        hidden[int(rng.integers(new.n_rows))] = True
        # some rows published rounded: shown anywhere in [truth - slack, truth + slack]
        ledger = stack([released, new])
        truth = np.asarray(ledger.weights.sum(axis=1)).ravel()
        slack = np.where(rng.random(ledger.n_rows) < 0.3, rng.integers(1, 4, ledger.n_rows), 0.0)
        shown = truth + slack * rng.uniform(-1, 1, ledger.n_rows)
        # protection levels nobody meets, so every hidden cell is reported with its interval
        findings = lp_findings(
            index_rows(released) if instance % 2 else released,  # indexed once per release
            new,
            hidden,
            upl=1e9,
            lpl=1e9,
            bounds=RANDOM_BOUNDS,
            released_slack=slack[: released.n_rows],
            new_slack=slack[released.n_rows :],
            released_shown=shown[: released.n_rows],
            new_shown=shown[released.n_rows :],
        )
        found = {f.cell: (f.lo, f.hi) for f in findings}
        assert len(found) == int(hidden.sum())
        published = np.ones(ledger.n_rows, dtype=bool)
        published[released.n_rows :] = ~hidden
        for t in np.flatnonzero(hidden).tolist():
            row = released.n_rows + t
            expected = exact_interval(ledger, published, shown - slack, shown + slack, row)
            if ledger.weights[row].nnz == 0:
                expected = (0.0, 0.0)
            assert found[ledger.ref(row)] == pytest.approx(expected, abs=1e-6)
            compared += 1
            pinned += expected[1] - expected[0] < 1e-6
        ranged += int((slack > 0).sum())
    assert compared > 100
    assert pinned > 5 and ranged > 50  # both pinned cells and interval rows were exercised


def test_rounding_the_released_total_to_base_10_unpins_the_cell() -> None:
    frame = clients(_ages())
    n = len(frame)
    earlier = table("all-clients", frame, ["everyone"], n_entities=n)
    new = table("by-age", frame, ["age"], n_entities=n)
    keys = [new.ref(r).key for r in range(new.n_rows)]
    hidden = _hidden(keys, {(16,)})
    (exact,) = lp_findings(earlier, new, hidden, upl=1.0, lpl=1.0)
    assert (exact.lo, exact.hi) == pytest.approx((1.0, 1.0))

    # 33 published as 30 (base 10, to the nearest): the truth lies in 25..34
    def audit(upl: float, lpl: float) -> tuple[LPFinding, ...]:
        return lp_findings(earlier, new, hidden, upl, lpl, released_shown=29.5, released_slack=4.5)

    assert audit(1.0, 1.0) == ()
    # the attacker's interval is now 25 - 32 .. 34 - 32, cut at 0 below
    (wide,) = audit(9.0, 0.0)
    assert (wide.lo, wide.hi) == pytest.approx((0.0, 2.0))
    # rounding the new table's other cells frees it too, with the total exact
    shown = new.weights.sum(axis=1).A.ravel()
    assert lp_findings(earlier, new, hidden, upl=1.0, lpl=1.0, new_slack=2.0, new_shown=shown) == ()


def test_a_rounded_value_that_excludes_the_truth_is_refused() -> None:
    frame = clients(_ages())
    n = len(frame)
    earlier = table("all-clients", frame, ["everyone"], n_entities=n)
    new = table("by-age", frame, ["age"], n_entities=n)
    with pytest.raises(InputError, match="true value"):
        lp_findings(earlier, new, [0], upl=1.0, lpl=1.0, released_shown=40.0, released_slack=5.0)
    with pytest.raises(InputError, match="slack"):
        lp_findings(earlier, new, [0], upl=1.0, lpl=1.0, new_slack=-1.0)
    with pytest.raises(InputError, match="released_slack"):
        lp_findings(earlier, new, [0], upl=1.0, lpl=1.0, released_slack=[1.0, 2.0])


def test_cells_left_when_time_runs_out_are_findings() -> None:
    frame = clients(_ages())
    n = len(frame)
    earlier = table("all-clients", frame, ["everyone"], n_entities=n)
    new = table("by-age", frame, ["age"], n_entities=n)
    keys = [new.ref(r).key for r in range(new.n_rows)]
    hidden = _hidden(keys, {(16,), (17,)})
    assert lp_findings(earlier, new, hidden, upl=1.0, lpl=1.0, time_limit=60.0) == ()
    late = lp_findings(earlier, new, hidden, upl=1.0, lpl=1.0, time_limit=0.0)
    assert {f.cell.key for f in late} == {(16,), (17,)}
    assert all(np.isnan(f.lo) and np.isnan(f.hi) for f in late)
    with pytest.raises(InputError, match="time limit"):
        lp_findings(earlier, new, hidden, upl=1.0, lpl=1.0, time_limit=-1.0)


def test_a_cell_pinned_by_small_rows_skips_its_large_component() -> None:
    # a chain of two-entity rows ties 300 entities into one component; the target {0} is
    # pinned by the published {0} alone, so only its local LP is solved
    n = 300
    dense = np.zeros((n + 1, n))
    dense[[0, 1], 0] = 1.0  # the hidden target {0} and a published twin
    links = np.arange(n - 1)
    dense[links + 2, links] = dense[links + 2, links + 1] = 1.0
    pattern = sparse.csr_matrix(dense)
    values = pattern @ np.full(n, 2.0)
    published = np.ones(n + 1, dtype=bool)
    published[0] = False
    labels = components(pattern, published)
    assert labels.max() == 0  # one component of every entity
    lps = ComponentLPs(pattern, published, values, values, np.zeros(n), np.full(n, 9.0), labels)
    found = lps.interval(0)
    assert (found.lo, found.hi) == pytest.approx((2.0, 2.0))
    assert found.binding.tolist() == [1]
    assert lps._models == {}  # the component's model was never built
    # without the pinning row, the component LP answers: x0 ranges over [0, 4]
    published[1] = False
    loose = ComponentLPs(pattern, published, values, values, np.zeros(n), np.full(n, 9.0))
    assert (loose.interval(0).lo, loose.interval(0).hi) == pytest.approx((0.0, 4.0))
    assert len(loose._models) == 1


def test_merge_atoms_would_notice_a_hash_collision() -> None:
    by_entity = sparse.csc_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=np.float64))
    by_entity.sort_indices()
    assert not _collided(by_entity, np.array([0, 1, 2]))
    assert _collided(by_entity, np.array([0, 0, 2]))  # columns 0 and 1 differ
    assert _collided(
        sparse.csc_matrix(np.eye(2)[:, [0, 0]] + np.eye(2)[:, [0, 1]]), np.zeros(2, int)
    )


def test_two_large_rows_that_differ_by_a_few_entities_enter_the_local_lp() -> None:
    """A margin released with entity 0 and re-released without it: too large to enter the
    local LP themselves, but their difference (entity 0 alone) does, and with the released
    twin cell {0..5} it pins the hidden cell {1..5} without the whole ledger's LP."""
    rows = [range(100), range(1, 100), range(6)]  # two margins (large), the twin cell
    pattern = sparse.csr_matrix(
        (np.ones(sum(map(len, rows))), np.concatenate([list(r) for r in rows]),
         np.cumsum([0, *map(len, rows)])),
        shape=(3, 100),
    )  # fmt: skip
    sizes = np.diff(pattern.indptr).astype(float)
    box = _RowBox(sizes, sizes, np.zeros(100), np.full(100, np.inf))
    target = np.arange(1, 6)
    small, large = np.asarray([2]), np.asarray([0, 1])
    alone = _local_point(pattern[small], small, box, target, 1e-9, np.inf)
    assert alone is None  # the twin alone leaves entity 0's share open
    big = _LargeRows.of(pattern[large], large)
    found = _local_point(pattern[small], small, box, target, 1e-9, np.inf, big)
    assert found is not None and (found.lo, found.hi) == pytest.approx((5.0, 5.0))
    assert set(found.binding.tolist()) == {0, 1, 2}  # both margins and the twin


def test_the_differences_of_large_rows_are_exactly_those_a_naive_pairing_finds() -> None:
    """Rows of equal and nearly equal sizes over random populations, with twins that differ
    by a few entities: the screen by size and bucket counts drops no pair within the cap."""
    rng = np.random.default_rng(11)
    n, cap = 3000, 20
    rows = [rng.choice(n, int(rng.integers(900, 1000)), replace=False) for _ in range(30)]
    for k in range(10):  # twins: a row with a few entities added or removed
        base = rows[k]
        changed = np.setdiff1d(base, base[: k + 1])
        rows.append(np.union1d(changed, rng.choice(n, 3 * (k % 3), replace=False)))
    pattern = sparse.csr_matrix(
        (np.ones(sum(r.size for r in rows)), np.concatenate(rows),
         np.cumsum([0, *(r.size for r in rows)])),
        shape=(len(rows), n),
    )  # fmt: skip
    pattern.sort_indices()
    derived, first, second = _differences(_LargeRows.of(pattern, np.arange(len(rows))), cap)
    sets = [set(r.tolist()) for r in rows]
    expected = {
        (i, j)
        for i in range(len(rows))
        for j in range(i + 1, len(rows))
        if 0 < len(sets[i] ^ sets[j]) <= cap
    }
    assert set(zip(first.tolist(), second.tolist(), strict=True)) == expected
    assert len(expected) >= 8  # the twins (the largest changes exceed the cap)
    for row, (i, j) in enumerate(zip(first.tolist(), second.tolist(), strict=True)):
        entries = dict(zip(derived[row].indices.tolist(), derived[row].data.tolist(), strict=True))
        assert entries == {e: 1.0 for e in sets[i] - sets[j]} | {e: -1.0 for e in sets[j] - sets[i]}


def test_peeling_frees_a_target_only_when_each_row_has_a_variable_of_its_own() -> None:
    """Target t = {0}. Rows {0,1}, {1,2}: 2 balances the second row alone, then 1 the first,
    so t can move and no LP is needed. Adding {2} pins t (t = r1 − r2 + r3): nothing peels.
    With 1 at a bound it cannot balance the first row either."""

    def rows(*sets: list[int]) -> sparse.csr_matrix:
        return sparse.csr_matrix(
            (np.ones(sum(map(len, sets))), np.concatenate(sets), np.cumsum([0, *map(len, sets)])),
            shape=(len(sets), 3),
        )

    target, inside = np.asarray([0]), np.ones(3, dtype=bool)
    assert _peels_off(rows([0, 1], [1, 2]), target, inside)
    assert not _peels_off(rows([0, 1], [1, 2], [2]), target, inside)
    assert not _peels_off(rows([0, 1], [1, 2]), target, np.asarray([True, False, True]))
    # and the LP agrees: the chain pins t, the shorter one leaves it free
    box = _RowBox(np.ones(3), np.ones(3), np.zeros(3), np.full(3, np.inf))
    pinned = _local_point(rows([0, 1], [1, 2], [2]), np.arange(3), box, target, 1e-9, np.inf)
    assert pinned is not None and (pinned.lo, pinned.hi) == pytest.approx((1.0, 1.0))
    assert _local_point(rows([0, 1], [1, 2]), np.arange(2), box, target, 1e-9, np.inf) is None


def test_a_protected_cell_is_shown_so_without_the_whole_ledgers_lp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four hidden inner cells of a table with margins protect each other (one person can
    move round the rectangle). Moving only the hidden cells' people, everyone else held at
    their true values, already shows it: no component LP is built."""
    frame = pd.DataFrame(
        {
            "id": np.arange(24),
            "region": ["east"] * 12 + ["west"] * 12,
            "sex": (["f"] * 6 + ["m"] * 6) * 2,
            "everyone": "all",
        }
    )
    n = len(frame)
    released = table("east-total", frame[frame.region == "east"], ["everyone"], n_entities=n)
    new = table("by-region-sex", frame, ["region"], ["sex"], n_entities=n, margins=True)
    inner = [r for r in range(new.n_rows) if ALL not in new.ref(r).key][:4]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the whole ledger's LP was built")

    monkeypatch.setattr(ComponentLPs, "__init__", refuse)
    assert lp_findings(released, new, inner, upl=1.0, lpl=1.0) == ()
