"""A self-contained HTML risk-and-utility report of an anonymisation workflow.

The page holds only aggregates and variable names: the problem, the steps, risk before and
after (expected re-identifications, global risk, k-anonymity violations, threshold, household
risk), a histogram of individual risk, information loss, suppressions per key variable and the
verdict. No record-level value and no category label appears (category labels can be rare
values themselves), so the report can be released with the anonymised file. Charts are PNGs drawn
with matplotlib's Agg canvas and embedded as base64; there are no external assets.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from output_checker.manifest import atomic_write_bytes
from output_checker.microdata.problem import RiskTarget
from output_checker.microdata.risk.individual import RiskMeasures
from output_checker.microdata.workflow import (
    KANON_LEVELS,
    TreatmentResult,
    Workflow,
    WorkflowRisk,
)

_STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.2em .6em;"
    "text-align:right}th:first-child,td:first-child{text-align:left}"
    ".pass{color:#165e1a;font-weight:bold}.fail{color:#a10c0c;font-weight:bold}"
)


def _number(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if math.isnan(value):
        return "none (already safe)"
    return f"{value:.{digits}g}"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(figure: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="chart" src="data:image/png;base64,{data}">'


def _risk_histogram(before: np.ndarray, after: np.ndarray) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.2), dpi=96)
    axes = figure.add_subplot()
    top = max(float(np.max(before, initial=0.0)), float(np.max(after, initial=0.0)), 1e-12)
    bins = np.linspace(0.0, top, 31)
    axes.hist([before, after], bins=bins.tolist(), label=["before", "after"])
    axes.set_yscale("log")
    axes.set_xlabel("individual re-identification risk")
    axes.set_ylabel("records (log scale)")
    axes.legend()
    figure.tight_layout()
    return _png(figure)


def _suppression_chart(names: Sequence[str], counts: Sequence[int]) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.2), dpi=96)
    axes = figure.add_subplot()
    axes.bar(range(len(names)), counts)
    axes.set_xticks(range(len(names)), [str(n) for n in names], rotation=30, ha="right")
    axes.set_ylabel("values suppressed")
    figure.tight_layout()
    return _png(figure)


def _risk_rows(before: WorkflowRisk, after: WorkflowRisk) -> list[list[str]]:
    rows = [
        ["records", str(before.n), str(after.n)],
        [
            "expected re-identifications",
            _number(before.expected_reidentifications),
            _number(after.expected_reidentifications),
        ],
        ["global risk", _number(before.global_risk), _number(after.global_risk)],
        ["risk threshold", _number(before.measures.threshold), _number(after.measures.threshold)],
    ]
    for k in KANON_LEVELS:
        rows.append(
            [
                f"records violating {k}-anonymity",
                str(before.kanon_violations(k)),
                str(after.kanon_violations(k)),
            ]
        )
    if before.household_global_risk is not None:
        rows.append(
            [
                "household expected re-identifications",
                _number(before.measures.household_expected_reidentifications),
                _number(after.measures.household_expected_reidentifications),
            ]
        )
        rows.append(
            [
                "household global risk",
                _number(before.household_global_risk),
                _number(after.household_global_risk),
            ]
        )
    if after.d_risk is not None:
        rows.append(["numeric disclosure risk (dRisk, upper bound)", "–", _number(after.d_risk)])
    return rows


def render_report(
    workflow: Workflow,
    target: RiskTarget,
    result: TreatmentResult | None = None,
    title: str = "Microdata anonymisation report",
) -> str:
    """The report as an HTML string (risk before = the original data, after = current)."""
    problem = workflow.problem
    before = workflow.original_risk(target.max_global_risk)
    after = result.risk if result is not None else workflow.risk(target.max_global_risk)
    failures = target.check(after, weighted=problem.weight is not None)
    utility = workflow.utility()

    roles = [
        ("key variables", ", ".join(problem.keys)),
        ("numeric variables", ", ".join(problem.numeric) or "–"),
        ("weight", problem.weight or "–"),
        ("household id", problem.household or "–"),
        ("strata", problem.strata or "–"),
        ("sensitive variables", ", ".join(problem.sensitive) or "–"),
        ("alpha (weight of a missing key value)", _number(problem.alpha)),
        (
            "k-anonymity counted",
            "over the whole file"
            if workflow.sdcmicro_compatible or problem.strata is None
            else "within strata",
        ),
    ]
    steps = [[str(i), step.method, step.describe()] for i, step in enumerate(workflow.history, 1)]
    verdict = (
        '<p class="pass">The target holds.</p>'
        if not failures
        else '<p class="fail">The target does not hold:</p><ul>'
        + "".join(f"<li>{escape(f)}</li>" for f in failures)
        + "</ul>"
    )
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        "<h2>Target</h2>",
        _table(
            ["criterion", "value"],
            [
                ["k-anonymity", str(target.k)],
                ["maximal global risk", _number(target.max_global_risk)],
                ["maximal household risk", _number(target.max_household_risk)],
            ],
        ),
        verdict,
        "<h2>Problem</h2>",
        _table(["role", "variables"], roles),
        "<h2>Steps applied</h2>",
        _table(["#", "method", "parameters"], steps) if steps else "<p>No step applied.</p>",
        "<h2>Risk before and after</h2>",
        _table(["measure", "before", "after"], _risk_rows(before, after)),
        _risk_histogram(before.measures.individual, after.measures.individual),
    ]
    if after.ldiversity:
        parts.append("<h2>l-diversity of the sensitive variables (after)</h2>")
        parts.append(
            _table(
                [
                    "variable",
                    "min distinct l",
                    "min entropy l",
                    "min recursive l",
                    "records with one sensitive value",
                ],
                [
                    [
                        name,
                        _number(s["min_distinct"]),
                        _number(s["min_entropy"]),
                        _number(s["min_recursive"]),
                        _number(int(s["records_distinct_below_2"])),
                    ]
                    for name, s in after.ldiversity.items()
                ],
            )
        )
    parts.append("<h2>Information loss</h2>")
    keys = utility.keys
    parts.append(
        _table(
            [
                "key variable",
                "categories before",
                "categories after",
                "suppressions",
                "share of records recoded",
            ],
            [
                [name, before_n, after_n, supp, _number(share)]
                for name, before_n, after_n, supp, share in zip(
                    keys.index,
                    keys["categories_before"].tolist(),
                    keys["categories_after"].tolist(),
                    keys["suppressions"].tolist(),
                    keys["changed_share"].tolist(),
                    strict=True,
                )
            ],
        )
    )
    parts.append(
        _suppression_chart([str(n) for n in keys.index], [int(c) for c in keys["suppressions"]])
    )
    if utility.numeric is not None:
        u = utility.numeric
        parts.append(
            _table(
                ["numeric measure", "value"],
                [
                    ["IL1s (scaled absolute deviation)", _number(u.il1s)],
                    ["eigenvalue change", _number(u.eigen)],
                    ["relative change of means", _number(u.mean_change)],
                    ["relative change of correlations", _number(u.correlation_change)],
                    ["relative change of rank correlations", _number(u.spearman_change)],
                ],
            )
        )
    parts.append("</body></html>")
    return "".join(parts)


def write_report(path: str | Path, html: str) -> None:
    """Write the report atomically (temporary file in the same folder, then rename)."""
    atomic_write_bytes(path, html.encode("utf-8"))


def _spread(values: np.ndarray) -> dict[str, float]:
    """min, quartiles, 90/99 % quantiles, max and mean: never a value per record."""
    v = np.asarray(values, dtype=float)
    q = np.quantile(v, [0.25, 0.5, 0.75, 0.9, 0.99])
    return {
        "min": float(v.min()),
        "q25": float(q[0]),
        "median": float(q[1]),
        "q75": float(q[2]),
        "q90": float(q[3]),
        "q99": float(q[4]),
        "max": float(v.max()),
        "mean": float(v.mean()),
    }


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def risk_summary(measures: RiskMeasures) -> dict[str, Any]:
    """JSON-ready aggregates of ``measure_risk``'s result (no per-record values)."""
    out: dict[str, Any] = {
        "n": len(measures.fk),
        "fk": _spread(measures.fk),
        "Fk": _spread(measures.Fk),
        "individual_risk": _spread(measures.individual),
        "kanon_violations": {str(k): measures.kanon_violations(k) for k in KANON_LEVELS},
        "expected_reidentifications": measures.expected_reidentifications,
        "global_risk": measures.global_risk,
        "global_risk_pct": measures.global_risk_pct,
        "max_global_risk": measures.max_global_risk,
        # null when the file already meets max_global_risk (sdcMicro's NA)
        "threshold": _finite(measures.threshold),
        "records_higher_risk": measures.n_higher_risk,
    }
    if measures.household_risk is not None:
        out["household"] = {
            "risk": _spread(measures.household_risk),
            "expected_reidentifications": measures.household_expected_reidentifications,
            "global_risk": measures.household_global_risk,
            "global_risk_pct": measures.household_global_risk_pct,
        }
    return out
