"""What changed between two versions of one output across resubmissions. Pure.

Tables are compared cell by cell, keyed by their row labels (the leading ``index_width``
columns) and column labels (the header rows joined), so a reordered or extended table shows
only the cells whose numbers changed; anything else is compared as text, line by line.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from output_checker.queue.web.render import plain_text, read_csv

MAX_DIFF_LINES = 5_000


@dataclass(frozen=True)
class CellChange:
    """One cell whose text differs ("" stands for a cell that did not exist)."""

    row: str
    column: str
    before: str
    after: str


@dataclass(frozen=True)
class TableDiff:
    """Cell-level differences of two versions of a table."""

    changed: tuple[CellChange, ...]
    added_rows: tuple[str, ...]
    removed_rows: tuple[str, ...]
    added_columns: tuple[str, ...]
    removed_columns: tuple[str, ...]

    @property
    def unchanged(self) -> bool:
        """Whether the two versions hold the same cells."""
        return not (
            self.changed
            or self.added_rows
            or self.removed_rows
            or self.added_columns
            or self.removed_columns
        )


def _cells(
    data: bytes, index_width: int, header_rows: int
) -> tuple[dict[str, dict[str, str]], list[str], list[str]]:
    """Rows keyed by label -> column label -> text, with the row and column orders."""
    rows, _ = read_csv(data)
    headers = rows[:header_rows]
    width = max((len(r) for r in rows), default=0)
    columns = [
        " / ".join(h[j] for h in headers if j < len(h) and h[j]) or f"column {j + 1}"
        for j in range(index_width, width)
    ]
    table: dict[str, dict[str, str]] = {}
    order: list[str] = []
    for number, row in enumerate(rows[header_rows:], start=1):
        label = " / ".join(row[:index_width]) or f"row {number}"
        while label in table:  # repeated labels are told apart by their position
            label += f" #{number}"
        order.append(label)
        table[label] = {
            columns[j - index_width]: row[j] for j in range(index_width, min(len(row), width))
        }
    return table, order, columns


def table_diff(old: bytes, new: bytes, *, index_width: int = 1, header_rows: int = 1) -> TableDiff:
    """Cell-level differences between two CSV versions of a table."""
    before, old_rows, old_columns = _cells(old, index_width, header_rows)
    after, new_rows, new_columns = _cells(new, index_width, header_rows)
    changed = []
    for row in new_rows:
        if row not in before:
            continue
        for column in new_columns:
            was, now = before[row].get(column, ""), after[row].get(column, "")
            if was != now and column in old_columns:
                changed.append(CellChange(row, column, was, now))
    return TableDiff(
        changed=tuple(changed),
        added_rows=tuple(r for r in new_rows if r not in before),
        removed_rows=tuple(r for r in old_rows if r not in after),
        added_columns=tuple(c for c in new_columns if c not in old_columns),
        removed_columns=tuple(c for c in old_columns if c not in new_columns),
    )


def text_diff(old: bytes, new: bytes, *, before: str, after: str) -> list[str]:
    """A unified diff of two text versions (at most ``MAX_DIFF_LINES`` lines)."""
    lines = difflib.unified_diff(
        plain_text(old)[0].splitlines(),
        plain_text(new)[0].splitlines(),
        fromfile=before,
        tofile=after,
        lineterm="",
    )
    out = []
    for number, line in enumerate(lines):
        if number >= MAX_DIFF_LINES:
            out.append("… (diff cut)")
            break
        out.append(line)
    return out
