"""Optimal secondary suppression: the Fischetti–Salazar model solved by cut generation (§10.3).

The master problem (:mod:`.master`) picks a binary x per cell (1 = suppressed) of least cost
subject to the capacity cuts found so far (:mod:`.cuts`). The search runs in two phases:

1. **LP phase.** The master's LP relaxation is solved and cut at its fractional optimum until
   no cut is violated. This is cheap and gives the MIP most of the cuts it will need, and a
   lower bound on the optimal cost.
2. **MIP phase.** The master MIP's pattern is attacked; its violated cuts join the pool. When
   a round adds no cut, the pattern is optimal. Each non-protecting master pattern is also
   repaired and pruned into a protecting one, and the cheapest such pattern (the incumbent,
   first the hypercube heuristic's) is kept, so the search can stop at any time with a
   protecting pattern and a proved bound on how far from the optimum its cost can be.

The search stops at the optimum, at ``time_limit`` (the incumbent is returned, status PASS, its
gap to the bound in the summary), or after ``max_rounds`` MIP rounds (the incumbent, status
REVIEW, as §10.3 asks). Values are never altered: the result is a mask with its full audit.
"""

from __future__ import annotations

import time
from typing import Unpack

import numpy as np
import numpy.typing as npt

from output_checker.protection.cuts import Cut, Key, attacker_cuts, drop_hopeless, prune, repair
from output_checker.protection.hypercube import hypercube_start
from output_checker.protection.master import Master
from output_checker.protection.model import BoolArray, FloatArray, TableModel
from output_checker.protection.problem import Problem, ProblemOptions, prepare
from output_checker.protection.result import ProtectionResult, assess

TIME_LIMIT = 20.0  # seconds of search by default; the final audit comes on top
LP_ROUNDS = 200  # at most this many rounds of the LP phase
PRUNE_SHARE = 0.1  # of the time limit, at most, spent pruning each new incumbent


class _Search:
    """The state of one exact search: the master, the incumbent and the clock."""

    def __init__(self, p: Problem, time_limit: float | None) -> None:
        self.p = p
        self.master = Master(p)
        self.hopeless: set[Key] = set()
        self.notes: list[str] = []
        self.deadline = time.perf_counter() + (np.inf if time_limit is None else time_limit)
        self.prune_seconds = 5.0 if time_limit is None else PRUNE_SHARE * time_limit
        self.half_time = np.inf if time_limit is None else time_limit / 2
        self.bound = 0.0
        self.incumbent: BoolArray | None = None

    @property
    def seconds_left(self) -> float:
        return self.deadline - time.perf_counter()

    def cuts(self, x: FloatArray | BoolArray) -> list[Cut] | None:
        """The violated cuts at x, once primaries no pattern can protect are set aside (their
        cuts leave the master). None when an attacker LP failed (noted)."""
        found, failed = attacker_cuts(self.p, x, frozenset(self.hopeless))
        if failed:
            self.notes.append(f"{failed} attacker LP(s) could not be solved")
            return None
        before = len(self.hopeless)
        kept = drop_hopeless(self.p, found, self.hopeless)
        if len(self.hopeless) > before:
            self.master.forget(self.hopeless)
        return kept

    def offer(self, x: BoolArray) -> None:
        """Repair and prune x into a protecting pattern; keep it if cheaper than the best."""
        notes: list[str] = []
        fixed, _ = repair(self.p, x, self.hopeless, notes)
        if notes:  # a repair that stalled proves nothing: keep the incumbent we have
            return
        seconds = min(self.prune_seconds, max(self.seconds_left, 0.0))
        candidate = prune(self.p, fixed, self.hopeless, seconds=seconds)
        if self.incumbent is None or self.cost(candidate) < self.cost(self.incumbent):
            self.incumbent = candidate

    def cost(self, x: BoolArray) -> float:
        return float(self.p.costs[x & ~self.p.primary].sum())

    def relax(self) -> None:
        """The LP phase: cut the master's LP relaxation until no cut is violated."""
        for _ in range(LP_ROUNDS):
            solution = self.master.relaxation()
            if solution.x is None:
                return
            self.bound = max(self.bound, solution.bound)
            new = self.cuts(solution.x)
            if not new or self.seconds_left <= 0:
                return
            # A cut is always violated at the point it was derived from, but not always by
            # more than the solvers' tolerance: stop when the violation is in the noise.
            slack = [c.coef @ solution.x - (c.level - self.p.tol) for c in new]
            if min(slack) > -1e-6 * max(c.level for c in new):
                return
            self.master.add(new)


def protect_exact(
    model: TableModel,
    values: npt.ArrayLike,
    primary: npt.ArrayLike,
    upl: npt.ArrayLike,
    lpl: npt.ArrayLike,
    *,
    max_rounds: int = 500,
    time_limit: float | None = TIME_LIMIT,
    **options: Unpack[ProblemOptions],
) -> ProtectionResult:
    """The least-cost suppression pattern that gives every primary its protection interval.

    The arguments and ``options`` (costs, a-priori bounds, singletons, scenarios, group sums)
    are those of :func:`.problem.prepare`. Status FAIL names primaries (or group sums) no
    pattern can protect; the pattern then protects the others. ``time_limit`` (seconds, None
    for none) bounds the search: the cheapest protecting pattern found by then is returned,
    with the proved ``lower_bound`` on the optimal cost. On reaching ``max_rounds`` the status
    is REVIEW; also REVIEW if an LP fails. Raises InputError for bad input."""
    p = prepare(model, values, primary, upl, lpl, **options)
    search = _Search(p, time_limit)
    if not p.primary.any():
        return assess(p, p.primary.copy(), method="exact", rounds=0, lower_bound=0.0)
    search.relax()
    x, rounds = _cut_loop(search, max_rounds)
    bound = search.bound
    if x is None:  # stopped early: the incumbent, with the bound proved so far
        x = search.incumbent if search.incumbent is not None else p.primary.copy()
    else:
        bound = search.cost(x)  # the loop ended at a master optimum that protects
    return assess(
        p,
        x,
        method="exact",
        rounds=rounds,
        notes=search.notes,
        failed=search.hopeless,
        lower_bound=None if search.notes else min(bound, search.cost(x)),
    )


def _cut_loop(search: _Search, max_rounds: int) -> tuple[BoolArray | None, int]:
    """The MIP phase. Returns the optimal pattern, or None if the search stopped before it
    (time limit, round cap or a solver failure, the latter two noted), and the rounds run.

    Master patterns become incumbents (repaired and pruned) only in the second half of the
    time limit, so that a search that ends at the optimum never pays for them; when it stops
    early, its last master pattern (or else the hypercube start) becomes one."""
    p, master = search.p, search.master
    rounds, last = 0, None
    while search.seconds_left > 0:
        if rounds >= max_rounds:
            search.notes.append(f"no optimal pattern within {max_rounds} rounds")
            break
        rounds += 1
        solution = master.integer(search.seconds_left)
        search.bound = max(search.bound, solution.bound)
        if solution.x is None:
            if search.seconds_left > 0:
                search.notes.append("the master problem could not be solved")
            break
        last = np.asarray(solution.x > 0.5, dtype=bool)
        new = search.cuts(last)
        if new is None:
            return None, rounds
        if not new and solution.optimal:
            return last, rounds
        master.add(new)
        if search.seconds_left < search.half_time:
            search.offer(last)
            last = None
            incumbent = search.incumbent
            if incumbent is not None and search.cost(incumbent) <= search.bound:
                return None, rounds  # the incumbent is as cheap as any pattern can be
    if last is not None:
        search.offer(last)
    if search.incumbent is None:
        search.offer(hypercube_start(p))
    return None, rounds


__all__ = ["Problem", "ProtectionResult", "protect_exact"]
