"""Properties of the audit and of exact protection on random small additive tables."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from output_checker.protection import TableModel, audit, protect_exact
from output_checker.protection.heuristic import protect_heuristic
from output_checker.protection.problem import default_costs
from output_checker.status import Status

FAST = settings(
    max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass(frozen=True)
class Case:
    model: TableModel
    values: np.ndarray
    primary: np.ndarray  # mask
    upl: np.ndarray
    lpl: np.ndarray


@st.composite
def cases(draw: st.DrawFn, sizes: tuple[int, int] = (3, 5)) -> Case:
    """A non-negative 2-D table with margins, 1–3 primaries among its non-zero inner cells,
    and either unit levels or p%-style levels (a fraction of the cell value)."""
    shape = (draw(st.integers(*sizes)), draw(st.integers(*sizes)))
    inner = draw(arrays(np.int64, shape, elements=st.integers(0, 40)))
    inner.flat[draw(st.integers(0, inner.size - 1))] += 1  # at least one non-zero cell
    model = TableModel.with_totals(list(shape))
    values = model.complete(inner)
    candidates = np.flatnonzero(~model.is_total & (values > 0))
    chosen = draw(st.lists(st.sampled_from(candidates.tolist()), min_size=1, max_size=3))
    primary = np.zeros(model.n_cells, dtype=bool)
    primary[chosen] = True
    if draw(st.booleans()):
        upl = lpl = np.ones(model.n_cells)
    else:
        upl = draw(st.sampled_from([0.1, 0.3, 0.6])) * values
        lpl = draw(st.sampled_from([0.1, 0.3, 0.6])) * values
    return Case(model, values, primary, upl, lpl)


@given(case=cases(), pattern_seed=st.integers(0, 2**32 - 1))
@FAST
def test_audit_intervals_contain_the_truth_and_grow_with_the_pattern(
    case: Case, pattern_seed: int
) -> None:
    rng = np.random.default_rng(pattern_seed)
    small = rng.random(case.model.n_cells) < 0.3
    large = small | (rng.random(case.model.n_cells) < 0.3)
    a, b = audit(case.model, case.values, small), audit(case.model, case.values, large)
    for result in (a, b):
        truth = case.values[result.cells]
        assert (result.lo <= truth + result.tol).all() and (truth <= result.hi + result.tol).all()
        assert (result.lo >= -result.tol).all() and (
            result.hi <= case.values.max() + result.tol
        ).all()
    # Suppressing more never narrows an interval.
    pos = np.searchsorted(b.cells, a.cells)
    assert (b.lo[pos] <= a.lo + a.tol).all() and (b.hi[pos] >= a.hi - a.tol).all()


@given(case=cases())
@FAST
def test_exact_pattern_protects_every_protectable_primary(case: Case) -> None:
    before = case.values.copy()
    result = protect_exact(case.model, case.values, case.primary, case.upl, case.lpl)
    assert np.array_equal(case.values, before) and np.array_equal(result.values, before)
    assert result.suppressed[case.primary].all()
    assert not (result.suppressed & (case.values == 0) & ~case.primary).any()
    costs = default_costs(case.model, case.values)
    assert np.isclose(result.cost, costs[result.secondary].sum())
    # Independent audit of the returned pattern.
    own = audit(case.model, case.values, result.suppressed)
    ok = own.protected(case.primary, case.upl, case.lpl)
    assert np.array_equal(ok, result.protected)
    # Protection only grows with the pattern, so the best possible is "suppress all allowed".
    allowed = case.primary | (case.values != 0)
    best = audit(case.model, case.values, allowed).protected(case.primary, case.upl, case.lpl)
    assert np.array_equal(ok, best)
    assert result.status == (Status.PASS if best.all() else Status.FAIL)


def cheapest_protecting_cost(case: Case, budget: float) -> float:
    """Brute force: the least secondary cost below ``budget`` of a superset of the primaries
    that protects every primary (inf if there is none). A cell that alone costs ``budget`` or
    more cannot be part of a cheaper pattern, so only the others are enumerated. Only patterns
    without a lone suppressed cell in a relation (a necessary condition: such a cell is
    disclosed exactly) go to the LP audit."""
    model, values = case.model, case.values
    costs = default_costs(model, values)
    free = np.flatnonzero(~case.primary & (values != 0) & (costs < budget))
    assume(free.size <= 14)
    subsets = np.array(list(itertools.product([False, True], repeat=free.size)), dtype=bool)
    patterns = np.tile(case.primary, (subsets.shape[0], 1))
    patterns[:, free] = subsets
    incidence = (model.constraints() != 0).astype(np.int64).T.toarray()
    plausible = ~((patterns.astype(np.int64) @ incidence) == 1).any(axis=1)
    cost = subsets @ costs[free]
    keep = plausible & (cost < budget)
    order = np.argsort(cost[keep], kind="stable")
    for pattern, pattern_cost in zip(patterns[keep][order], cost[keep][order], strict=True):
        check = audit(model, values, pattern, targets=case.primary)
        if check.protected(case.primary, case.upl, case.lpl).all():
            return float(pattern_cost)
    return np.inf


@given(case=cases(sizes=(2, 4)))
@settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
def test_exact_is_optimal_against_brute_force(case: Case) -> None:
    result = protect_exact(case.model, case.values, case.primary, case.upl, case.lpl)
    if result.status == Status.PASS:
        assert result.protected.all()
        # Costs are whole numbers: the brute force finds the optimum itself and nothing cheaper.
        assert cheapest_protecting_cost(case, result.cost + 0.5) == result.cost
    else:
        # Nothing protects: not even the largest pattern (protection grows with the pattern).
        allowed = case.primary | (case.values != 0)
        check = audit(case.model, case.values, allowed)
        assert not check.protected(case.primary, case.upl, case.lpl).all()


@given(case=cases(sizes=(2, 5)))
@FAST
def test_heuristic_protects_and_never_beats_exact(case: Case) -> None:
    exact = protect_exact(case.model, case.values, case.primary, case.upl, case.lpl)
    quick = protect_heuristic(case.model, case.values, case.primary, case.upl, case.lpl)
    assert quick.method == "heuristic" and np.array_equal(quick.values, case.values)
    own = audit(case.model, case.values, quick.suppressed)
    assert np.array_equal(own.protected(case.primary, case.upl, case.lpl), quick.protected)
    # Same verdict, same unprotectable primaries; never cheaper than the optimum.
    assert quick.status == exact.status
    assert np.array_equal(quick.protected, exact.protected)
    assert quick.cost >= exact.cost - 1e-9
