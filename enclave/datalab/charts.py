"""The report's charts as PNG bytes: the two groups' estimates with 95 % CI error bars, and the
balance (love) plot. Drawn from the evaluation's aggregates only.

Figures use matplotlib's Agg canvas directly, not pyplot, so no global figure state or
interactive backend is touched. PNGs carry no metadata: the same evaluation gives the same
bytes, so the report's hash is reproducible.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

TREATED_COLOUR = "#1d70b8"
COMPARISON_COLOUR = "#6f777b"
_GROUPS = ("Treatment group", "Comparison group")


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """An inline ``data:`` URI, so the report never loads anything from elsewhere."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def groups_chart(
    title: str,
    ylabel: str,
    means: tuple[float, float],
    intervals: tuple[tuple[float, float], tuple[float, float]],
) -> bytes:
    """Treatment and comparison bars with their 95 % CI error bars (a NaN bound, from a zero
    standard error, draws no bar)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0, 3.2), dpi=110)
    axes = figure.add_subplot()
    heights = np.asarray(means, dtype="float64")
    bounds = np.asarray(intervals, dtype="float64")
    errors = np.nan_to_num(np.abs(bounds.T - heights), nan=0.0)
    axes.bar(_GROUPS, heights, color=[TREATED_COLOUR, COMPARISON_COLOUR], width=0.55)
    axes.errorbar(_GROUPS, heights, yerr=errors, fmt="none", ecolor="black", capsize=6)
    axes.set_title(title, fontsize=10)
    axes.set_ylabel(ylabel)
    axes.set_ylim(0, max(float(np.nanmax(np.r_[heights, bounds.ravel()])), 1e-9) * 1.15)
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return _png(figure)


def balance_chart(
    covariates: Sequence[str],
    before: np.ndarray[Any, Any],
    after: np.ndarray[Any, Any],
    good: float,
    acceptable: float,
) -> bytes:
    """|SMD| before and after matching per covariate, with the good and acceptable lines. An
    infinite |SMD| (a constant covariate whose means differ) is drawn at the right edge."""
    from matplotlib.figure import Figure

    size_before = np.abs(np.asarray(before, dtype="float64"))
    size_after = np.abs(np.asarray(after, dtype="float64"))
    both = np.r_[size_before, size_after]
    finite = both[np.isfinite(both)]
    edge = max(float(finite.max(initial=0.0)), acceptable) * 1.1
    rows = np.arange(len(covariates))[::-1]
    figure = Figure(figsize=(6.0, 1.5 + 0.24 * len(covariates)), dpi=110)
    axes = figure.add_subplot()
    axes.scatter(np.minimum(size_before, edge), rows, marker="o", facecolors="none",
                 edgecolors=COMPARISON_COLOUR, label="before matching")  # fmt: skip
    axes.scatter(np.minimum(size_after, edge), rows, marker="o", color=TREATED_COLOUR,
                 label="after matching")  # fmt: skip
    axes.axvline(good, color="#00703c", linestyle="--", linewidth=1, label=f"{good:g} (good)")
    axes.axvline(acceptable, color="#d4351c", linestyle="--", linewidth=1,
                 label=f"{acceptable:g} (publication limit)")  # fmt: skip
    axes.set_yticks(rows, list(covariates), fontsize=7)
    axes.set_xlim(0, edge * 1.02)
    axes.set_xlabel("|standardised mean difference|")
    # above the axes: no dot can hide under it
    axes.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    figure.tight_layout()
    return _png(figure)
