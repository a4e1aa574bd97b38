"""Re-run the checker's table rules on the evidence a manifest record carries.

The researcher's session computed verdicts; the server never trusts them. A table record
keeps, per shown cell, the evidence the rules read (contributor counts, totals, the largest
contributions, ties), so the server lays that evidence out as a table and calls the checker's
own rules (``output_checker.rules.RULES``) with the project's parameters: no rule is written a
second time. Where the record lacks what a rule needs (weighted evidence, enough top
contributions, totals with an entity, the ties of a mode), that rule's cells are sent to
review, never passed. The evidence itself is only as honest as the session that wrote it;
binding it to the data is the recipe's job (``recipes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from output_checker import registry
from output_checker.aggregation import Aggregation
from output_checker.columns import ALL, TableRequest
from output_checker.errors import CheckerError
from output_checker.evidence import CellEvidence
from output_checker.parameters import Parameters
from output_checker.rules import RULES
from output_checker.status import Status
from output_checker.table import LaidTable

Key = tuple[tuple[Any, ...], tuple[Any, ...]]


@dataclass(frozen=True)
class EvidenceVerdict:
    """The server's verdict from a record's evidence, and why."""

    status: Status
    summary: str
    notes: tuple[str, ...]


def _key(cell: Mapping[str, Any]) -> Key:
    return tuple(cell["index"]), tuple(cell["columns"])


def _request(record: Mapping[str, Any]) -> TableRequest:
    spec = record["request"]
    return TableRequest(
        index=tuple(spec["index"]),
        columns=tuple(spec["columns"]),
        values=spec["values"],
        aggregation=Aggregation.parse(spec["aggfunc"]),
        entity=spec["entity"],
        weights=spec["weights"],
        margins=bool(spec["margins"]),
        hierarchical=bool(spec["hierarchical"]),
    )


def _synthetic_totals(cells: list[dict[str, Any]], request: TableRequest) -> list[dict[str, Any]]:
    """Row, column and grand totals summed from the inner cells: exact for contributor counts
    when every row is its own unit (no entity), which is all class disclosure reads."""
    all_index, all_columns = (ALL,) * len(request.index), (ALL,) * len(request.columns)
    sums: dict[Key, list[int]] = {}
    for cell in cells:
        index, columns = _key(cell)
        targets = [(all_index, columns)]
        if request.columns:
            targets += [(index, all_columns), (all_index, all_columns)]
        for target in targets:
            counts = sums.setdefault(target, [0, 0, 0])
            evidence = cell["evidence"]
            counts[0] += int(evidence["n_rows"])
            counts[1] += int(evidence["n_nonmissing"])
            counts[2] += int(evidence["n_entities"])
    return [
        {
            "index": list(index),
            "columns": list(columns),
            "value": None,
            "evidence": {"n_rows": rows, "n_nonmissing": nonmissing, "n_entities": entities},
            "checks": {},
        }
        for (index, columns), (rows, nonmissing, entities) in sums.items()
    ]


def _totals_positions(
    keys: Sequence[Key], request: TableRequest
) -> tuple[np.ndarray[Any, np.dtype[np.intp]], np.ndarray[Any, np.dtype[np.intp]], bool]:
    """Per cell, the position of its row total and column total (-1 if it has none), and
    whether every total a cell should have is present."""
    where = {key: pos for pos, key in enumerate(keys)}
    all_index, all_columns = (ALL,) * len(request.index), (ALL,) * len(request.columns)
    row_total = np.full(len(keys), -1, dtype=np.intp)
    col_total = np.full(len(keys), -1, dtype=np.intp)
    complete = True
    for pos, (index, columns) in enumerate(keys):
        if any(label != ALL for label in columns):
            found = where.get((index, all_columns))
            complete &= found is not None
            row_total[pos] = -1 if found is None else found
        if any(label != ALL for label in index):
            found = where.get((all_index, columns))
            complete &= found is not None
            col_total[pos] = -1 if found is None else found
    return row_total, col_total, complete


def _ties(cells: Sequence[Mapping[str, Any]], rule: str) -> np.ndarray[Any, Any] | None:
    values = [cell.get("checks", {}).get(rule, {}).get("ties") for cell in cells]
    if any(not isinstance(v, int | float) or isinstance(v, bool) for v in values):
        return None
    return np.asarray(values, dtype=np.int64)


def _evidence(cells: Sequence[Mapping[str, Any]], has_values: bool, depth: int) -> CellEvidence:
    n = len(cells)
    ev = [cell["evidence"] for cell in cells]

    def ints(name: str) -> np.ndarray[Any, np.dtype[np.int64]]:
        return np.asarray([int(e.get(name) or 0) for e in ev], dtype=np.int64)

    def floats(name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.asarray([np.nan if e.get(name) is None else e[name] for e in ev], np.float64)

    top = np.zeros((n, depth))
    if has_values:
        for pos, e in enumerate(ev):
            kept = [0.0 if x is None else float(x) for x in e.get("top", [])][:depth]
            top[pos, : len(kept)] = kept
    total = np.nan_to_num(floats("total")) if has_values else np.zeros(n)
    n_nonmissing = ints("n_nonmissing")
    value = np.asarray(
        [np.nan if c.get("value") is None else float(c["value"]) for c in cells], np.float64
    )
    value_sum = np.nan_to_num(value) * n_nonmissing
    return CellEvidence(
        n_rows=ints("n_rows"),
        n_nonmissing=n_nonmissing,
        n_entities=ints("n_entities"),
        n_negative=ints("n_negative") if has_values else np.zeros(n, np.int64),
        total=total,
        weighted_total=total,
        top=top,
        top_weight=np.ones((n, depth)),
        minimum=floats("min") if has_values else np.full(n, np.nan),
        maximum=floats("max") if has_values else np.full(n, np.nan),
        value_sum=value_sum,
        weighted_value_sum=value_sum,
        weight_sum=n_nonmissing.astype(np.float64),
    )


def _unevaluable(
    rule_ids: Sequence[str],
    request: TableRequest,
    cells: Sequence[Mapping[str, Any]],
    params: Parameters,
    totals_complete: bool,
) -> dict[str, str]:
    """Rules the record does not carry enough evidence for, with the reason."""
    missing: dict[str, str] = {}
    depth = params.nk_depth
    short_top = request.values is not None and any(
        len(cell["evidence"].get("top") or []) < depth for cell in cells
    )
    for rule in rule_ids:
        if rule in ("nk", "p_percent"):
            if request.weights is not None:
                missing[rule] = "weighted evidence is not in the manifest"
            elif short_top:
                missing[rule] = f"the manifest keeps fewer than {depth} top contributions"
        elif rule == "class_disclosure":
            if request.aggregation.name == "mode":
                missing[rule] = "the manifest does not carry a mode's ties"
            elif not totals_complete:
                missing[rule] = "totals are neither shown nor derivable (entity given)"
        elif rule in ("quantile", "extreme") and _ties(cells, rule) is None:
            missing[rule] = "the manifest does not carry the ties"
    return missing


def recheck_table_record(record: Mapping[str, Any], params: Parameters) -> EvidenceVerdict:
    """The verdict of the checker's rules, run with ``params`` on the record's evidence.

    ``record`` must be a validated manifest record of kind ``table``. Returns the worst
    status over the shown cells (suppressed cells excluded, but then at least ``review``:
    the server does not re-audit a suppression pattern) with a one-line summary.
    """
    try:
        request = _request(record)
        shown = [dict(cell) for cell in record["cells"]]
    except (KeyError, TypeError, CheckerError) as error:
        note = f"the manifest's table request cannot be read ({type(error).__name__})"
        return EvidenceVerdict(Status.REVIEW, f"review: {note}", (note,))
    output_type = registry.output_type_of(request.aggregation)
    rule_ids = registry.rules_for(output_type, params.conventions)
    notes: list[str] = []
    floor = Status.PASS
    if rule_ids is None:
        notes.append(f"no rules are registered for output type {output_type!r}")
        floor, rule_ids = Status.REVIEW, ()
    cells = list(shown)
    keys = [_key(cell) for cell in cells]
    row_total, col_total, complete = _totals_positions(keys, request)
    wants_totals = "class_disclosure" in rule_ids and request.aggregation.name != "mode"
    if wants_totals and not complete and request.entity is None and not request.margins:
        cells += _synthetic_totals(shown, request)
        keys = [_key(cell) for cell in cells]
        row_total, col_total, complete = _totals_positions(keys, request)
    missing = _unevaluable(rule_ids, request, cells, params, complete)
    try:
        table = _laid_table(request, cells, keys, row_total, col_total, params)
    except (KeyError, TypeError, ValueError) as error:
        note = f"the manifest's evidence is incomplete ({type(error).__name__})"
        return EvidenceVerdict(Status.REVIEW, f"review: {note}", (note,))
    n_shown = len(shown)
    statuses = np.zeros(n_shown, dtype=np.int8)
    counts: dict[str, tuple[int, int]] = {}
    for rule in rule_ids:
        if rule in missing:
            status = np.full(n_shown, Status.REVIEW, dtype=np.int8)
            notes.append(f"{rule} not re-evaluated: {missing[rule]}")
        else:
            try:
                status = RULES[rule](table, params).status[:n_shown]
            except Exception as error:  # a rule that cannot be evaluated never passes
                status = np.full(n_shown, Status.REVIEW, dtype=np.int8)
                notes.append(f"{rule} could not be evaluated ({type(error).__name__})")
        statuses = np.maximum(statuses, status)
        counts[rule] = (int((status == Status.FAIL).sum()), int((status == Status.REVIEW).sum()))
    if record.get("suppression") is not None:
        published = np.asarray([not cell.get("suppressed", False) for cell in shown], dtype=bool)
        statuses = statuses[published]
        notes.append("the suppression pattern was not re-audited by the server")
        floor = max(floor, Status.REVIEW)
    worst = Status(int(statuses.max())) if statuses.size else Status.PASS
    verdict = max(worst, floor)
    return EvidenceVerdict(verdict, _summary(verdict, counts, notes, n_shown), tuple(notes))


def _laid_table(
    request: TableRequest,
    cells: Sequence[Mapping[str, Any]],
    keys: Sequence[Key],
    row_total: np.ndarray[Any, np.dtype[np.intp]],
    col_total: np.ndarray[Any, np.dtype[np.intp]],
    params: Parameters,
) -> LaidTable:
    """The cells as a one-column grid: rules read evidence, values, totals and ties only."""
    n = len(cells)
    has_values = request.values is not None
    evidence = _evidence(cells, has_values, params.nk_depth)
    ties_rule = (
        "quantile"
        if request.aggregation.name == "quantile"
        else "extreme"
        if request.aggregation.name in ("min", "max")
        else None
    )
    ties = _ties(cells, ties_rule) if ties_rule else None
    index_rows = np.arange(n, dtype=np.intp)
    is_total = np.asarray([ALL in (*index, *columns) for index, columns in keys], dtype=bool)
    return LaidTable(
        request=request,
        row_labels=[(*index, *columns) for index, columns in keys],
        col_labels=[()],
        row_keys=index_rows.reshape(n, 1),
        col_keys=np.zeros((1, 0), dtype=np.intp),
        sizes=[n],
        cell_row=index_rows,
        cell_col=np.zeros(n, dtype=np.intp),
        is_total=is_total,
        shown=np.ones(n, dtype=bool),
        row_total=row_total,
        col_total=col_total,
        evidence=evidence,
        value=np.asarray(
            [np.nan if c.get("value") is None else float(c["value"]) for c in cells], np.float64
        ),
        ties=ties,
        structural_zero=np.zeros(n, dtype=bool),
    )


def _summary(
    status: Status, counts: Mapping[str, tuple[int, int]], notes: Sequence[str], shown: int
) -> str:
    parts = [
        f"{rule}: {fail} fail" + (f", {review} review" if review else "")
        if fail
        else f"{rule}: {review} review"
        for rule, (fail, review) in counts.items()
        if fail or review
    ]
    if not parts and not notes:
        return f"{status.label}: all {shown} cells pass"
    return f"{status.label}: " + "; ".join([*parts, *notes])
