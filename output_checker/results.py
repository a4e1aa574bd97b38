"""Result objects of a table check and their JSON form (the results manifest, schema v1)."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from output_checker.parameters import Parameters
from output_checker.rules import RuleResult
from output_checker.status import Status, StatusArray
from output_checker.table import LaidTable

if TYPE_CHECKING:
    from output_checker.protect import Protection

SCHEMA_ID = "https://enclave.invalid/schemas/output-checker/manifest-v1.json"
SCHEMA_VERSION = 1


def json_scalar(value: Any) -> Any:
    """A label or number as JSON can hold it (NaN and infinities become null)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dt.datetime | dt.date | pd.Timestamp):
        return value.isoformat()
    return str(value)


def envelope(
    kind: str,
    output_type: str,
    status: Status,
    summary: str,
    notes: Iterable[str],
    created: str,
    parameters: Parameters,
) -> dict[str, Any]:
    """The keys every manifest record starts with, whatever its kind (docs/manifest.md)."""
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "output_type": output_type,
        "status": status.label,
        "summary": summary,
        "notes": list(notes),
        "created": created,
        "parameters": parameters.to_dict(),
    }


def _interval(protection: Protection | None, pos: int) -> list[float] | None:
    """The attacker's [lo, hi] for a suppressed cell, when an audit gave one."""
    if protection is None or np.isnan(protection.lo[pos]):
        return None
    return [float(protection.lo[pos]), float(protection.hi[pos])]


@dataclass(frozen=True)
class TableResult:
    """The verdict on one table. ``to_dict()`` is the manifest record the CLI writes."""

    table: LaidTable
    parameters: Parameters
    output_type: str
    rules: dict[str, RuleResult]
    notes: tuple[str, ...] = ()  # output-level reasons (unknown type, rule not evaluable...)
    output_status: Status = Status.PASS  # output-level floor, before cell verdicts
    protection: Protection | None = None  # the suppression pattern, when protection was asked
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    # ----- per-cell verdicts (over the cells the output shows) -------------------------------
    @property
    def shown(self) -> npt.NDArray[np.intp]:
        return np.flatnonzero(self.table.shown)

    @property
    def cell_status(self) -> StatusArray:
        """Worst rule status per shown cell."""
        statuses = [r.status for r in self.rules.values()]
        worst = np.maximum.reduce(statuses) if statuses else np.zeros(self.table.n_cells, np.int8)
        return np.asarray(worst, dtype=np.int8)[self.shown]

    @property
    def primary(self) -> npt.NDArray[np.bool_]:
        """Primary-unsafe shown cells: any rule fails."""
        return np.asarray(self.cell_status == Status.FAIL, dtype=bool)

    @property
    def status(self) -> Status:
        """Worst verdict over the cells published; suppressed cells are not published."""
        cells, floor = self.cell_status, self.output_status
        if self.protection is not None:
            cells = cells[~self.protection.suppressed]
            floor = max(floor, self.protection.status)
        return max(Status(int(cells.max())) if cells.size else Status.PASS, floor)

    @property
    def suppressed(self) -> npt.NDArray[np.bool_]:
        """Shown cells withheld from publication (none unless protection was asked)."""
        if self.protection is None:
            return np.zeros(self.shown.shape[0], dtype=bool)
        return self.protection.suppressed

    @property
    def protection_level(self) -> npt.NDArray[np.float64]:
        """Upper (= lower) protection level per shown cell: the maximum over failing rules."""
        levels = [r.protection for r in self.rules.values() if r.protection is not None]
        if not levels:
            return np.zeros(self.shown.shape[0])
        return np.asarray(np.maximum.reduce(levels), dtype=np.float64)[self.shown]

    def failing_counts(self) -> dict[str, dict[str, int]]:
        shown = self.shown
        return {
            name: {
                "fail": int((r.status[shown] == Status.FAIL).sum()),
                "review": int((r.status[shown] == Status.REVIEW).sum()),
            }
            for name, r in self.rules.items()
        }

    # ----- presentations ---------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """The table as pandas would show it (rows × columns, "All" for totals); suppressed
        cells are missing values, as the table would be published."""
        t, shown = self.table, self.shown
        request = t.request
        # shown cells always form a rectangle: shown rows × shown columns, row-major
        rows = list(dict.fromkeys(t.cell_row[shown].tolist()))
        cols = list(dict.fromkeys(t.cell_col[shown].tolist()))
        values = np.where(self.suppressed, np.nan, t.value[shown]).reshape(len(rows), len(cols))
        index = pd.MultiIndex.from_tuples([t.row_labels[r] for r in rows], names=request.index)
        if request.columns:
            columns: pd.Index = pd.MultiIndex.from_tuples(
                [t.col_labels[c] for c in cols], names=request.columns
            )
        else:
            columns = pd.Index([request.aggregation.label])
        frame = pd.DataFrame(values, index=index, columns=columns)
        if request.aggregation.name == "count" and request.weights is None:
            # counts stay integers; a suppressed count is <NA>
            frame = frame.astype("Int64" if self.suppressed.any() else np.int64)
        if len(request.index) == 1:
            frame.index = frame.index.get_level_values(0)
        if len(request.columns) == 1:
            frame.columns = frame.columns.get_level_values(0)
        return frame

    def output_sha256(self) -> str:
        """SHA-256 of the table as CSV, the form in which it would leave the enclave."""
        return hashlib.sha256(self.to_frame().to_csv().encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The results manifest record (see ``docs/manifest.md``)."""
        t, shown = self.table, self.shown
        request = t.request
        statuses = self.cell_status
        ev = t.evidence
        has_values = request.values is not None
        protection = self.protection_level
        suppressed = self.suppressed
        p = self.protection
        cells = []
        for pos, i in enumerate(shown.tolist()):
            checks: dict[str, Any] = {}
            failed = []
            for name, r in self.rules.items():
                st = Status(int(r.status[i]))
                entry: dict[str, Any] = {"status": st.label}
                for key, arr in r.details.items():
                    entry[key] = json_scalar(arr[i])
                checks[name] = entry
                if st != Status.PASS:
                    failed.append(name)
            evidence: dict[str, Any] = {
                "n_rows": int(ev.n_rows[i]),
                "n_nonmissing": int(ev.n_nonmissing[i]),
                "n_entities": int(ev.n_entities[i]),
            }
            if has_values:
                evidence |= {
                    "n_negative": int(ev.n_negative[i]),
                    "total": json_scalar(ev.total[i]),
                    "top": [json_scalar(x) for x in ev.top[i]],
                    "min": json_scalar(ev.minimum[i]),
                    "max": json_scalar(ev.maximum[i]),
                }
            cells.append(
                {
                    "index": [json_scalar(x) for x in t.row_labels[t.cell_row[i]]],
                    "columns": [json_scalar(x) for x in t.col_labels[t.cell_col[i]]],
                    "value": json_scalar(t.value[i]),
                    "status": Status(int(statuses[pos])).label,
                    "rules_failed": failed,
                    "primary": bool(statuses[pos] == Status.FAIL),
                    "suppressed": bool(suppressed[pos]),
                    "interval": _interval(p, pos),
                    "total": bool(t.is_total[i]),
                    "protection_level": json_scalar(protection[pos]) if failed else None,
                    "evidence": evidence,
                    "checks": checks,
                }
            )
        counts = self.failing_counts()
        return {
            **envelope(
                "table",
                self.output_type,
                self.status,
                self.summary(),
                self.notes,
                self.created,
                self.parameters,
            ),
            "statistic": request.aggregation.label,
            "request": {
                "index": list(request.index),
                "columns": list(request.columns),
                "values": request.values,
                "aggfunc": request.aggregation.label,
                "entity": request.entity,
                "weights": request.weights,
                "margins": request.margins,
                "hierarchical": request.hierarchical,
            },
            "rules": {
                name: {"description": r.description, "note": r.note, **counts[name]}
                for name, r in self.rules.items()
            },
            "cells": cells,
            "suppression": None if p is None else p.to_dict(),
            "output": {"format": "csv", "sha256": self.output_sha256()},
        }

    def summary(self) -> str:
        """One line a researcher can act on."""
        counts = {k: v for k, v in self.failing_counts().items() if v["fail"] or v["review"]}
        if not counts and not self.notes and self.protection is None:
            return f"{self.status.label}: all {self.shown.size} cells pass"
        parts = [
            f"{name}: {c['fail']} fail" + (f", {c['review']} review" if c["review"] else "")
            if c["fail"]
            else f"{name}: {c['review']} review"
            for name, c in counts.items()
        ]
        if self.protection is not None:  # the verdicts describe the table before suppression
            parts = [
                self.protection.reason,
                *(["before suppression: " + ", ".join(parts)] if parts else []),
            ]
        return f"{self.status.label}: " + "; ".join([*parts, *self.notes])
