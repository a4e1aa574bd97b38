"""Capacity cuts from attacker LPs, and the repair and pruning of a pattern with them (§10.3–4).

For a pattern x (binary, or fractional in the master's LP relaxation, where cell j's a-priori
range shrinks to the fraction x_j of itself), the attacker bounds every primary from above and
below. A bound that misses its protection level yields a capacity cut ``coef · x ≥ level`` from
the LP's duals; by weak duality the cut holds for every protecting pattern.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from output_checker.errors import InputError
from output_checker.protection.audit import AttackerLP, Bound
from output_checker.protection.model import BoolArray, FloatArray
from output_checker.protection.problem import Problem

Key = int | tuple[int, ...]  # what a cut protects: a primary cell, or a group's sum (§10.5)


@dataclass(frozen=True)
class Cut:
    """A capacity cut ``coef · x ≥ level`` for one primary (or one group of primaries)."""

    key: Key
    coef: FloatArray
    level: float


def attacker_cuts(
    p: Problem, x: FloatArray | BoolArray, skip: frozenset[Key] = frozenset()
) -> tuple[list[Cut], int]:
    """The capacity cuts that pattern x violates (one per primary, scenario, group sum and
    direction, but none for the keys in ``skip``), and the number of attacker LPs HiGHS could
    not solve.

    x is a suppression mask or, for the master's LP relaxation, a fraction in [0, 1] per cell."""
    share = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    if (share[p.primary] < 1.0 - 1e-9).any():
        raise InputError("a primary cell is not suppressed in the pattern")
    matrix_t = p.model.constraints().T.tocsr()
    lower = p.values - share * (p.values - p.lower)
    upper = p.values + share * (p.upper - p.values)
    attackers: dict[tuple[int, ...], list[int]] = {(): [int(c) for c in np.flatnonzero(p.primary)]}
    for target, known in p.scenarios:
        attackers.setdefault(known, []).append(target)
    cuts, failed = [], 0
    plain: AttackerLP | None = None
    for known, wanted in attackers.items():
        cells = np.array([c for c in wanted if c not in skip and c not in known], dtype=np.intp)
        if not cells.size:
            continue
        free = share > 0.0
        free[list(known)] = False
        lp = AttackerLP(p.model, p.values, free, lower, upper)
        plain = lp if not known else plain
        upward = np.repeat([True, False], cells.shape[0])
        both = np.concatenate([cells, cells])
        # A bound already seen to meet its level needs no LP: it yields no cut.
        goal = np.concatenate(
            [p.values[cells] + p.upl[cells], p.values[cells] - p.lpl[cells]]
        ) + np.where(upward, -p.tol, p.tol)
        found = lp.solve_many(both, upward, goal)
        for cell, up, bound in zip(both, upward, found, strict=True):
            if not bound.ok:
                failed += 1
                continue
            level = float(p.upl[cell] if up else p.lpl[cell])
            cut = _capacity_cut(p, int(cell), bool(up), bound, matrix_t, level)
            if cut is not None:
                cut.coef[list(known)] = 0.0  # suppressing a cell the attacker knows is no help
                cuts.append(cut)
    wanted_sums = [(g, level) for g, level in p.sums if g not in skip]
    if wanted_sums:
        plain = plain or AttackerLP(p.model, p.values, share > 0.0, lower, upper)
        groups = [np.array(g, dtype=np.intp) for g, _ in wanted_sums] * 2
        upward = np.repeat([True, False], len(wanted_sums))
        totals = np.array([p.values[list(g)].sum() for g, _ in wanted_sums])
        levels = np.array([level for _, level in wanted_sums])
        goal = np.concatenate([totals + levels - p.tol, totals - levels + p.tol])
        found = plain.solve_sums(groups, upward, goal)
        for (group, level), up, bound in zip(wanted_sums * 2, upward, found, strict=True):
            if not bound.ok:
                failed += 1
                continue
            cut = _capacity_cut(p, group, bool(up), bound, matrix_t, level)
            if cut is not None:
                cuts.append(cut)
    return cuts, failed


def _capacity_cut(
    p: Problem, key: Key, upward: bool, bound: Bound, matrix_t: sp.csr_matrix, level: float
) -> Cut | None:
    """The cut from one attacker bound on a cell (or a group's sum), or None if the bound
    meets the protection level.

    With Mᵀπ for the LP's duals π (``matrix_t`` is Mᵀ), r = t ± Mᵀπ (t: the target's
    indicator) is the change of the bound when both a-priori bounds of each cell move by one
    (for free cells this is the sum of HiGHS's lower and upper marginals, sign-flipped for the
    maximum)."""
    cells = list(key) if isinstance(key, tuple) else [key]
    a = float(p.values[cells].sum())
    value = bound.value
    if (value >= a + level - p.tol) if upward else (value <= a - level + p.tol):
        return None
    shift = matrix_t @ bound.duals
    r = shift if upward else -shift
    r[cells] += 1.0
    pos, neg = np.maximum(r, 0.0), np.maximum(-r, 0.0)
    ub, lb = p.upper - p.values, p.values - p.lower
    coef = pos * ub + neg * lb if upward else pos * lb + neg * ub
    coef[coef < 1e-9 * level] = 0.0
    # Capping a coefficient at the right-hand side is valid for binary x and tightens the cut.
    return Cut(key, np.minimum(coef, level), level)


def drop_hopeless(p: Problem, cuts: list[Cut], hopeless: set[Key]) -> list[Cut]:
    """Record the primaries (or groups) whose cut no allowed pattern can meet; return the
    other cuts."""
    allowed = p.allowed
    hopeless.update(c.key for c in cuts if c.coef[allowed].sum() < c.level - p.tol)
    return [c for c in cuts if c.key not in hopeless]


def repair(
    p: Problem, x: BoolArray, hopeless: set[Key], notes: list[str], *, max_steps: int = 10_000
) -> tuple[BoolArray, int]:
    """Grow pattern x until every primary (but the ``hopeless``, which are added to) meets
    its level: audit, and for each violated cut add the allowed cells with the lowest cost per
    unit of cut coefficient until the cut holds (§10.4). Returns the pattern and the number of
    audits; problems go to ``notes``."""
    x = x.copy()
    allowed = p.allowed
    # The pattern only grows, and suppressing more cells only widens every attacker interval:
    # a primary that met its levels (in every scenario) keeps them and is not audited again.
    done: set[Key] = set()
    every: set[Key] = {*np.flatnonzero(p.primary).tolist(), *(g for g, _ in p.sums)}
    for step in range(1, max_steps + 1):
        found, failed_lps = attacker_cuts(p, x, frozenset(hopeless | done))
        if failed_lps:
            notes.append(f"{failed_lps} attacker LP(s) could not be solved")
            return x, step
        done.update(every - {c.key for c in found})
        cuts = drop_hopeless(p, found, hopeless)
        if not cuts:
            return x, step
        before = int(x.sum())
        for cut in cuts:
            short = cut.level - p.tol - cut.coef @ x
            if short <= 0:  # already met by cells added for an earlier cut
                continue
            cand = np.flatnonzero(allowed & ~x & (cut.coef > 0))
            order = cand[np.argsort(p.costs[cand] / cut.coef[cand], kind="stable")]
            enough = np.searchsorted(np.cumsum(cut.coef[order]), short) + 1
            x[order[:enough]] = True
        if int(x.sum()) == before:
            notes.append("the repair loop stalled on numerical tolerance")
            return x, step
    notes.append(f"the repair loop did not finish within {max_steps} audits")
    return x, max_steps


def prune(p: Problem, x: BoolArray, hopeless: set[Key], *, seconds: float) -> BoolArray:
    """Drop the secondaries a protecting pattern x does not need, most expensive first: a cell
    is released when every primary (but the ``hopeless``) still meets its levels without it.
    Stops after about ``seconds``; the result protects whatever it stopped at."""
    x = x.copy()
    start = time.perf_counter()
    skip = frozenset(hopeless)
    secondary = np.flatnonzero(x & ~p.primary)
    for cell in secondary[np.argsort(-p.costs[secondary], kind="stable")]:
        if time.perf_counter() - start > seconds:
            break
        x[cell] = False
        found, failed = attacker_cuts(p, x, skip)
        if found or failed:
            x[cell] = True
    return x
