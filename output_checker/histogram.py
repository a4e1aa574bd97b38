"""Histogram bin counts and their disclosure check (spec §8, §12.1, §12.3).

A histogram is a frequency table of its bins. The checker bins the data itself (evidence, not
trust), counting distinct entities per bin, and checks each bin with the threshold rule. Bin
edges must come from a fixed grid: edges derived from the data's minimum and maximum publish
those extremes, so an integer ``bins`` (numpy's "that many bins between min and max") fails.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt
import pandas as pd

from output_checker import api
from output_checker.errors import InputError
from output_checker.parameters import Parameters
from output_checker.results import envelope, json_scalar
from output_checker.status import Status, StatusArray

DATA_EDGES_REASON = (
    "bin edges derived from the data's extremes reveal min and max; give explicit edges"
)
OUTSIDE_NOTE = "values outside the bin edges are not drawn (n_below, n_above in the evidence)"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class HistogramResult:
    """The verdict on one histogram.

    ``edges`` has one more entry than ``counts``; bin i is ``[edges[i], edges[i+1])``, the last
    bin closed on the right (numpy's convention). ``counts`` are distinct entities per bin
    (rows when no entity is named); ``n_rows`` the rows behind them. ``bin_status`` is each
    bin's verdict and ``status`` the output's, which also fails when the edges came from the
    data.
    """

    status: Status
    edges: FloatArray
    counts: IntArray
    n_rows: IntArray
    bin_status: StatusArray
    parameters: Parameters
    request: dict[str, Any]
    evidence: dict[str, Any]
    notes: tuple[str, ...] = ()
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    @property
    def edges_from_data(self) -> bool:
        return bool(self.evidence["edges_from_data"])

    def table(self) -> pd.DataFrame:
        """The bin table as it would be released with the graph: left, right, count."""
        return pd.DataFrame(
            {"left": self.edges[:-1], "right": self.edges[1:], "count": self.counts}
        )

    def output_sha256(self) -> str:
        """SHA-256 of the bin table as CSV."""
        return hashlib.sha256(self.table().to_csv(index=False).encode()).hexdigest()

    def summary(self) -> str:
        """One line a researcher can act on."""
        n_fail = int((self.bin_status == Status.FAIL).sum())
        parts = []
        if n_fail:
            parts.append(
                f"{n_fail} of {self.counts.size} bins have fewer than "
                f"{self.parameters.threshold} units"
            )
        if self.edges_from_data:
            parts.append(DATA_EDGES_REASON)
        if not parts:
            parts.append(f"all {self.counts.size} bins pass")
        return f"{self.status.label}: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The results manifest record (kind "histogram")."""
        failing = self.bin_status == Status.FAIL
        bins = [
            {
                "left": json_scalar(self.edges[i]),
                "right": json_scalar(self.edges[i + 1]),
                "count": int(self.counts[i]),
                "status": Status(int(self.bin_status[i])).label,
                "rules_failed": ["threshold"] if failing[i] else [],
                "evidence": {"n_rows": int(self.n_rows[i]), "n_entities": int(self.counts[i])},
            }
            for i in range(self.counts.size)
        ]
        return {
            **envelope(
                "histogram",
                "histogram",
                self.status,
                self.summary(),
                self.notes,
                self.created,
                self.parameters,
            ),
            "request": dict(self.request),
            "rules": {
                "threshold": {
                    "description": f"fewer than {self.parameters.threshold} units in a bin",
                    "fail": int(failing.sum()),
                },
                "fixed_edges": {
                    "description": "bin edges must come from a fixed grid",
                    "status": (Status.FAIL if self.edges_from_data else Status.PASS).label,
                },
            },
            "edges": [json_scalar(e) for e in self.edges],
            "bins": bins,
            "evidence": {k: json_scalar(v) for k, v in self.evidence.items()},
            "output": {"format": "csv", "sha256": self.output_sha256()},
        }


def check_histogram(
    data: pd.DataFrame,
    column: str,
    bins: Sequence[float] | int,
    *,
    entity: str | None = None,
    conventions: str = "default",
    parameters: Parameters | None = None,
) -> HistogramResult:
    """Bin ``column`` and check every bin count.

    ``bins`` is an increasing sequence of edges (a fixed grid) or, numpy-style, a number of
    bins between the data's minimum and maximum; the latter is computed but fails, since its
    outer edges are the extremes. A bin counts the distinct ``entity`` values (rows if none)
    with a value in it; missing values are not counted and values outside the edges are not
    drawn (both recorded as evidence).

    Canonical: a bin with 0 < n < T fails and empty bins pass. ACRO mode: every bin with
    n < T fails, empty bins included.

    Raises:
        InputError: missing or non-numeric column, bad ``bins``, an entity column with missing
            values, or an integer ``bins`` with no value to take extremes from.
        ParameterError: invalid parameters or conventions.
    """
    params = api.resolve_parameters(conventions, parameters)
    values, entity_codes, n_missing = _prepare(data, column, entity)
    from_data = _is_count(bins)
    edges = _edges(bins, values)
    below, above = values < edges[0], values > edges[-1]
    inside = ~(below | above)
    x = values[inside]
    n_bins = edges.size - 1
    # [e_i, e_{i+1}) with the last bin closed, as numpy.histogram draws it
    bin_of = np.minimum(np.searchsorted(edges, x, side="right") - 1, n_bins - 1)
    n_rows = np.bincount(bin_of, minlength=n_bins).astype(np.int64)
    if entity_codes is None:
        counts = n_rows
    else:
        # one (bin, entity) pair per person and bin, however many rows they have there
        n_entities = int(entity_codes.max(initial=-1)) + 1
        pairs = np.unique(bin_of.astype(np.int64) * n_entities + entity_codes[inside])
        counts = np.bincount(pairs // n_entities, minlength=n_bins).astype(np.int64)

    t = params.threshold
    unsafe = counts < t if params.conventions == "acro" else (counts > 0) & (counts < t)
    bin_status = np.where(unsafe, Status.FAIL, Status.PASS).astype(np.int8)
    notes: list[str] = []
    if from_data:
        notes.append(DATA_EDGES_REASON)
    if below.any() or above.any():
        notes.append(OUTSIDE_NOTE)
    if params.conventions == "acro":
        notes.append(f"ACRO mode: every bin with fewer than {t} units fails, empty bins included")
    status = Status.FAIL if from_data or unsafe.any() else Status.PASS
    evidence = {
        "n_rows": int(values.size) + n_missing,
        "n_missing": n_missing,
        "n_below": int(below.sum()),
        "n_above": int(above.sum()),
        "edges_from_data": from_data,
    }
    request = {
        "column": column,
        "bins": int(bins) if _is_count(bins) else "edges",
        "entity": entity,
    }
    return HistogramResult(
        status=status,
        edges=edges,
        counts=counts,
        n_rows=n_rows,
        bin_status=bin_status,
        parameters=params,
        request=request,
        evidence=evidence,
        notes=tuple(notes),
    )


def _is_count(bins: object) -> TypeGuard[int | np.integer[Any]]:
    return isinstance(bins, int | np.integer) and not isinstance(bins, bool | np.bool_)


def _prepare(
    data: pd.DataFrame, column: str, entity: str | None
) -> tuple[FloatArray, IntArray | None, int]:
    """Non-missing values, their entity codes (or None) and the number of missing values."""
    if not isinstance(data, pd.DataFrame):
        raise InputError("histogram data must be a pandas DataFrame")
    missing = [c for c in (column, entity) if c is not None and c not in data.columns]
    if missing:
        raise InputError(f"column(s) not in the data: {', '.join(map(repr, missing))}")
    series = data[column]
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        raise InputError(f"histogram column {column!r} must be numeric")
    raw = series.to_numpy(dtype=np.float64, na_value=np.nan)
    present = ~np.isnan(raw)
    codes: IntArray | None = None
    if entity is not None:
        entity_codes, _ = pd.factorize(data[entity])
        if (entity_codes < 0).any():
            raise InputError(f"entity column {entity!r} has missing values")
        codes = entity_codes.astype(np.int64)[present]
    return raw[present], codes, int((~present).sum())


def _edges(bins: Sequence[float] | int, values: FloatArray) -> FloatArray:
    """The bin edges: validated explicit edges, or numpy's from the finite values' range."""
    if _is_count(bins):
        count = int(bins)
        if count < 1:
            raise InputError(f"bins must be at least 1; got {count}")
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise InputError("no values to derive bin edges from: give explicit edges")
        return np.histogram_bin_edges(finite, bins=count).astype(np.float64)
    if isinstance(bins, str | bytes | bool | np.bool_) or not isinstance(
        bins, Sequence | np.ndarray
    ):
        raise InputError("bins must be a number of bins or an increasing sequence of edges")
    try:
        edges = np.asarray(bins, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("bin edges must be numbers") from None
    if edges.ndim != 1 or edges.size < 2:
        raise InputError("give at least two bin edges in a flat sequence")
    if not np.isfinite(edges).all():
        raise InputError("bin edges must be finite")
    if not (np.diff(edges) > 0).all():
        raise InputError("bin edges must be strictly increasing")
    return edges
