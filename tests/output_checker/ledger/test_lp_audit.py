"""The LP audit of hidden cells across releases, by attempting the attacks of issue 11."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from output_checker.errors import InputError
from output_checker.ledger import (
    Kind,
    attacker_interval,
    components,
    lp_findings,
    merge_atoms,
    stack,
)

from .helpers import clients, table


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
    frame = frame._append(frame.iloc[[0]].assign(age=11), ignore_index=True)
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
