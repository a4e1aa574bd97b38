"""Plain-language summaries of checker records: which rules fired, why, and what was done.

Pure functions of the manifest record (``output_checker`` ``to_dict()``), so what the
researcher reads is derived from exactly what the reviewer will see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_INTERVALS = 5

_TABLE_RULES: dict[str, str] = {
    "threshold": "had fewer than {threshold} contributing units",
    "nk": "were dominated by their largest one or two contributors",
    "p_percent": "would let the second-largest contributor estimate the largest to within "
    "{p_percent:g}%",
    "class_disclosure": "held more than {share:g}% of their row or column (nearly everyone in "
    "a group shares the attribute)",
    "zero": "were empty (a reviewer judges whether an empty cell discloses something)",
    "missing": "contain missing values",
    "negative": "have negative contributions",
    "quantile": "show a percentile resting on too few units, or one unit's own value",
    "extreme": "show a minimum or maximum that is one unit's own value",
    "dof": "rest on too few degrees of freedom",
}
_MODEL_CHECKS: dict[str, str] = {
    "dof": "too few residual degrees of freedom",
    "sample_size": "too few observations",
    "level_count": "a category of a regressor or of the outcome has too few units",
    "saturation": "too many parameters for the number of observations",
    "lookup": "the model reproduces the data exactly",
    "unit_level": "unit-level quantities (residuals, predictions) are never released",
}
_NEXT_STEP = {
    "fail": "it will not be released as it is: merge categories or change the request, or "
    "ask for an exception with add_exception(name, reason).",
    "review": "a reviewer will judge it; add a comment with add_comments(name, text).",
}


_QUIET = ("nothing needed suppressing", "all ", "every model check passes")
_ORDER = ("pass", "review", "fail")


def _lines(record: Mapping[str, Any]) -> list[str]:
    kind = record.get("kind")
    if kind == "table":
        return _table(record)
    if kind == "model":
        return _model(record)
    if kind == "histogram":
        return _histogram(record)
    if kind == "survival":
        return _survival(record)
    return [f"{note}" for note in record.get("notes", [])]


def _protected(record: Mapping[str, Any]) -> bool:
    suppression = record.get("suppression") if record.get("kind") == "table" else None
    return isinstance(suppression, Mapping) and bool(suppression.get("suppressed"))


def summarise(
    name: str, method: str, records: Sequence[tuple[str, Mapping[str, Any]]], provenance: str
) -> str:
    """A few lines for the researcher: the verdict, the rules that fired and why, what was
    done, the next step, and where the numbers came from. ``records`` are the checked files
    of one output with their labels; for several, only the files with something to say are
    listed."""
    statuses = [str(record["status"]) for _, record in records] or ["review"]
    status = max(statuses, key=_ORDER.index)
    head = f"{name} ({method}): {status.upper()}"
    if any(_protected(record) for _, record in records):
        head += " after protection" if status == "pass" else " even after protection"
    if len(records) == 1:
        body = [f"  - {line}" for line in _lines(records[0][1])]
    else:
        head += f" ({len(records)} tables)"
        body = []
        for label, record in records:
            said = [line for line in _lines(record) if not line.startswith(_QUIET)]
            body += [f"  - {label}: {line}" for line in said]
        if not body:
            body = [f"  - all {len(records)} tables pass every rule"]
    out = [head, *body]
    if status in _NEXT_STEP:
        out.append(f"  next: {_NEXT_STEP[status]}")
    out.append(f"  source: {provenance}")
    return "\n".join(out)


def _cells(n: int) -> str:
    return f"{n} cell" + ("" if n == 1 else "s")


def _label(cell: Mapping[str, Any]) -> str:
    labels = [*cell["index"], *cell["columns"]]
    return "(" + ", ".join(str(x) for x in labels) + ")"


def _table(record: Mapping[str, Any]) -> list[str]:
    params = record["parameters"]
    words = {
        "threshold": params["threshold"],
        "p_percent": params["p_percent"],
        "share": 100 * params["class_share"],
    }
    lines = []
    for rule, counts in record["rules"].items():
        n_fail, n_review = int(counts.get("fail", 0)), int(counts.get("review", 0))
        text = _TABLE_RULES.get(rule, f"were flagged by rule {rule}").format(**words)
        if n_fail:
            lines.append(f"{_cells(n_fail)} {text} ({rule}: fail)")
        if n_review:
            lines.append(f"{_cells(n_review)} {text} ({rule}: review)")
        if counts.get("note"):
            lines.append(str(counts["note"]))
    lines += [str(note) for note in record.get("notes", [])]
    suppression = record.get("suppression")
    if isinstance(suppression, Mapping):
        lines += _suppression(record, suppression)
    elif not lines:
        lines.append(f"all {_cells(len(record['cells']))} pass every rule")
    return lines


def _suppression(record: Mapping[str, Any], suppression: Mapping[str, Any]) -> list[str]:
    n = int(suppression.get("suppressed") or 0)
    if not n:
        return ["nothing needed suppressing"]
    primary = len(suppression.get("primary") or [])
    secondary = len(suppression.get("secondary") or [])
    if secondary:
        text = (
            f"{_cells(primary)} suppressed because they fail, and {secondary} more so that "
            "they cannot be worked out from the totals, which stay true"
        )
    elif primary:
        text = f"{_cells(primary)} suppressed because they fail"
    else:
        text = f"{_cells(n)} suppressed ({suppression.get('reason', '')})"
    lines = [text]
    shown = [c for c in record["cells"] if c.get("suppressed") and c.get("interval")]
    if shown:
        parts = [
            f"{_label(c)} in [{c['interval'][0] + 0.0:g}, {c['interval'][1] + 0.0:g}]"
            for c in shown[:MAX_INTERVALS]
        ]
        more = f" and {len(shown) - MAX_INTERVALS} more" if len(shown) > MAX_INTERVALS else ""
        lines.append("what anyone can infer about suppressed cells: " + "; ".join(parts) + more)
    if record["status"] != "pass" and suppression.get("reason"):
        lines.append(str(suppression["reason"]))
    return lines


def _model(record: Mapping[str, Any]) -> list[str]:
    model = record.get("model", {})
    lines = [f"N = {model.get('nobs')}, parameters = {model.get('k')}, "
             f"residual df = {model.get('df_resid')}"]  # fmt: skip
    for check, result in record.get("checks", {}).items():
        if result.get("status") != "pass":
            why = _MODEL_CHECKS.get(check, check)
            lines.append(f"{why}: {result.get('reason', '')} ({check}: {result['status']})")
    lines += [str(note) for note in record.get("notes", [])]
    if len(lines) == 1:
        lines.append("every model check passes")
    return lines


def _histogram(record: Mapping[str, Any]) -> list[str]:
    bins = record.get("bins", [])
    failing = [b for b in bins if b.get("status") == "fail"]
    threshold = record["parameters"]["threshold"]
    lines = []
    if failing:
        lines.append(
            f"{len(failing)} of {len(bins)} bins have fewer than {threshold} units: they are "
            "drawn as withheld; wider bins would make them releasable"
        )
    lines += [str(note) for note in record.get("notes", [])]
    return lines or [f"all {len(bins)} bins pass"]


def _survival(record: Mapping[str, Any]) -> list[str]:
    summary = str(record.get("summary", ""))
    lines = [summary.split(": ", 1)[-1]] if summary else []
    return lines + [str(note) for note in record.get("notes", [])]
