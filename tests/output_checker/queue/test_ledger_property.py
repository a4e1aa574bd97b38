"""Property (issue 11): for random release histories, where each output is released only if
the ledger's audit passes it, no cell the ledger passed can be narrowed below its protection
level by an LP over everything released, solved independently (the full LP, no reductions),
and no two published cells differ by between 1 and T-1 entities."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.optimize import linprog

from output_checker.ledger import TableDefinition, stack, table_aggregates
from output_checker.queue.ledger_cells import OutputCells, audit, report

T = 3
PEOPLE = 14
Output = tuple[int, int, int, list[int]]  # age band lo..hi, variable, hidden cells


@st.composite
def histories(draw: st.DrawFn) -> tuple[np.ndarray, list[Output]]:
    """People with an age (0..5) and a sex (0..1); outputs that count people of an age band
    by one variable (0: age, 1: sex), each hiding some of its cells."""
    people = np.asarray(
        draw(
            st.lists(
                st.tuples(st.integers(0, 5), st.integers(0, 1)), min_size=PEOPLE, max_size=PEOPLE
            )
        )
    )
    outputs = []
    for _ in range(draw(st.integers(2, 6))):
        lo, hi = sorted((draw(st.integers(0, 5)), draw(st.integers(0, 5))))
        variable = draw(st.integers(0, 1))
        n_cells = (6 if variable == 0 else 2) + 1  # the cells and their total
        hidden = draw(st.lists(st.integers(0, n_cells - 1), max_size=2, unique=True))
        outputs.append((lo, hi, variable, hidden))
    return people, outputs


def _cells(people: np.ndarray, output: Output) -> OutputCells:
    lo, hi, variable, hidden = output
    members = np.flatnonzero((people[:, 0] >= lo) & (people[:, 0] <= hi))
    levels = tuple(range(6)) if variable == 0 else (0, 1)
    definition = TableDefinition("o", ("v",), (levels,), 1, margins=True)
    aggregates = table_aggregates(definition, members, [people[members, variable]], PEOPLE)
    mask = np.zeros(aggregates.n_rows, dtype=bool)
    mask[hidden] = True
    return OutputCells(
        aggregates, np.arange(PEOPLE, dtype=np.uint64), mask, np.ones(aggregates.n_rows)
    )


def _interval(pattern: sparse.csr_matrix, known: np.ndarray, target: int) -> tuple[float, float]:
    """The attacker's interval for row ``target``: the full LP, every entity in [0, ∞)."""
    cost = pattern[target].toarray().ravel()
    a_eq, b_eq = pattern[known], np.asarray(pattern[known].sum(axis=1)).ravel()
    ends = []
    for sign in (1.0, -1.0):
        found = linprog(sign * cost, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        ends.append(-sign * np.inf if found.status == 3 else sign * found.fun)
    return ends[0], ends[1]


@settings(max_examples=100, deadline=None, derandomize=True)
@given(histories())
def test_what_the_ledger_passes_stays_protected(history: tuple[np.ndarray, list[Output]]) -> None:
    people, outputs = history
    released: list[OutputCells] = []
    for output in outputs:
        cells = _cells(people, output)
        if audit(released, cells, T).clean:
            released.append(cells)
    if not released:
        return
    everything = stack([cells.aggregates for cells in released])
    hidden = np.concatenate([cells.hidden for cells in released])
    pattern = everything.weights.tocsr()
    sizes = np.diff(pattern.indptr)
    for target in np.flatnonzero(hidden):
        lo, hi = _interval(pattern, ~hidden, int(target))
        value = sizes[target]
        assert (hi >= value + 1 - 1e-6 and lo <= value - 1 + 1e-6) or value == 0, (target, lo, hi)
    shown = pattern[~hidden]
    ones = shown.copy()
    ones.data[:] = 1
    common = (ones @ ones.T).toarray()
    size = np.diff(shown.indptr)
    differ = size[:, None] + size[None, :] - 2 * common
    assert not ((common > 0) & (differ > 0) & (differ < T)).any()


def test_cells_not_audited_in_time_are_findings_and_stored_as_json() -> None:
    """Fail closed: with no time for the LP, a hidden cell is not shown to be protected."""
    people = np.asarray([(age % 6, age % 2) for age in range(PEOPLE)])
    cells = _cells(people, (0, 5, 1, [0, 1]))  # both sexes hidden, their total shown
    findings = report(audit([], cells, T, time_limit=0.0), T, {}, 0, 0)["lp"]
    assert len(findings) == 2
    assert all(f["timed_out"] and f["interval"] == [None, None] for f in findings)
    json.dumps(findings, allow_nan=False)
    assert audit([], cells, T).lp == ()  # with time, the same cells are protected
