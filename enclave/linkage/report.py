"""The linkage quality report: one self-contained HTML page (pure: data in, text out).

It shows the sources, the match-weight distribution of scored pairs as an inline SVG chart
(no scripts, nothing fetched), model-based expected precision and recall, the true precision,
recall and F1 when a truth is known (synthetic data), the clusters formed, the trained
parameters and the settings. Only counts and parameters appear, never a record.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from enclave.linkage.evaluate import Scores
from enclave.linkage.link import QualityPoint
from enclave.linkage.model import TrainedModel

WIDTH, HEIGHT, PAD = 720, 280, 48


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows."""

    title: str
    generated_at: str
    sources: Mapping[str, int]
    model: TrainedModel
    pairs_scored: int
    histogram: pd.DataFrame  # bin_start, pairs
    bin_width: float
    expected: Sequence[QualityPoint]
    clusters: pd.DataFrame  # source, record_key, cluster_id
    timings: Mapping[str, float]
    true_pairs: Mapping[float, Scores] | None = None
    true_clusters: Scores | None = None


def weight_of(probability: float) -> float:
    """The match weight (log2 Bayes factor) of a match probability."""
    return math.log2(probability / (1 - probability))


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def weight_chart(histogram: pd.DataFrame, width: float, marks: Mapping[str, float]) -> str:
    """An SVG bar chart of pairs per match-weight bin (log-scaled counts), with a dashed
    line at each of ``marks`` (label -> weight)."""
    if histogram.empty:
        return "<p>No pairs were scored.</p>"
    lo = float(histogram["bin_start"].min())
    hi = float(histogram["bin_start"].max()) + width
    for weight in marks.values():
        lo, hi = min(lo, weight), max(hi, weight)
    top = math.log10(1 + float(histogram["pairs"].max()))
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x(weight: float) -> float:
        return PAD + (weight - lo) / (hi - lo) * plot_w

    def y(count: float) -> float:
        return HEIGHT - PAD - math.log10(1 + count) / top * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="match weight distribution">',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#333"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>',
    ]
    bar_w = max(plot_w * width / (hi - lo) - 1, 1)
    for start, count in zip(histogram["bin_start"], histogram["pairs"], strict=True):
        top_y = y(float(count))
        parts.append(
            f'<rect class="bar" x="{x(float(start)):.1f}" y="{top_y:.1f}" width="{bar_w:.1f}" '
            f'height="{HEIGHT - PAD - top_y:.1f}" fill="#3b6ea5">'
            f"<title>{_e(f'{start:g} to {start + width:g}: {int(count):,} pairs')}</title></rect>"
        )
    for power in range(int(top) + 1):
        ty = y(10**power)
        parts.append(
            f'<text x="{PAD - 6}" y="{ty + 4:.1f}" font-size="11" text-anchor="end">'
            f"{10**power:,}</text>"
        )
    step = max(1, round((hi - lo) / 10))
    tick = math.ceil(lo / step) * step
    while tick <= hi:
        parts.append(
            f'<text x="{x(tick):.1f}" y="{HEIGHT - PAD + 16}" font-size="11" '
            f'text-anchor="middle">{tick:g}</text>'
        )
        tick += step
    for label, weight in marks.items():
        parts.append(
            f'<line x1="{x(weight):.1f}" y1="{PAD}" x2="{x(weight):.1f}" y2="{HEIGHT - PAD}" '
            f'stroke="#b33" stroke-dasharray="4 3"/>'
            f'<text x="{x(weight) + 4:.1f}" y="{PAD + 12}" font-size="11" fill="#b33">'
            f"{_e(label)}</text>"
        )
    parts.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" font-size="12" text-anchor="middle">'
        "match weight (log2 Bayes factor)</text>"
        f'<text x="14" y="{HEIGHT / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {HEIGHT / 2})">pairs (log scale)</text></svg>'
    )
    return "".join(parts)


def cluster_summary(clusters: pd.DataFrame) -> list[tuple[int, int]]:
    """(records in a cluster, how many clusters have that many), ascending."""
    sizes = clusters.groupby("cluster_id").size().value_counts().sort_index()
    return [(int(k), int(v)) for k, v in zip(sizes.index, sizes.to_numpy(), strict=True)]


def _scores_rows(scores: Mapping[str, Scores]) -> list[list[object]]:
    return [
        [
            label,
            f"{s.true_positives:,}",
            f"{s.false_positives:,}",
            f"{s.false_negatives:,}",
            f"{s.precision:.4f}",
            f"{s.recall:.4f}",
            f"{s.f1:.4f}",
        ]
        for label, s in scores.items()
    ]


def render_report(data: ReportData) -> str:
    """The report as an HTML document."""
    s = data.model.settings
    cut = s.cluster_threshold
    marks = {"p = 0.5": 0.0}
    if 0 < cut < 1:
        marks[f"cluster p = {cut:g}"] = weight_of(cut)
    sections = [
        f"<h1>{_e(data.title)}</h1><p>Generated {_e(data.generated_at)}.</p>",
        "<h2>Sources</h2>",
        _table(["source", "records"], [[k, f"{v:,}"] for k, v in data.sources.items()]),
        f"<p>{data.pairs_scored:,} pairs scored at match probability &ge; "
        f"{s.predict_threshold:g}; prior (probability two random records match) "
        f"{data.model.probability_two_random_records_match:.3g}.</p>",
        "<h2>Match-weight distribution</h2>",
        weight_chart(data.histogram, data.bin_width, marks),
        "<h2>Expected quality (from the model, no truth needed)</h2>",
        _table(
            ["threshold", "pairs", "precision", "recall", "F1"],
            [
                [
                    f"{q.threshold:g}",
                    f"{q.pairs:,}",
                    f"{q.precision:.4f}",
                    f"{q.recall:.4f}",
                    f"{q.f1:.4f}",
                ]
                for q in data.expected
            ],
        ),
        "<p>Expected precision is the mean match probability of accepted pairs; expected "
        "recall counts only pairs the blocking rules produced, so it is an upper bound.</p>",
    ]
    if data.true_pairs is not None or data.true_clusters is not None:
        rows: dict[str, Scores] = {
            f"pairs at p >= {t:g}": sc for t, sc in (data.true_pairs or {}).items()
        }
        if data.true_clusters is not None:
            rows[f"clusters at p >= {cut:g}"] = data.true_clusters
        sections += [
            "<h2>True quality (against the known truth)</h2>",
            _table(["measure", "TP", "FP", "FN", "precision", "recall", "F1"], _scores_rows(rows)),
        ]
    sections += [
        "<h2>Clusters</h2>",
        f"<p>{data.clusters['cluster_id'].nunique():,} clusters of "
        f"{len(data.clusters):,} records.</p>",
        _table(
            ["records in cluster", "clusters"],
            [[k, f"{v:,}"] for k, v in cluster_summary(data.clusters)],
        ),
        "<h2>Model parameters</h2>",
    ]
    for spec, levels in zip(s.comparisons, data.model.levels, strict=True):
        rows_p = []
        for label, m, u in levels:
            weight = f"{math.log2(m / u):+.2f}" if m and u else ""
            rows_p.append([label, _fmt(m), _fmt(u), weight])
        sections += [
            f"<h3>{_e(spec.column)} ({_e(spec.method)})</h3>",
            _table(["level", "m", "u", "match weight"], rows_p),
        ]
    sections += [
        "<h2>Timings</h2>",
        _table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in data.timings.items()]),
        "<h2>Settings</h2>",
        f"<pre>{_e(json.dumps(s.to_dict(), indent=2))}</pre>",
    ]
    style = (
        "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;margin:0.5rem 0}td,th{border:1px solid #ccc;"
        "padding:0.2rem 0.5rem;text-align:right}th{background:#eee}"
        "pre{background:#f6f6f6;padding:0.5rem;overflow:auto}"
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(data.title)}</title><style>{style}</style></head><body>"
        + "".join(sections)
        + "</body></html>"
    )


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
