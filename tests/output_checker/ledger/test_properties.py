"""Properties: the sparse check flags exactly the pairs a naive set computation flags, and the
LP audit passes exactly the hidden cells an LP over every published row cannot narrow."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from output_checker.ledger import (
    Aggregates,
    TableDefinition,
    differencing_findings,
    index_rows,
    lp_findings,
    stack,
    table_aggregates,
)

from .helpers import RANDOM_BOUNDS, exact_interval, random_history

Band = tuple[int, int, int]  # ages lo..hi, without region r (-1: every region)
History = tuple[list[tuple[int, int]], list[Band], list[Band], int]  # people, released, new, T

FAST = settings(max_examples=60, deadline=None, derandomize=True)


@st.composite
def histories(draw: st.DrawFn) -> History:
    """People (age, region), released and new filtered counts, and a threshold."""
    people = draw(
        st.lists(st.tuples(st.integers(0, 12), st.integers(0, 2)), min_size=1, max_size=30)
    )
    band = st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(-1, 2)).map(
        lambda b: (min(b[:2]), max(b[:2]), b[2])
    )
    released: list[Band] = draw(st.lists(band, max_size=6))
    new: list[Band] = draw(st.lists(band, min_size=1, max_size=6))
    threshold: int = draw(st.integers(1, 6))
    return people, released, new, threshold


def _counts(name: str, people: list[tuple[int, int]], bands: list[Band]) -> Aggregates:
    """One single-cell count output per filter, built through the vectorised builder."""
    age, region = np.asarray(people).T
    parts = []
    for k, (lo, hi, without) in enumerate(bands):
        members = np.flatnonzero((age >= lo) & (age <= hi) & (region != without))
        definition = TableDefinition(f"{name}{k}", ("filter",), (("in",),), 1)
        codes = [np.zeros(members.size, dtype=np.int64)]
        parts.append(table_aggregates(definition, members, codes, len(people)))
    return stack(parts)


def _members(people: list[tuple[int, int]], band: Band) -> frozenset[int]:
    lo, hi, without = band
    return frozenset(i for i, (a, r) in enumerate(people) if lo <= a <= hi and r != without)


@FAST
@given(histories())
def test_flags_exactly_the_overlapping_pairs_that_differ_by_fewer_than_t(history: History) -> None:
    people, released_bands, new_bands, threshold = history
    released_sets = [_members(people, band) for band in released_bands]
    new_sets = [_members(people, band) for band in new_bands]
    expected: set[tuple[str, str, int, int]] = set()
    for i, a in enumerate(new_sets):
        others = [(f"r{j}", b) for j, b in enumerate(released_sets)]
        others += [(f"n{j}", b) for j, b in enumerate(new_sets) if j > i]  # new pairs once
        for name, b in others:
            if a & b and 0 < len(a ^ b) < threshold:
                expected.add((f"n{i}", name, len(a - b), len(b - a)))

    released = _counts("r", people, released_bands) if released_bands else None
    findings = differencing_findings(released, _counts("n", people, new_bands), threshold)
    found = {(f.new.output, f.other.output, f.new_only, f.other_only) for f in findings}
    assert len(found) == len(findings)
    assert found == expected


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_the_lp_audit_passes_exactly_the_cells_no_lp_over_the_releases_narrows(
    seed: int, level: int
) -> None:
    """Random release histories (counts and sums over overlapping random populations): a
    hidden cell passes exactly when scipy's LP over every published row, with no atoms,
    components, local LPs or null-space changes, leaves it at least ``level`` either way."""
    rng = np.random.default_rng(seed)
    released, new, hidden = random_history(rng, int(rng.integers(6, 30)), 4)
    findings = lp_findings(index_rows(released), new, hidden, level, level, bounds=RANDOM_BOUNDS)

    ledger = stack([released, new])
    truth = np.asarray(ledger.weights.sum(axis=1)).ravel()
    published = np.ones(ledger.n_rows, dtype=bool)
    published[released.n_rows :] = ~hidden
    narrowed = set()
    for t in np.flatnonzero(hidden).tolist():
        row = released.n_rows + t
        lo, hi = exact_interval(ledger, published, truth, truth, row)
        a = truth[row]
        if not (hi >= a + level - 1e-6 and lo <= a - level + 1e-6):
            narrowed.add(ledger.ref(row))
    assert {f.cell for f in findings} == narrowed
