"""How the review pages show a file: a CSV as a grid whose cells carry the checker's verdict,
markdown made safe, text and JSON as plain text. Pure: bytes and the manifest record in,
plain values out (the templates escape them).

A table's cells are matched to the manifest record's cells by their row and column labels,
using the record's ``request`` to know how many leading columns are row labels and how many
header rows name the columns (the layout ``TableResult.to_frame().to_csv()`` writes). A file
the record does not describe is still shown, unhighlighted, and every flagged cell of the
record is listed under it, so nothing the checker found depends on a match.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

MAX_ROWS = 5_000  # OpenSAFELY's row limit for CSV outputs: larger ones are cut, and say so
MAX_TEXT_CHARS = 200_000
# What a sanitised markdown fragment may contain: text structure and links, nothing that runs
# or loads anything (no images: they would fetch from wherever the author points them).
MARKDOWN_TAGS = frozenset(
    {"p", "br", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a", "hr"}
    | {f"h{level}" for level in range(1, 7)}
)
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).disable("image")

Key = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class GridCell:
    """One cell as shown: ``status`` is the checker's (``fail``/``review``, empty if it
    passed or is not in the record); ``note`` is the hover text (rules and evidence)."""

    text: str
    header: bool = False
    status: str = ""
    suppressed: bool = False
    note: str = ""


@dataclass(frozen=True)
class FlaggedCell:
    """A cell the checker did not pass, or that protection suppressed, for the list under
    the table."""

    label: str
    value: str
    status: str
    rules: tuple[str, ...]
    note: str
    suppressed: bool
    interval: tuple[str, str] | None
    shown: bool  # whether it was found (and highlighted) in the file


@dataclass(frozen=True)
class Grid:
    """A CSV ready to render."""

    rows: tuple[tuple[GridCell, ...], ...]
    truncated: bool
    flagged: tuple[FlaggedCell, ...]


def label_text(value: Any) -> str:
    """A record label as pandas writes it into a CSV (None as empty, 2020.0 as 2020)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def number_text(value: Any) -> str:
    """A number for people: integers without ``.0``, others to 6 significant digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return label_text(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.6g}"
    return str(int(value))


def read_csv(data: bytes, limit: int = MAX_ROWS) -> tuple[list[list[str]], bool]:
    """The rows of a CSV (trailing blank rows dropped) and whether more than ``limit`` data
    rows were cut off. Undecodable bytes are replaced, never fatal."""
    text = data.decode("utf-8-sig", errors="replace")
    rows: list[list[str]] = []
    truncated = False
    try:
        for row in csv.reader(io.StringIO(text, newline="")):
            if len(rows) > limit:
                truncated = True
                break
            rows.append(row)
    except csv.Error:  # a malformed line: show what came before it
        truncated = True
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()
    return rows, truncated


def _layout(record: Mapping[str, Any] | None) -> tuple[int, int]:
    """(row-label columns, column-label levels) from the record's request."""
    request = record.get("request") if record else None
    if not isinstance(request, Mapping):
        return 0, 0
    index, columns = request.get("index"), request.get("columns")
    return (
        len(index) if isinstance(index, list) else 0,
        len(columns) if isinstance(columns, list) else 0,
    )


def _key(cell: Mapping[str, Any]) -> Key:
    return (
        tuple(label_text(x) for x in cell.get("index") or []),
        tuple(label_text(x) for x in cell.get("columns") or []),
    )


def _rules_note(cell: Mapping[str, Any], rules: Mapping[str, Any]) -> str:
    parts = []
    checks = cell.get("checks") or {}
    for rule in cell.get("rules_failed") or []:
        check = checks.get(rule) if isinstance(checks, Mapping) else None
        numbers = ""
        if isinstance(check, Mapping):
            numbers = ", ".join(f"{k}={number_text(v)}" for k, v in check.items() if k != "status")
        about = rules.get(rule, {}).get("description", "") if isinstance(rules, Mapping) else ""
        status = check.get("status", "") if isinstance(check, Mapping) else ""
        text = f"{rule} {status}".strip()
        if about:
            text += f" ({about})"
        if numbers:
            text += f": {numbers}"
        parts.append(text)
    evidence = cell.get("evidence")
    if isinstance(evidence, Mapping) and evidence:
        shown = ", ".join(f"{k}={_evidence_value(v)}" for k, v in evidence.items())
        parts.append(f"evidence: {shown}")
    return "; ".join(parts)


def _evidence_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(number_text(v) for v in value) + "]"
    return number_text(value)


def _interval(cell: Mapping[str, Any]) -> tuple[str, str] | None:
    interval = cell.get("interval")
    if isinstance(interval, list) and len(interval) == 2:
        return number_text(interval[0]), number_text(interval[1])
    return None


def _note(cell: Mapping[str, Any], rules: Mapping[str, Any]) -> str:
    note = _rules_note(cell, rules)
    if cell.get("suppressed"):
        kind = "primary" if cell.get("primary") else "secondary"
        suppressed = f"suppressed ({kind})"
        if (interval := _interval(cell)) is not None:
            suppressed += f", audit interval [{interval[0]}, {interval[1]}]"
        note = f"{suppressed}; {note}" if note else suppressed
    return note


def _cell_label(key: Key) -> str:
    rows, columns = key
    label = " / ".join(rows) or "(table)"
    return f"{label} × {' / '.join(columns)}" if columns else label


def _column_labels(rows: Sequence[Sequence[str]], depth: int, position: int) -> tuple[str, ...]:
    if depth == 0:
        return ()
    return tuple(
        rows[level][position] if position < len(rows[level]) else "" for level in range(depth)
    )


def table_grid(data: bytes, record: Mapping[str, Any] | None = None) -> Grid:
    """A CSV as a grid, its cells marked with the record's verdicts where the labels match.

    ``record`` is the checker's manifest record (kind ``table``) or None (no highlighting,
    as for the author's side, which never receives the record).
    """
    rows, truncated = read_csv(data)
    cells = [c for c in (record or {}).get("cells") or [] if isinstance(c, Mapping)]
    rules = (record or {}).get("rules") or {}
    by_key: dict[Key, Mapping[str, Any]] = {_key(c): c for c in cells}
    index_width, column_depth = _layout(record)
    header_rows = column_depth + 1 if column_depth >= 2 else 1
    if not by_key:
        index_width, header_rows = 0, 1
    found: set[Key] = set()
    grid: list[tuple[GridCell, ...]] = []
    for number, row in enumerate(rows):
        if number < header_rows:
            grid.append(tuple(GridCell(text, header=True) for text in row))
            continue
        labels = tuple(row[:index_width])
        out = [GridCell(text, header=True) for text in row[:index_width]]
        for position in range(index_width, len(row)):
            key = (labels, _column_labels(rows, column_depth, position))
            match = by_key.get(key) if index_width else None
            if match is None:
                out.append(GridCell(row[position]))
                continue
            found.add(key)
            status = str(match.get("status", ""))
            out.append(
                GridCell(
                    row[position],
                    status=status if status in ("fail", "review") else "",
                    suppressed=bool(match.get("suppressed")),
                    note=_note(match, rules),
                )
            )
        grid.append(tuple(out))
    flagged = tuple(
        FlaggedCell(
            label=_cell_label(key),
            value=number_text(cell.get("value")),
            status=str(cell.get("status", "")),
            rules=tuple(str(r) for r in cell.get("rules_failed") or []),
            note=_note(cell, rules),
            suppressed=bool(cell.get("suppressed")),
            interval=_interval(cell),
            shown=key in found,
        )
        for key, cell in by_key.items()
        if cell.get("status") in ("fail", "review") or cell.get("suppressed")
    )
    return Grid(tuple(grid), truncated, flagged)


def markdown_html(text: str) -> Markup:
    """Markdown as HTML that is safe to embed: raw HTML in the source is escaped by the
    parser, and the result is sanitised again (nh3) down to ``MARKDOWN_TAGS``, with links
    only to http(s) and mailto and marked ``noopener noreferrer nofollow``."""
    html = _MARKDOWN.render(text)
    clean = nh3.clean(
        html,
        tags=set(MARKDOWN_TAGS),
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(clean)  # safe: sanitised just above


def plain_text(data: bytes, limit: int = MAX_TEXT_CHARS) -> tuple[str, bool]:
    """A file as text (bad bytes replaced) and whether it was cut at ``limit`` characters."""
    text = data.decode("utf-8", errors="replace")
    return text[:limit], len(text) > limit


def json_text(data: bytes) -> tuple[str, bool]:
    """A JSON file pretty-printed (or as it is, if it does not parse), and whether cut."""
    text, cut = plain_text(data)
    if cut:
        return text, cut
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False), False
    except ValueError:
        return text, False


def suppression_summary(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a protected table's record says about its protection (None if unprotected):
    status, reason, method, the number of suppressed cells, and each suppressed cell with
    its audit interval (the narrowest range an attacker can put it in)."""
    suppression = (record or {}).get("suppression")
    if not isinstance(suppression, Mapping):
        return None
    cells = [c for c in (record or {}).get("cells") or [] if isinstance(c, Mapping)]
    intervals = [
        {
            "cell": _cell_label(_key(cell)),
            "kind": "primary" if cell.get("primary") else "secondary",
            "interval": _interval(cell),
        }
        for cell in cells
        if cell.get("suppressed")
    ]
    return {
        "status": label_text(suppression.get("status")),
        "reason": label_text(suppression.get("reason")),
        "method": label_text(suppression.get("method")),
        "suppressed": label_text(suppression.get("suppressed")),
        "intervals": intervals,
    }
