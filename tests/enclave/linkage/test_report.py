"""The HTML quality report: a match-weight chart as inline SVG, quality tables, escaping."""

from __future__ import annotations

import re

import pandas as pd

from enclave.linkage.evaluate import Scores
from enclave.linkage.link import QualityPoint
from enclave.linkage.model import TrainedModel
from enclave.linkage.report import ReportData, render_report, weight_chart, weight_of
from enclave.linkage.settings import ComparisonSpec, LinkageSettings

SETTINGS = LinkageSettings(
    (ComparisonSpec("surname", "exact"),), (("surname",),), (), (("surname",),)
)
MODEL = TrainedModel(
    SETTINGS, 1e-4, ((("surname is NULL", None, None), ("Exact", 0.9, 0.01), ("Else", 0.1, 0.99)),)
)
HISTOGRAM = pd.DataFrame({"bin_start": [-8.0, -2.0, 5.0, 12.0], "pairs": [900, 40, 3, 120]})


def data(**changes: object) -> ReportData:
    values: dict[str, object] = {
        "title": "Linkage <quality> & report",
        "generated_at": "2026-06-15T12:00:00+00:00",
        "sources": {"health": 10, "justice <x>": 5},
        "model": MODEL,
        "pairs_scored": 1063,
        "histogram": HISTOGRAM,
        "bin_width": 1.0,
        "expected": [QualityPoint(0.5, 123, 0.99, 0.98, 0.985)],
        "clusters": pd.DataFrame(
            {
                "source": ["a", "b", "a"],
                "record_key": ["1", "1", "2"],
                "cluster_id": ["x", "x", "y"],
            }
        ),
        "timings": {"predict": 1.25},
    }
    values.update(changes)
    return ReportData(**values)  # type: ignore[arg-type]


def test_chart_has_one_bar_per_bin_and_threshold_lines() -> None:
    svg = weight_chart(HISTOGRAM, 1.0, {"p = 0.5": 0.0, "cluster p = 0.95": weight_of(0.95)})
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="bar"') == 4
    assert svg.count('stroke-dasharray="4 3"') == 2
    assert "12 to 13: 120 pairs" in svg
    assert abs(weight_of(0.95) - 4.2479) < 1e-3
    assert weight_chart(HISTOGRAM.iloc[:0], 1.0, {}) == "<p>No pairs were scored.</p>"


def test_report_escapes_text_and_shows_truth_only_when_known() -> None:
    page = render_report(data())
    assert "<title>Linkage &lt;quality&gt; &amp; report</title>" in page
    assert "justice &lt;x&gt;" in page and "<x>" not in page
    assert "True quality" not in page
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")
    assert re.search(r"<td>Exact</td><td>0.9</td><td>0.01</td><td>\+6.49</td>", page)
    with_truth = render_report(
        data(true_pairs={0.5: Scores(95, 1, 5)}, true_clusters=Scores(96, 0, 4))
    )
    assert "True quality" in with_truth and "0.9694" in with_truth  # F1 of TP 95, FP 1, FN 5
