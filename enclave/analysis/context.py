"""What every checked call shares: the session's checking settings, where the data came from,
the unit protected, and the one way a table is checked and turned into an output file."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from enclave.analysis.datasets import FrameTracker, Source
from enclave.analysis.errors import AnalysisError
from enclave.analysis.outputs import OutputFile, Provenance
from enclave.analysis.recipes import provenance_of, table_recipe
from output_checker import CheckerError, Parameters, TableResult, check_table


@dataclass(frozen=True)
class Context:
    """The session's checking settings, handed to each call."""

    conventions: str
    parameters: Parameters | None
    suppress: bool
    entity: str | None
    require_recipes: bool
    tracker: FrameTracker


@dataclass(frozen=True)
class Made:
    """What one call produced: the value the researcher gets back and the files to record."""

    value: Any
    files: tuple[OutputFile, ...]
    provenance: Provenance
    method: str
    command: str


def command(method: str, **args: Any) -> str:
    """A readable form of the call for the record, e.g. ``crosstab(index=['year'])``."""
    shown = ", ".join(f"{k}={_arg(v)}" for k, v in args.items() if v is not None)
    return f"{method}({shown})"


def _arg(value: Any) -> str:
    if isinstance(value, pd.Series):
        return f"<{value.name or 'series'}>"
    if isinstance(value, pd.DataFrame):
        return "<data>"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_arg(v) for v in value) + "]"
    if callable(value) and not isinstance(value, str):
        return str(getattr(value, "__name__", type(value).__name__))
    return repr(value)


def find_source(
    ctx: Context, columns: Mapping[str, pd.Series[Any]], *, table: bool
) -> Source | None:
    """The registered dataset these columns were loaded from, or None; refuses unregistered
    data when the session requires recipes."""
    source = ctx.tracker.source_of(columns)
    if source is None and ctx.require_recipes:
        what = "tables" if table else "outputs"
        raise AnalysisError(
            f"this session requires {what} built from a registered dataset, and the data "
            "given do not match any dataset as loaded: use load(...) and where(...) instead "
            "of changing the frame"
        )
    return source


def add_entity(
    ctx: Context, frame: pd.DataFrame, entity: str | pd.Series[Any] | None, source: Source | None
) -> tuple[pd.DataFrame, str | None]:
    """``frame`` with the column that names the protected unit, and that column's name (None:
    every row is its own unit). An explicit ``entity`` wins; then the dataset's declared
    entity; then the session's, which must then be in the data."""
    if isinstance(entity, pd.Series):
        name = str(entity.name) if entity.name is not None else "entity"
        return _with_column(frame, name, entity), name
    if isinstance(entity, str):
        if entity not in frame.columns:
            raise AnalysisError(f"entity column {entity!r} is not in the data")
        return frame, entity
    if entity is not None:
        raise AnalysisError("entity must be a column name or a Series")
    if source is not None and source.entity is not None:
        if source.entity in frame.columns:
            return frame, source.entity
        column = ctx.tracker.entity_column(source)
        if column is not None and frame.index.isin(column.index).all():
            return _with_column(frame, source.entity, column.loc[frame.index]), source.entity
    if ctx.entity is not None:
        if ctx.entity not in frame.columns:
            raise AnalysisError(
                f"outputs protect each {ctx.entity!r}, but the data have no such column: "
                f"keep it in the frame or pass entity=..."
            )
        return frame, ctx.entity
    return frame, None


def _with_column(frame: pd.DataFrame, name: str, column: pd.Series[Any]) -> pd.DataFrame:
    if name in frame.columns:
        return frame
    out = frame.copy(deep=False)
    out[name] = column.reindex(frame.index) if not column.index.equals(frame.index) else column
    return out


def require_rows(frame: pd.DataFrame) -> None:
    if frame.shape[0] == 0:
        raise AnalysisError("the data are empty: there is nothing to tabulate")


def checked_table(
    ctx: Context,
    frame: pd.DataFrame,
    *,
    index: Sequence[str],
    columns: Sequence[str],
    values: str | None,
    aggfunc: Any,
    entity: str | None,
    margins: bool,
    source: Source | None,
    label: str,
) -> tuple[TableResult, pd.DataFrame, OutputFile]:
    """Check and protect one table; returns the result, the table as published (suppressed
    cells missing) and its output file (CSV bytes bound to the record, recipe if any).

    Raises AnalysisError with the checker's one-line reason for bad input.
    """
    try:
        result = check_table(
            frame,
            list(index),
            list(columns) or None,
            values=values,
            aggfunc=aggfunc,
            entity=entity,
            margins=margins,
            conventions=ctx.conventions,
            protect=ctx.suppress,
            parameters=ctx.parameters,
        )
    except CheckerError as error:
        raise AnalysisError(str(error)) from None
    shown = result.to_frame()
    data = shown.to_csv().encode("utf-8")
    record = result.to_dict()
    if record["output"]["sha256"] != hashlib.sha256(data).hexdigest():
        raise AnalysisError("internal error: the table file is not the table that was checked")
    recipe = None
    if source is not None:  # the queue re-derives it, protected as here when suppress is on
        recipe = table_recipe(
            source,
            index=index,
            columns=columns,
            values=values,
            aggregation=str(record["statistic"]),
            entity=entity,
            margins=margins,
            protect=ctx.suppress,
        )
    return result, shown, OutputFile(label, "csv", data, record, recipe)


def table_provenance(source: Source | None) -> Provenance:
    """The provenance of a table output: a recipe when it was built from a registered
    dataset (every table file then carries one)."""
    return provenance_of(source, table=True)
