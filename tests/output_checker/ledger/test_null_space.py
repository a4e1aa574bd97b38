"""Proofs of protection along a change no published row sees, and the rows the others imply."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import sparse

from output_checker.columns import ALL
from output_checker.ledger import (
    COUNT,
    Aggregates,
    TableDefinition,
    index_rows,
    lp_audit,
    lp_findings,
    stack,
    table_aggregates,
)
from output_checker.ledger.lp_audit import ComponentLPs
from output_checker.ledger.null_space import NullSpace, implied_rows

from .helpers import linprog_interval

TWO_WAY = TableDefinition("t", ("a", "b"), ((0, 1, 2), (0, 1)), n_index=1, margins=True)


def test_margins_over_every_cell_are_implied_and_those_over_a_missing_cell_are_not() -> None:
    rng = np.random.default_rng(0)
    n = 60
    codes = [rng.integers(0, 3, n), rng.integers(0, 2, n)]
    counts = table_aggregates(TWO_WAY, np.arange(n), codes, n)
    sums = table_aggregates(TWO_WAY, np.arange(n), codes, n, rng.uniform(0, 10, n), "x")
    both = stack([counts, sums])
    margin = np.asarray([ALL in both.ref(r).key for r in range(both.n_rows)])
    assert (implied_rows(both) == margin).all()

    # the count of cell (0, 0) suppressed, so left out of the ledger: the count margins over
    # it now tell the attacker something the cells do not
    gone = next(r for r in range(both.n_rows) if both.ref(r) == counts.ref(0))
    assert both.ref(gone).key == (0, 0)
    kept = both.take(np.arange(both.n_rows) != gone)
    refs = [kept.ref(r) for r in range(kept.n_rows)]
    over_gone = [
        ref.quantity == COUNT and ALL in ref.key and all(k in (0, ALL) for k in ref.key)
        for ref in refs
    ]
    assert sum(over_gone) == 3  # its row margin, its column margin and the grand total
    expected = np.asarray([ALL in ref.key for ref in refs]) & ~np.asarray(over_gone)
    assert (implied_rows(kept) == expected).all()


def _space(rows: sparse.csr_matrix, room_down: np.ndarray, deadline: float = np.inf) -> NullSpace:
    def residual(change: np.ndarray) -> float:
        return float(np.abs(rows @ change).max())

    return NullSpace(rows, residual, np.full(rows.shape[1], np.inf), room_down, 1e-9, deadline)


def test_a_change_moves_the_target_by_one_and_no_published_row() -> None:
    rng = np.random.default_rng(1)
    rows = sparse.random(40, 200, density=0.05, random_state=2, format="csr")
    rows.data[:] = 1.0
    room_down = np.ones(200)
    fixed = rng.choice(200, 20, replace=False)
    room_down[fixed] = 0.0  # at their lower bound: they cannot move both ways
    target = np.setdiff1d(rng.choice(200, 8, replace=False), fixed)
    change = _space(rows, room_down).direction(target)
    assert change is not None
    assert change[target].sum() == pytest.approx(1.0)
    assert np.abs(rows @ change).max() < 1e-6  # LSQR stops at a relative 1e-8
    assert (change[fixed] == 0).all()

    # a target that is itself a published row has no such change
    assert _space(rows, room_down).direction(rows[0].indices) is None
    # nor does a solve once the deadline has passed
    assert _space(rows, room_down, time.monotonic()).direction(target) is None


def test_the_step_stops_where_the_first_entity_reaches_its_bound() -> None:
    """Target x0 + x2 with x0 + x1 = 2 and x2 + x3 = 2 published, all x = 1 and x ≥ 0: the
    exact interval is [0, 4], and the change (½, -½, ½, -½) reaches both ends."""
    rows = sparse.csr_matrix(np.asarray([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]))
    space = _space(rows, np.ones(4))
    change = space.direction(np.asarray([0, 2]))
    assert change is not None
    assert change == pytest.approx([0.5, -0.5, 0.5, -0.5])
    assert space.reach(change, space.residual(change)) == pytest.approx((2.0, 2.0))
    # a drift of the published rows caps the step where it would exceed the tolerance
    assert space.reach(change, 1e-9) == pytest.approx((1.0, 1.0))


def _random_populations(
    rng: np.random.Generator, n: int, tables: int, population: int
) -> tuple[Aggregates, Aggregates]:
    """``tables`` released 5 x 4 count tables with margins, each over its own random
    ``population`` of ``n`` entities, and a fresh one over another: one connected component
    whose entities each share few rows (the case the exact LP is slowest on)."""
    definition = TableDefinition(
        "", ("a", "b"), (tuple(range(5)), tuple(range(4))), n_index=1, margins=True
    )
    parts = []
    for k in range(tables + 1):
        members = rng.choice(n, population, replace=False)
        codes = [rng.integers(0, 5, population), rng.integers(0, 4, population)]
        named = TableDefinition(f"r{k}", definition.variables, definition.levels, 1, True)
        parts.append(table_aggregates(named, members, codes, n))
    return stack(parts[:-1]), parts[-1]


def test_a_fresh_table_over_random_populations_is_proven_without_the_whole_lp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rectangle of hidden cells in a fresh table, beside 40 releases over random
    populations: the null-space change proves all four protected, no LP of the whole
    component runs, and scipy's exact LP agrees the interval is at least as wide."""
    released, new = _random_populations(np.random.default_rng(3), 2000, 40, 150)
    rectangle = [0, 1, 4, 5]  # cells (0, 0), (0, 1), (1, 0), (1, 1)
    proven: dict[int, lp_audit.Interval] = {}
    stage = lp_audit._null_space_stage

    def spy(*args: object, **kwargs: object) -> dict[int, lp_audit.Interval]:
        found = stage(*args, **kwargs)  # type: ignore[arg-type]
        proven.update(found)
        return found

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a slower stage ran")

    monkeypatch.setattr(lp_audit, "_null_space_stage", spy)
    monkeypatch.setattr(ComponentLPs, "__init__", refuse)
    monkeypatch.setattr(lp_audit, "_inner_interval", refuse)
    assert lp_findings(index_rows(released), new, rectangle, upl=1.0, lpl=1.0) == ()
    assert sorted(proven) == rectangle

    ledger = stack([released, new])
    published = np.ones(ledger.n_rows, dtype=bool)
    published[released.n_rows + np.asarray(rectangle)] = False
    truth = np.asarray(ledger.weights.sum(axis=1)).ravel()
    for t in (0, 1):  # two corners, one per sign of the change (scipy is slow here)
        inner = proven[t]
        row = released.n_rows + t
        lo, hi = linprog_interval(ledger.weights, published, truth, truth, row, (0.0, np.inf))
        assert lo <= inner.lo + 1e-6 and inner.hi <= hi + 1e-6
        assert inner.lo <= truth[row] - 1 and inner.hi >= truth[row] + 1


def test_a_cell_the_published_rows_pin_through_a_chain_of_large_rows_is_a_finding() -> None:
    """T = R1 − R2 + R3 − R4 with every row and every pairwise difference too large for the
    local LP: no change can move T, so the null-space stage proves nothing and the exact LP
    reports the cell pinned."""
    n = 410
    t_people, x, y, z = np.arange(5), np.arange(5, 105), np.arange(105, 255), np.arange(255, 410)
    chain = [np.union1d(x, t_people), np.union1d(x, y), np.union1d(y, z), z]
    parts = []
    for k, members in enumerate(chain):
        single = TableDefinition(f"r{k}", ("all",), (("in",),), 1)
        parts.append(table_aggregates(single, members, [np.zeros(members.size, int)], n))
    released = stack(parts)
    # the new output: T hidden beside an unrelated published cell, no total
    two = TableDefinition("new", ("group",), (("t", "w"),), 1)
    members = np.concatenate([t_people, np.arange(300, 310)])
    codes = [np.concatenate([np.zeros(5, int), np.ones(10, int)])]
    new = table_aggregates(two, members, codes, n)
    (finding,) = lp_findings(index_rows(released), new, [0], upl=1.0, lpl=1.0)
    assert (finding.lo, finding.hi) == pytest.approx((5.0, 5.0))
    assert set(finding.earlier_outputs) == {"r0", "r1", "r2", "r3"}
