"""docs/satre.md accounts for every mandatory SATRE v2.0.1 capability of pillars 1-4 (issue 12).

The page's tables are parsed and held to: exactly the 80 expected ids, once each, with our
classification; a status that fits the class; every ``met`` software or deployment row names a
test; every named test exists; the summary counts are the tables' own; relative links resolve.
The named tests are not run here (they run with the suite); they are found by parsing their
files, which is fast and imports nothing (several pull in JupyterHub, Playwright or Ansible).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "satre.md"


def _classed(klass: str, ids: str) -> dict[str, str]:
    return dict.fromkeys(ids.split(), klass)


# The 80 Mandatory and Mandatory* requirements of pillars 1-4 in SATRE v2.0.1 and our class
# for each (the table of ../shared/spec/satre.md, hard-coded: that file is not shipped).
EXPECTED: dict[str, str] = (
    _classed(
        "ORG",
        """1.1.01 1.1.02 1.1.03 1.2.01 1.2.02 1.2.04 1.2.05 1.2.06 1.2.07 1.2.08 1.2.09 1.2.10
        1.3.01 1.3.02 1.3.03 1.3.04 1.3.05 1.4.03 1.4.07 1.6.01 1.6.02 1.6.03 1.7.01 1.7.03
        2.1.09 2.3.01 2.3.04 2.5.01 2.6.04 3.1.01 3.1.09 3.1.17 3.2.02 4.4.01 4.5.01 4.6.01""",
    )
    | _classed(
        "SW",
        """1.4.01 1.4.02 1.4.04 1.5.01 1.5.02 1.5.03 1.5.04 1.5.05 1.5.06 1.6.04 1.7.02 2.1.01
        2.1.05 2.1.08 2.1.14 2.2.13 2.3.03 2.5.03 3.1.03 3.1.04 3.1.05 3.1.06 3.1.08 3.1.12
        3.2.01 3.2.03 3.2.04 3.3.04 3.3.05 3.3.07 4.3.01""",
    )
    | _classed(
        "DEP",
        """2.1.10 2.2.01 2.2.03 2.2.04 2.2.06 2.2.09 2.2.10 2.2.11 2.4.01 2.4.05 2.7.02 2.8.01
        2.8.02""",
    )
)

HEADER = ["ID", "Capability", "Class", "How the enclave meets it", "Evidence", "Status"]
ROW_ID = re.compile(r"\d\.\d\.\d\d")
NODE_ID = re.compile(r"`(tests/[\w/]+\.py(?:::\w+)+)`")
NOT_YET = re.compile(r"not yet: \S.*")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@dataclass(frozen=True)
class Row:
    id: str
    klass: str
    how: str
    evidence: tuple[str, ...]
    status: str

    @property
    def kind(self) -> str:
        """The status without its reason: met, not yet or organisational."""
        return self.status.split(":")[0]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@cache
def rows() -> tuple[Row, ...]:
    """Every row of a capability table (a table whose header is ``HEADER``)."""
    found: list[Row] = []
    in_table = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if cells == HEADER:
            in_table = True
        elif in_table and ROW_ID.fullmatch(cells[0]):
            assert len(cells) == len(HEADER), f"{cells[0]}: {len(cells)} cells, not 6"
            evidence = tuple(NODE_ID.findall(cells[4]))
            found.append(Row(cells[0], cells[2], cells[3], evidence, cells[5]))
    return tuple(found)


def summary() -> dict[str, dict[str, int]]:
    """The summary table: class -> {rows, met, not yet, organisational}."""
    text = DOC.read_text(encoding="utf-8")
    table: dict[str, dict[str, int]] = {}
    for line in text.split("## Summary", 1)[1].split("\n## ", 1)[0].splitlines():
        cells = _cells(line) if line.startswith("|") else []
        if cells and cells[0] in ("SW", "DEP", "ORG", "All"):
            rows_, met, not_yet, org = map(int, cells[1:5])
            table[cells[0]] = {
                "rows": rows_,
                "met": met,
                "not yet": not_yet,
                "organisational": org,
            }
    return table


@cache
def _defined(path: Path) -> frozenset[str]:
    """The dotted names of the test functions and classes a test file defines."""
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for inner in node.body:
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}.{inner.name}")
    return frozenset(names)


def _missing(node_id: str) -> str | None:
    """Why ``node_id`` names no test, or None when it does."""
    file, *parts = node_id.split("::")
    path = ROOT / file
    if not path.is_file():
        return f"{node_id}: no file {file}"
    if not parts[-1].startswith("test") or any(not p.startswith("Test") for p in parts[:-1]):
        return f"{node_id}: pytest would not collect this name"
    if ".".join(parts) not in _defined(path):
        return f"{node_id}: {file} defines no {'.'.join(parts)}"
    return None


def test_the_page_has_exactly_the_expected_ids_once_each() -> None:
    counts = Counter(row.id for row in rows())
    assert sorted(id_ for id_, n in counts.items() if n > 1) == []
    assert sorted(set(counts) - set(EXPECTED)) == [], "unexpected ids"
    assert sorted(set(EXPECTED) - set(counts)) == [], "missing ids"
    assert len(EXPECTED) == 80


def test_each_row_keeps_our_classification() -> None:
    wrong = {row.id: row.klass for row in rows() if row.klass != EXPECTED.get(row.id)}
    assert wrong == {}


def test_statuses_fit_the_class() -> None:
    for row in rows():
        assert row.how, f"{row.id}: says nothing about how it is met"
        if row.klass == "ORG":
            assert row.status == "organisational", row.id
        else:
            assert row.status == "met" or NOT_YET.fullmatch(row.status), (
                f"{row.id}: {row.status!r} is neither 'met' nor 'not yet: <reason>'"
            )


def test_every_met_software_or_deployment_row_names_a_test() -> None:
    met = [row for row in rows() if row.klass != "ORG" and row.kind == "met"]
    assert met, "no met rows parsed"
    assert [row.id for row in met if not row.evidence] == []


def test_every_named_test_exists() -> None:
    named = sorted({node for row in rows() for node in row.evidence})
    assert len(named) > 100, "the evidence column was not parsed"
    assert [why for node in named if (why := _missing(node))] == []


def test_the_evidence_column_holds_only_node_ids() -> None:
    """A typo in a node id must not make it silently unparsed (and so unchecked)."""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = _cells(line) if line.startswith("|") else []
        if len(cells) == len(HEADER) and ROW_ID.fullmatch(cells[0]):
            leftover = NODE_ID.sub("", cells[4]).replace("<br>", "").strip()
            assert leftover == "", f"{cells[0]}: not a node id: {leftover!r}"


def test_the_summary_is_the_tables_own() -> None:
    counted: dict[str, dict[str, int]] = {}
    for klass in ("SW", "DEP", "ORG"):
        mine = [row.kind for row in rows() if row.klass == klass]
        counted[klass] = {"rows": len(mine)} | {
            kind: mine.count(kind) for kind in ("met", "not yet", "organisational")
        }
    counted["All"] = {key: sum(c[key] for c in counted.values()) for key in counted["SW"]}
    assert summary() == counted


def test_the_summary_sentences_count_the_rows() -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    open_rows = sum(1 for row in rows() if row.klass != "ORG" and row.kind == "not yet")
    technical = sum(1 for row in rows() if row.klass != "ORG")
    verb = "is" if open_rows == 1 else "are"
    sentence = f"{open_rows} of the {technical} software and deployment rows {verb} not yet met"
    assert sentence in text, f"say: {sentence}"
    org = [row for row in rows() if row.klass == "ORG"]
    bare = sum(1 for row in org if "nothing in the product" in row.how)
    sentence = f"For {len(org) - bare} of the {len(org)} organisational rows the enclave keeps"
    assert sentence in text and f"the other {bare} say" in text, f"say: {sentence}"


@pytest.mark.parametrize(
    ("node_id", "reason"),
    [
        ("tests/nowhere/test_x.py::test_y", "no file"),
        ("tests/test_satre_conformance.py::test_no_such_thing", "defines no"),
        ("tests/test_satre_conformance.py::rows", "would not collect"),
        ("tests/test_satre_conformance.py::Row::test_kind", "would not collect"),
    ],
)
def test_a_missing_test_is_caught(node_id: str, reason: str) -> None:
    assert reason in (_missing(node_id) or "")
    assert _missing("tests/test_satre_conformance.py::test_a_missing_test_is_caught") is None


def test_relative_links_resolve() -> None:
    text = DOC.read_text(encoding="utf-8")
    targets = [t for t in LINK.findall(text) if "://" not in t]
    assert targets, "no links parsed"
    assert [t for t in targets if not (DOC.parent / t).exists()] == []
