"""Benchmark the ledger's exact differencing check (output_checker.ledger, issue 11 item 5).

A project over ``--entities`` entities has released ``--tables`` two-way tables of 39 x 24
inner cells with row, column and grand totals (1,000 cells each). Each table covers its own
random subpopulation of ``--population`` entities (a filtered population), with random row
and column levels. The new output is a 1,000-cell re-release of the first table with three
of its people filtered out, so the check has real findings to report (every cell that lost
someone, against its released twin).

Timed (wall, best of ``--runs``): ``differencing_findings(indexed, new, T)`` alone, with the
ledger indexed beforehand (``index_rows``, once per release: reported separately, as is
building the ledger). Memory is the process's peak resident size.

Ledger memory is proportional to the contributions (about 4 x population per table), so a
ledger of 500 tables that each cover all 1M entities (2e9 entries) does not fit in memory in
this form; the default population keeps the run small on a shared machine.

Usage: python benchmarks/bench_ledger.py [--entities 1000000] [--tables 500]
       [--population 20000] [--runs 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from output_checker.ledger import (
    Aggregates,
    TableDefinition,
    differencing_findings,
    index_rows,
    stack,
    table_aggregates,
)

ROWS, COLS = 39, 24  # 936 inner cells + 39 + 24 + 1 totals = 1,000 published cells
THRESHOLD = 10


def _definition(output: str) -> TableDefinition:
    return TableDefinition(
        output,
        ("row", "col"),
        (tuple(range(ROWS)), tuple(range(COLS))),
        n_index=1,
        margins=True,
    )


def _table(
    output: str, members: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_entities: int
) -> Aggregates:
    return table_aggregates(_definition(output), members, [rows, cols], n_entities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--tables", type=int, default=500)
    parser.add_argument("--population", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    started = time.perf_counter()
    parts = []
    first: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    for t in range(args.tables):
        members = rng.choice(args.entities, args.population, replace=False)
        rows = rng.integers(0, ROWS, members.size)
        cols = rng.integers(0, COLS, members.size)
        first = first or (members, rows, cols)
        parts.append(_table(f"table-{t}", members, rows, cols, args.entities))
    ledger = stack(parts)
    del parts
    built = time.perf_counter() - started
    assert first is not None
    members, rows, cols = first
    kept = np.arange(3, members.size)  # three people filtered out of the re-release
    new = _table("re-release", members[kept], rows[kept], cols[kept], args.entities)

    started = time.perf_counter()
    indexed = index_rows(ledger)  # once per release, off the check's path
    index_time = time.perf_counter() - started
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        findings = differencing_findings(indexed, new, THRESHOLD)
        times.append(time.perf_counter() - started)
    against_first = [f for f in findings if f.other.output == "table-0"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"ledger: {args.tables} tables x {ledger.n_rows // args.tables} cells over "
        f"{args.entities:,} entities, {ledger.weights.nnz:,} contributions, built in {built:.1f} s"
    )
    print(f"ledger index (once per release): {index_time:.2f} s")
    print(f"new output: {new.n_rows} cells, {new.weights.nnz:,} contributions")
    print(
        f"exact check: best {min(times):.2f} s of {args.runs} runs "
        f"({', '.join(f'{t:.2f}' for t in times)}); {len(findings)} findings, "
        f"{len(against_first)} against the first table; peak RSS {peak_mb:,.0f} MB"
    )
    if not against_first:
        raise SystemExit("the re-release was not caught against its first release")


if __name__ == "__main__":
    main()
