"""The persistent, warm-started HiGHS models of the audit against cold ``linprog`` solves on
the full LP over all cells (published cells fixed by their bounds)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from output_checker.protection import TableModel, audit
from output_checker.protection.audit import AttackerLP, apriori_bounds
from output_checker.protection.cuts import attacker_cuts
from output_checker.protection.problem import prepare


def random_case(seed: int, shape: tuple[int, ...]) -> tuple[TableModel, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    model = TableModel.with_totals(list(shape))
    values = model.complete(rng.integers(0, 30, size=shape).astype(float))
    pattern = rng.random(model.n_cells) < 0.35
    return model, values, pattern


def reference(
    model: TableModel, values: np.ndarray, free: np.ndarray, cell: int, maximise: bool
) -> float:
    lower, upper = apriori_bounds(values, None, None)
    m = model.constraints()
    c = np.zeros(model.n_cells)
    c[cell] = -1.0 if maximise else 1.0
    bounds = np.column_stack([np.where(free, lower, values), np.where(free, upper, values)])
    res = linprog(c, A_eq=m, b_eq=np.zeros(m.shape[0]), bounds=bounds, method="highs")
    assert res.status == 0
    return float(-res.fun if maximise else res.fun)


CASES = [(seed, (5, 6)) for seed in range(4)] + [(seed, (3, 3, 4)) for seed in range(4, 7)]


@pytest.mark.parametrize(("seed", "shape"), CASES)
def test_audit_intervals_equal_cold_linprog(seed: int, shape: tuple[int, ...]) -> None:
    model, values, pattern = random_case(seed, shape)
    result = audit(model, values, pattern)
    assert result.cells.tolist() == np.flatnonzero(pattern).tolist()
    tol = 1e-6 * max(1.0, float(values.max()))
    for pos, cell in enumerate(result.cells):
        assert result.lo[pos] == pytest.approx(
            reference(model, values, pattern, cell, False), abs=tol
        )
        assert result.hi[pos] == pytest.approx(
            reference(model, values, pattern, cell, True), abs=tol
        )


@pytest.mark.parametrize(("seed", "shape"), CASES)
def test_warm_started_duals_give_tight_weak_duality_bounds(
    seed: int, shape: tuple[int, ...]
) -> None:
    """Every solve's duals certify its optimum: a + Σ r⁺·(U−a) + r⁻·(a−L) equals the bound,
    so the capacity cuts built from them are valid and as strong as with a cold solve."""
    model, values, pattern = random_case(seed, shape)
    lower, upper = apriori_bounds(values, None, None)
    lp = AttackerLP(model, values, pattern, lower, upper)
    cells = np.flatnonzero(pattern)
    m_t = model.constraints().T
    solved = 0
    for cell, up in [(c, u) for u in (True, False) for c in cells]:
        goal = np.array([np.inf if up else -np.inf])  # never answered from seen points
        bound = lp.solve_many(np.array([cell]), np.array([up]), goal)[0]
        assert bound.ok
        r = m_t @ bound.duals
        r = r if up else -r
        r[cell] += 1.0
        # Published cells cannot move, so only free cells' terms count.
        if up:
            certified = values[cell] + (
                r.clip(0) @ np.where(pattern, upper - values, 0.0)
                + (-r).clip(0) @ np.where(pattern, values - lower, 0.0)
            )
        else:
            certified = values[cell] - (
                r.clip(0) @ np.where(pattern, values - lower, 0.0)
                + (-r).clip(0) @ np.where(pattern, upper - values, 0.0)
            )
        assert certified == pytest.approx(bound.value, abs=1e-6 * max(1.0, values.max()))
        assert bound.value == pytest.approx(reference(model, values, pattern, cell, up), abs=1e-6)
        solved += 1
    assert solved == 2 * cells.shape[0]


def test_skipping_lps_seen_to_meet_their_level_gives_the_same_cuts() -> None:
    """attacker_cuts answers bounds from points already seen; the cuts must be those of a
    fresh LP per bound."""
    model, values, pattern = random_case(11, (6, 6))
    primary = pattern & ~model.is_total & (values > 0)
    p = prepare(model, values, primary, 3.0, 3.0)
    cuts, failed = attacker_cuts(p, pattern | primary)
    assert failed == 0
    expected = set()
    for cell in np.flatnonzero(primary):
        hi = reference(model, values, pattern | primary, cell, True)
        lo = reference(model, values, pattern | primary, cell, False)
        if hi < values[cell] + 3.0 - p.tol:
            expected.add((int(cell), True))
        if lo > values[cell] - 3.0 + p.tol:
            expected.add((int(cell), False))
    assert 0 < len(expected) < 2 * int(primary.sum())  # some bounds meet their level, some not
    assert len(cuts) == len(expected)
    assert {c.key for c in cuts} == {cell for cell, _ in expected}
