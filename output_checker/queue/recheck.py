"""The server's own verdict on an output, from the submitted evidence, never the session's.

Five paths, best first:

1. **A recipe** (``recipes``): the table is re-derived from the project's data by this
   process, with the project's parameters. Its numbers must equal the submitted file's, else
   the output is marked ``does_not_match`` (and ``fail``); if they match it is ``matches`` and
   the verdict is the re-derived table's.
2. **A table record without a recipe**: the checker's rules are re-run on the record's
   evidence (``evidence_recheck``) and the file's numbers must equal the record's cells; the
   numbers are not tied to the data, so the output is ``not_machine_checkable``.
3. **A model record**: the model checks are re-run on the record's evidence (N, k, residual
   degrees of freedom, R², level counts) with the project's parameters; the model is not
   re-fitted, so the output is ``not_machine_checkable``.
4. **A record-level file** (output type ``microdata``): the project's microdata policy is
   applied to the file itself (``output_checker.record_level``): ``fail`` when it does not
   hold, else ``review``.
5. **Anything else** (other record kinds, free-form files): ``not_machine_checkable`` and at
   least ``review``; a verdict the session recorded can only make it worse, never better.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from output_checker.errors import CheckerError
from output_checker.models import recheck_record as recheck_model_record
from output_checker.parameters import Parameters
from output_checker.queue.evidence_recheck import recheck_table_record
from output_checker.queue.recipes import Recipe, derive_from, published, recipe_frame
from output_checker.queue.workflow import CheckStatus, Recheck
from output_checker.record_level import RECORD_LEVEL, check_records, parse_records
from output_checker.results import TableResult
from output_checker.status import Status

RELATIVE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Derived:
    """A table the server re-made from its recipe: the recipe's rows and the checked table."""

    recipe: Recipe
    frame: pd.DataFrame
    result: TableResult


@dataclass(frozen=True)
class Verdict:
    """What the server established about one output; ``derived`` when it re-made the table
    (for the differencing audit, never stored), then the audit's report and the hash of the
    output's stored ledger cells (``service.ledger``)."""

    status: CheckStatus
    recheck: Recheck
    summary: str
    derived: Derived | None = None
    ledger_report: dict[str, Any] | None = None
    ledger_sha256: str | None = None


def _status(status: Status) -> CheckStatus:
    return CheckStatus(status.label)


def _cell(text: str) -> float | str:
    stripped = text.strip()
    if stripped in ("", "<NA>", "nan", "NaN"):
        return math.nan
    try:
        return float(stripped)
    except ValueError:
        return stripped


def _same(a: float | str, b: float | str) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12)
    return a == b


def csv_difference(expected: str, submitted: bytes) -> str:
    """Compare two CSV tables cell by cell (numbers with a relative tolerance of 1e-9);
    return "" when they agree, else where they first differ (never the values)."""
    try:
        theirs = list(csv.reader(io.StringIO(submitted.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error):
        return "the file is not readable as CSV"
    ours = list(csv.reader(io.StringIO(expected)))
    theirs = [row for row in theirs if row]
    ours = [row for row in ours if row]
    if len(ours) != len(theirs):
        return f"the file has {len(theirs)} lines where {len(ours)} were expected"
    for line, (want, got) in enumerate(zip(ours, theirs, strict=True), start=1):
        if len(want) != len(got):
            return f"line {line} has {len(got)} fields where {len(want)} were expected"
        for field, (a, b) in enumerate(zip(want, got, strict=True), start=1):
            if not _same(_cell(a), _cell(b)):
                return f"line {line}, field {field} differs"
    return ""


def record_frame(record: Mapping[str, Any]) -> pd.DataFrame:
    """The table a table record describes, laid out as the checker writes it (rows by index
    labels, columns by column labels, suppressed cells missing)."""
    request = record["request"]
    cells = record["cells"]
    rows = list(dict.fromkeys(tuple(c["index"]) for c in cells))
    cols = list(dict.fromkeys(tuple(c["columns"]) for c in cells))
    where = {(tuple(c["index"]), tuple(c["columns"])): c for c in cells}
    values = np.full((len(rows), len(cols)), np.nan)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            cell = where.get((row, col))
            if cell is not None and cell["value"] is not None and not cell.get("suppressed"):
                values[i, j] = cell["value"]
    index = pd.MultiIndex.from_tuples(rows, names=request["index"])
    if request["columns"]:
        columns: pd.Index = pd.MultiIndex.from_tuples(cols, names=request["columns"])
    else:
        columns = pd.Index([record.get("statistic", request["aggfunc"])])
    frame = pd.DataFrame(values, index=index, columns=columns)
    if record.get("statistic") == "count" and request.get("weights") is None:
        suppressed = any(c.get("suppressed") for c in cells)
        frame = frame.astype("Int64" if suppressed or np.isnan(values).any() else np.int64)
    if len(request["index"]) == 1:
        frame.index = frame.index.get_level_values(0)
    if len(request["columns"]) == 1:
        frame.columns = frame.columns.get_level_values(0)
    return frame


def _from_recipe(
    content: bytes, filetype: str, recipe: Recipe, parameters: Parameters, data_dir: Path
) -> Verdict:
    try:
        frame = recipe_frame(recipe, data_dir)
        result = derive_from(recipe, frame, parameters)
    except CheckerError as error:
        reason = f"re-derivation failed: {error}"
        return Verdict(CheckStatus.FAIL, Recheck.DOES_NOT_MATCH, f"fail: {reason}")
    except Exception as error:  # the data cannot make this table: never vouch for it
        reason = f"re-derivation failed ({type(error).__name__})"
        return Verdict(CheckStatus.FAIL, Recheck.DOES_NOT_MATCH, f"fail: {reason}")
    if filetype != "csv":
        return Verdict(
            CheckStatus.FAIL,
            Recheck.DOES_NOT_MATCH,
            "fail: a recipe's output must be the table as CSV",
        )
    difference = csv_difference(published(recipe, result).to_csv(), content)
    if difference:
        summary = f"fail: the numbers do not match the data ({difference})"
        return Verdict(CheckStatus.FAIL, Recheck.DOES_NOT_MATCH, summary)
    rounded = f", rounded to base {recipe.round}" if recipe.round else ""
    summary = f"{result.summary()} (re-derived from {recipe.dataset}{rounded})"
    return Verdict(_status(result.status), Recheck.MATCHES, summary, Derived(recipe, frame, result))


def _from_table_record(
    content: bytes, filetype: str, record: Mapping[str, Any], parameters: Parameters
) -> Verdict:
    verdict = recheck_table_record(record, parameters)
    status, summary = verdict.status, verdict.summary
    if filetype == "csv":
        try:
            difference = csv_difference(record_frame(record).to_csv(), content)
        except (KeyError, TypeError, ValueError) as error:
            difference = f"the record's table cannot be laid out ({type(error).__name__})"
        if difference:
            status = Status.FAIL
            summary = f"fail: the file's numbers are not the manifest's ({difference})"
    else:
        status = max(status, Status.REVIEW)
        summary += "; the file is not the CSV the record describes"
    summary += "; numbers not re-derived from the data (no recipe)"
    return Verdict(_status(status), Recheck.NOT_MACHINE_CHECKABLE, summary)


def _from_model_record(record: Mapping[str, Any], parameters: Parameters) -> Verdict:
    # the session's own fail is believed; its pass never is
    claimed = Status.FAIL if record.get("status") == "fail" else Status.PASS
    try:
        result = recheck_model_record(record, parameters)
    except CheckerError as error:
        status = max(claimed, Status.REVIEW)
        return Verdict(_status(status), Recheck.NOT_MACHINE_CHECKABLE, f"{status.label}: {error}")
    status = max(claimed, result.status)
    summary = result.summary() + "; model not re-fitted to the data (evidence from the record)"
    return Verdict(_status(status), Recheck.NOT_MACHINE_CHECKABLE, summary)


def recheck_output(
    content: bytes,
    filetype: str,
    record: Mapping[str, Any] | None,
    recipe: Recipe | None,
    parameters: Parameters,
    data_dir: Path,
) -> Verdict:
    """The server's verdict on one output file (see the module docstring).

    ``record`` must already be validated (``output_checker.manifest.validate``) and bound to
    ``content`` by its sha256; ``data_dir`` is the project's data directory.
    """
    if recipe is not None:
        return _from_recipe(content, filetype, recipe, parameters, data_dir)
    if record is not None and record.get("kind") == "table":
        return _from_table_record(content, filetype, record, parameters)
    if record is not None and record.get("kind") == "model":
        return _from_model_record(record, parameters)
    if record is not None and record.get("output_type") == RECORD_LEVEL:
        return _from_record_level(content, filetype, parameters)
    claimed = Status.REVIEW
    if record is not None and record.get("status") == "fail":
        claimed = Status.FAIL  # the session's own fail is believed; its pass never is
    what = f"a {record['kind']} record" if record is not None else "a free-form file"
    return Verdict(
        _status(claimed),
        Recheck.NOT_MACHINE_CHECKABLE,
        f"{claimed.label}: {what} cannot be checked by the server; people must judge it",
    )


def _from_record_level(content: bytes, filetype: str, parameters: Parameters) -> Verdict:
    try:
        status, reason = check_records(parse_records(content, filetype), parameters)
    except CheckerError as error:
        status, reason = Status.FAIL, f"record-level output refused: {error}"
    return Verdict(_status(status), Recheck.NOT_MACHINE_CHECKABLE, f"{status.label}: {reason}")
