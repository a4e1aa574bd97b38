"""How files are shown, without the web: checker records matched to the cells of the CSV the
checker wrote (one-way, two-way and multi-level tables), markdown sanitised against XSS,
and diffs between versions."""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from output_checker import check_table
from output_checker.queue.web.diff import table_diff, text_diff
from output_checker.queue.web.render import (
    MARKDOWN_TAGS,
    markdown_html,
    number_text,
    suppression_summary,
    table_grid,
)
from tests.output_checker.queue.factories import dataset_frame


@pytest.mark.parametrize(
    ("index", "columns", "values"),
    [
        (["region", "age"], [], None),
        (["region", "age"], ["sex"], None),
        (["region"], ["sex", "age"], None),
        (["region", "age"], ["sex"], "stay"),
    ],
)
def test_every_flagged_cell_of_the_record_is_found_in_the_file(
    index: list[str], columns: list[str], values: str | None
) -> None:
    result = check_table(
        dataset_frame(), index, columns or None, values=values, aggfunc="mean" if values else None
    )
    record = result.to_dict()
    grid = table_grid(result.to_frame().to_csv().encode(), record)
    wanted = [c for c in record["cells"] if c["status"] in ("fail", "review")]
    assert wanted and all(cell.shown for cell in grid.flagged)
    assert len(grid.flagged) == len(wanted)
    marked = [cell for row in grid.rows for cell in row if cell.status]
    assert len(marked) == len(wanted)
    for cell in marked:
        assert cell.note  # the rule and the evidence, for the hover text
    assert any("threshold" in cell.note for cell in marked if cell.status == "fail")


def test_a_file_the_record_does_not_describe_is_shown_plain_and_the_flags_listed() -> None:
    result = check_table(dataset_frame(), ["region", "age"])
    grid = table_grid(b"a,b\n1,2\n", result.to_dict())
    assert [[c.text for c in row] for row in grid.rows] == [["a", "b"], ["1", "2"]]
    assert not any(c.status for row in grid.rows for c in row)
    assert grid.flagged and not any(cell.shown for cell in grid.flagged)


def test_protected_tables_carry_intervals() -> None:
    result = check_table(dataset_frame(), ["region", "age"], ["sex"], margins=True, protect=True)
    record = result.to_dict()
    grid = table_grid(result.to_frame().to_csv().encode(), record)
    suppressed = [c for row in grid.rows for c in row if c.suppressed]
    assert len(suppressed) == record["suppression"]["suppressed"]
    assert all("audit interval" in c.note for c in suppressed)
    summary = suppression_summary(record)
    assert summary is not None and summary["method"] == "exact"
    assert len(summary["intervals"]) == len(suppressed)
    assert suppression_summary({"suppression": None}) is None


# Any text but a byte-order mark (which a CSV's first bytes may carry and the reader drops).
cells = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\ufeff"),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(cells, min_size=1, max_size=5), min_size=1, max_size=8))
def test_any_csv_is_shown_cell_for_cell(rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    grid = table_grid(out.getvalue().encode())
    expected = list(rows)
    while expected and not any(c.strip() for c in expected[-1]):
        expected.pop()  # trailing blank rows are dropped
    assert [[cell.text for cell in row] for row in grid.rows] == expected


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        "[x](javascript:alert(1))",
        '<img src=x onerror="alert(1)">',
        "![x](http://evil.example/pixel.png)",
        '<a href="javascript:alert(1)">x</a>',
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "<iframe src=//evil.example></iframe>",
        '<div style="background:url(javascript:alert(1))">x</div>',
    ],
)
def test_markdown_cannot_carry_script_or_load_anything(attack: str) -> None:
    html = str(markdown_html(f"Hello\n\n{attack}\n\n**still here**"))
    assert "<strong>still here</strong>" in html
    elements = _elements(html)
    assert {tag for tag, _ in elements} <= MARKDOWN_TAGS, html
    for tag, attributes in elements:
        for name, value in attributes:
            assert name in ("href", "title", "rel"), (tag, name, html)
            if name == "href":
                assert (value or "").startswith(("http://", "https://", "mailto:")), html


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def _elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element of ``html`` as the browser's parser would see it, with its attributes."""
    collector = _Collector()
    collector.feed(html)
    return collector.found


def test_markdown_keeps_safe_links_marked_noopener() -> None:
    html = str(markdown_html("[docs](https://example.org/a)"))
    assert 'href="https://example.org/a"' in html and "noopener" in html and "nofollow" in html


def test_table_diff_is_keyed_by_labels() -> None:
    old = b"region,count\neast,50\nwest,40\n"
    new = b"region,count\nwest,40\neast,55\nnorth,10\n"
    diff = table_diff(old, new)
    assert [(c.row, c.column, c.before, c.after) for c in diff.changed] == [
        ("east", "count", "50", "55")
    ]
    assert diff.added_rows == ("north",) and not diff.removed_rows
    assert table_diff(old, old).unchanged


def test_text_diff_is_unified() -> None:
    lines = text_diff(b"a\nb\n", b"a\nc\n", before="v1", after="v2")
    assert lines[:2] == ["--- v1", "+++ v2"] and "-b" in lines and "+c" in lines


def test_numbers_are_shown_compactly() -> None:
    assert [number_text(v) for v in (3.0, 0.1234567, 7, None, "x")] == [
        "3",
        "0.123457",
        "7",
        "",
        "x",
    ]
