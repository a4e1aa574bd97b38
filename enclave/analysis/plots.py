"""Plots drawn only from checked, protected numbers: histograms from checked bin counts, bar
charts from a protected frequency table, Kaplan-Meier curves from the protected step table.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, so the notebook's own
backend and figures are untouched). The PNG is recorded next to the table it was drawn from,
and its record names that table's hash (spec §7, §8).
"""

from __future__ import annotations

import copy
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from enclave.analysis.context import (
    Context,
    Made,
    add_entity,
    checked_table,
    command,
    find_source,
    require_rows,
    table_provenance,
)
from enclave.analysis.errors import AnalysisError
from enclave.analysis.outputs import OutputFile
from enclave.analysis.recipes import provenance_of
from output_checker import CheckerError

WITHHELD_HATCH = "///"


@dataclass(frozen=True, eq=False)
class CheckedPlot:
    """A plot as it would be released: its PNG bytes and the protected table behind it.
    Jupyter shows the PNG itself, so the researcher sees exactly what is recorded."""

    name: str
    png: bytes
    table: pd.DataFrame
    status: str

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        return f"<CheckedPlot {self.name}: {self.status}, {len(self.png)} bytes of PNG>"


def _figure(title: str | None, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    axes = figure.add_subplot()
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    return figure, axes


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # no metadata: the same plot gives the same bytes, so its hash is reproducible
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def png_file(png: bytes, table_file: OutputFile) -> OutputFile:
    """The PNG's output file: the table's record, bound to the PNG's bytes and naming the
    table it was drawn from."""
    record = copy.deepcopy(table_file.record) if table_file.record is not None else None
    if record is not None:
        record["output"] = {
            "format": "png",
            "sha256": hashlib.sha256(png).hexdigest(),
            "table_sha256": table_file.sha256,
        }
    return OutputFile("plot", "png", png, record, None)


def draw_histogram(
    edges: np.ndarray[Any, Any],
    counts: np.ndarray[Any, Any],
    withheld: np.ndarray[Any, Any],
    *,
    title: str | None,
    xlabel: str,
) -> bytes:
    """Bars of the checked counts; withheld bins are outlined and hatched, with no height."""
    figure, axes = _figure(title, xlabel, "units")
    widths = np.diff(edges)
    heights = np.where(withheld, 0, counts)
    axes.bar(edges[:-1], heights, width=widths, align="edge", edgecolor="black")
    top = max(float(heights.max(initial=0)), 1.0)
    for left, width in zip(edges[:-1][withheld], widths[withheld], strict=True):
        axes.bar(left, top * 0.05, width=width, align="edge", fill=False, hatch=WITHHELD_HATCH)
    if withheld.any():
        axes.text(0.99, 0.97, "hatched: withheld (too few units)", transform=axes.transAxes,
                  ha="right", va="top", fontsize=8)  # fmt: skip
    return _png(figure)


def draw_bars(table: pd.DataFrame, *, title: str | None, xlabel: str) -> bytes:
    """Grouped bars of a protected count table (rows on the x axis, one series per column);
    suppressed cells are hatched outlines with no height."""
    figure, axes = _figure(title, xlabel, "units")
    values = table.astype("float64").to_numpy()
    n_rows, n_cols = values.shape
    width = 0.8 / max(n_cols, 1)
    positions = np.arange(n_rows)
    finite = values[np.isfinite(values)]
    marker = max(float(finite.max(initial=0)), 1.0) * 0.05
    for j in range(n_cols):
        column = values[:, j]
        hidden = ~np.isfinite(column)
        x = positions + (j - (n_cols - 1) / 2) * width
        label = str(table.columns[j]) if n_cols > 1 else None
        axes.bar(x, np.where(hidden, 0, column), width=width, label=label)
        if hidden.any():
            axes.bar(x[hidden], marker, width=width, fill=False, hatch=WITHHELD_HATCH)
    axes.set_xticks(positions, [str(label) for label in table.index], rotation=30, ha="right")
    if n_cols > 1:
        axes.legend(title=str(table.columns.name or ""), fontsize=8)
    if not np.isfinite(values).all():
        axes.text(0.99, 0.97, "hatched: suppressed", transform=axes.transAxes,
                  ha="right", va="top", fontsize=8)  # fmt: skip
    figure.tight_layout()
    return _png(figure)


def draw_survival(
    protected: pd.DataFrame, group: str | None, *, title: str | None, xlabel: str
) -> bytes:
    """Kaplan-Meier step curves of the protected table only (merged steps, truncated tails)."""
    figure, axes = _figure(title, xlabel, "survival")
    curves: Mapping[Any, pd.DataFrame] = (
        dict(tuple(protected.groupby("group", sort=True))) if group is not None
        else {None: protected}
    )  # fmt: skip
    for label, steps in curves.items():
        times = np.r_[0.0, steps["time"].to_numpy(dtype=float)]
        survival = np.r_[1.0, steps["survival"].to_numpy(dtype=float)]
        axes.step(times, survival, where="post", label=None if label is None else str(label))
    axes.set_ylim(0, 1.05)
    if group is not None:
        axes.legend(title=group, fontsize=8)
    return _png(figure)


def hist(
    ctx: Context,
    data: pd.DataFrame,
    column: str,
    bins: Any = 10,
    *,
    entity: Any = None,
    title: str | None = None,
    name: str = "histogram",
) -> Made:
    """A histogram of ``column`` drawn from checked bin counts. Give explicit, fixed bin
    edges: a number of bins puts the data's minimum and maximum on the axis and fails."""
    from output_checker.histogram import check_histogram

    if not isinstance(data, pd.DataFrame):
        raise AnalysisError("hist needs a pandas DataFrame")
    if column not in data.columns:
        raise AnalysisError(f"column {column!r} is not in the data")
    require_rows(data)
    source = find_source(ctx, {column: data[column]}, table=False)
    frame, unit = add_entity(ctx, data, entity, source)
    try:
        result = check_histogram(
            frame, column, bins, entity=unit, conventions=ctx.conventions,
            parameters=ctx.parameters,
        )  # fmt: skip
    except CheckerError as error:
        raise AnalysisError(str(error)) from None
    table = result.table()
    csv = OutputFile("table", "csv", table.to_csv(index=False).encode(), result.to_dict())
    withheld = result.bin_status > 0
    png = draw_histogram(result.edges, result.counts, withheld, title=title, xlabel=column)
    shown = table.assign(count=table["count"].where(~withheld)).astype({"count": "Int64"})
    plot = CheckedPlot(name, png, shown, result.status.label)
    call = command("hist", column=column, bins=bins if isinstance(bins, int) else "edges")
    provenance = provenance_of(source, table=False)
    return Made(plot, (csv, png_file(png, csv)), provenance, "hist", call)


def bar(
    ctx: Context,
    data: pd.DataFrame,
    column: str,
    by: str | None = None,
    *,
    entity: Any = None,
    title: str | None = None,
    name: str = "bar",
) -> Made:
    """A bar chart of the counts of ``column`` (grouped by ``by``), drawn from the protected
    frequency table: suppressed cells are drawn as hatched outlines."""
    if not isinstance(data, pd.DataFrame):
        raise AnalysisError("bar needs a pandas DataFrame")
    used = [column, *([by] if by else [])]
    missing = [c for c in used if c not in data.columns]
    if missing:
        raise AnalysisError(f"column(s) not in the data: {', '.join(map(repr, missing))}")
    require_rows(data)
    source = find_source(ctx, {c: data[c] for c in used}, table=True)
    frame, unit = add_entity(ctx, data, entity, source)
    _, table, csv = checked_table(
        ctx, frame, index=[column], columns=[by] if by else [], values=None, aggfunc=None,
        entity=unit, margins=False, source=source, label="table",
    )  # fmt: skip
    png = draw_bars(table, title=title, xlabel=column)
    assert csv.record is not None
    plot = CheckedPlot(name, png, table, str(csv.record["status"]))
    call = command("bar", column=column, by=by)
    return Made(plot, (csv, png_file(png, csv)), table_provenance(source), "bar", call)
