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
from output_checker.rounding import check_base, rounded_frame


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


def rounding_base(round_to: object) -> int | None:
    """The base a table is published rounded to (None: exact); AnalysisError for a bad one."""
    if round_to is None:
        return None
    try:
        return check_base(round_to)
    except CheckerError as error:
        raise AnalysisError(f"round_to: {error}") from None


def require_recipe_to_round(round_to: int | None, source: Source | None) -> None:
    """Rounded numbers can be vouched for only by re-deriving them: without a recipe the
    queue compares the file with the record's exact cells, which a rounded file never is."""
    if round_to is not None and source is None:
        raise AnalysisError(
            "round_to needs a table built from a registered dataset as loaded (a recipe): "
            "only the recipe lets the queue check rounded numbers against the data"
        )


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
    round_to: int | None = None,
) -> tuple[TableResult, pd.DataFrame, OutputFile]:
    """Check and protect one table; returns the result, the table as published (suppressed
    cells missing, every value rounded to ``round_to`` when given) and its output file (CSV
    bytes bound to the record, recipe if any). A rounded table needs a ``source``
    (:func:`require_recipe_to_round`).

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
    if round_to is not None:
        require_recipe_to_round(round_to, source)
        shown = rounded_frame(shown, round_to)
        data = shown.to_csv().encode("utf-8")
        record = rounded_record(record, data, round_to)
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
            round_to=round_to,
        )
    return result, shown, OutputFile(label, "csv", data, record, recipe)


def rounded_record(record: dict[str, Any], data: bytes, base: int) -> dict[str, Any]:
    """The checker's record re-bound to the rounded file: ``output.sha256`` is the file's
    (the queue refuses a record that names other bytes), ``output.rounded_to`` and a note
    say so. The cells keep the exact values that were checked, as evidence for the trusted
    side; the queue judges the file by re-deriving it from the recipe and rounding."""
    note = f"every published value is rounded to base {base}; the checks ran on the exact values"
    output = {**record["output"], "sha256": hashlib.sha256(data).hexdigest(), "rounded_to": base}
    return {**record, "notes": [*record["notes"], note], "output": output}


def table_provenance(source: Source | None, round_to: int | None = None) -> Provenance:
    """The provenance of a table output: a recipe when it was built from a registered
    dataset (every table file then carries one), saying when its values are rounded."""
    return provenance_of(source, table=True, round_to=round_to)
