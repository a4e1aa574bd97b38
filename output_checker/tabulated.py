"""Protect or audit a table that is already tabulated (a wide CSV), for ``output-checker
protect`` and ``output-checker audit``.

The CSV has the row labels in its first column and the column labels in its header; a row or
column labelled with the total label (default "All") is the total of the others. A mask CSV
of the same shape marks cells with 1/true/x.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from output_checker.errors import InputError
from output_checker.manifest import atomic_write_bytes
from output_checker.protection import TableModel, audit, pair_sums, protect
from output_checker.status import Status

TRUE = {"1", "1.0", "true", "x", "yes"}
FALSE = {"0", "0.0", "false", "", "no", "nan"}


@dataclass(frozen=True)
class WideTable:
    frame: pd.DataFrame
    model: TableModel

    @property
    def values(self) -> npt.NDArray[np.float64]:
        return self.frame.to_numpy(dtype=np.float64).ravel()


def read_table(path: Path, total_label: str) -> WideTable:
    """A numeric wide table and its model (a total row/column adds up the others)."""
    frame = _read(path)
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    if numeric.isna().to_numpy().any():
        raise InputError(f"{path.name}: every cell must be a number")
    dims = [list(map(str, frame.index)), list(map(str, frame.columns))]
    hierarchies = [
        {total_label: [c for c in codes if c != total_label]} if total_label in codes else {}
        for codes in dims
    ]
    return WideTable(numeric, TableModel.from_dimensions(dims, hierarchies))


def read_mask(path: Path, like: WideTable, what: str) -> npt.NDArray[np.bool_]:
    """A same-shaped 0/1 mask, as a flat boolean array in the table's cell order."""
    frame = _read(path)
    if list(map(str, frame.index)) != list(map(str, like.frame.index)) or list(
        map(str, frame.columns)
    ) != list(map(str, like.frame.columns)):
        raise InputError(f"{path.name}: the {what} mask must have the table's rows and columns")
    text = frame.astype(str).map(lambda s: s.strip().lower())
    bad = ~text.isin(TRUE | FALSE)
    if bad.to_numpy().any():
        raise InputError(f"{path.name}: {what} mask cells must be 1/0, true/false or x")
    return np.asarray(text.isin(TRUE).to_numpy().ravel(), dtype=bool)


def protect_file(
    table_path: Path,
    primary_path: Path,
    upl: float,
    total_label: str = "All",
    pair_threshold: float | None = None,
) -> dict[str, Any]:
    """Protect a tabulated table. With ``pair_threshold`` (frequency tables: the values are
    the contributors), two primaries in one relation summing to less are protected jointly."""
    table = read_table(table_path, total_label)
    primary = read_mask(primary_path, table, "primary")
    if not primary.any():
        raise InputError(f"{primary_path.name}: no primary cell is marked")
    sums = (
        pair_sums(table.model, primary, table.values, pair_threshold, upl)
        if pair_threshold is not None
        else []
    )
    result = protect(table.model, table.values, primary, upl, upl, sums=sums)
    return _record(
        table,
        result.status,
        result.summary(),
        primary,
        result.suppressed,
        result.audit,
        extra=result.to_dict(table.model),
    )


def audit_file(table_path: Path, suppressed_path: Path, total_label: str = "All") -> dict[str, Any]:
    table = read_table(table_path, total_label)
    suppressed = read_mask(suppressed_path, table, "suppressed")
    found = audit(table.model, table.values, suppressed)
    exact = int(found.exact.sum())
    status = Status.FAIL if exact else Status.PASS
    reason = f"{exact} suppressed cell(s) disclosed exactly" if exact else "no exact disclosure"
    return _record(
        table, status, reason, suppressed, suppressed, found, extra=found.to_dict(table.model)
    )


def _record(
    table: WideTable,
    status: Status,
    reason: str,
    primary: npt.NDArray[np.bool_],
    suppressed: npt.NDArray[np.bool_],
    found: Any,
    extra: dict[str, Any],
) -> dict[str, Any]:
    lo = np.full(primary.shape[0], np.nan)
    hi = np.full(primary.shape[0], np.nan)
    lo[found.cells], hi[found.cells] = found.lo, found.hi
    rows, cols = table.frame.index, table.frame.columns
    cells = [
        {
            "index": [str(rows[i // len(cols)])],
            "columns": [str(cols[i % len(cols)])],
            "value": float(value),
            "primary": bool(primary[i]),
            "suppressed": bool(suppressed[i]),
            "interval": None if np.isnan(lo[i]) else [float(lo[i]), float(hi[i])],
        }
        for i, value in enumerate(table.values)
    ]
    return {
        "status": status.label,
        "summary": f"{status.label}: {reason}",
        "cells": cells,
        "suppression": extra,
    }


def write(path: Path, record: dict[str, Any]) -> None:
    atomic_write_bytes(path, json.dumps(record, allow_nan=False).encode())


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    try:
        return pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:
        raise InputError(f"cannot read {path.name}: {str(error).splitlines()[0]}") from None
