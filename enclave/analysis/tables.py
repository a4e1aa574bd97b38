"""Tables with pandas signatures: ``crosstab``, ``pivot_table``, ``groupby_agg``, ``describe``.

Each builds its table through the checker (``output_checker.check_table`` with protection),
so the researcher gets the protected table back, and each statistic becomes one output file
with its record and, when the data are a registered dataset as loaded, its recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    require_recipe_to_round,
    require_rows,
    rounding_base,
    table_provenance,
)
from enclave.analysis.datasets import Source
from enclave.analysis.errors import AnalysisError
from output_checker.aggregation import Aggregation

DESCRIBE_STATISTICS: tuple[tuple[str, str, str], ...] = (
    # (pandas row label, file label, checker aggregation)
    ("count", "count", "count"),
    ("mean", "mean", "mean"),
    ("std", "std", "std"),
    ("min", "min", "min"),
    ("25%", "p25", "quantile(0.25)"),
    ("50%", "p50", "median"),
    ("75%", "p75", "quantile(0.75)"),
    ("max", "max", "max"),
)
OVERALL = "population"  # the one-level index of an ungrouped describe


def _names(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _aggfuncs(aggfunc: Any) -> list[Any]:
    """The aggregations asked for, each parsed now so that a bad one is refused before any
    table is made (a lambda or unknown function cannot be checked)."""
    funcs = list(aggfunc) if isinstance(aggfunc, list | tuple) else [aggfunc]
    if not funcs:
        raise AnalysisError("aggfunc is empty: name at least one aggregation")
    for func in funcs:
        try:
            Aggregation.parse(func)
        except Exception as error:
            raise AnalysisError(
                f"{error}; an aggregation the checker cannot check is never released"
            ) from None
    return funcs


def _label(aggfunc: Any) -> str:
    return Aggregation.parse(aggfunc).label


def _file_label(*parts: str) -> str:
    text = "_".join(parts)
    return "".join(ch if ch.isalnum() or ch in "_-" else "-" for ch in text).strip("-") or "table"


def _series_list(arg: Any, prefix: str, names: Sequence[str] | None) -> list[pd.Series[Any]]:
    """pandas' crosstab arguments (a Series, an array, or a list of them) as named Series."""
    if isinstance(arg, pd.Series | np.ndarray):
        items: list[Any] = [arg]
    elif (
        isinstance(arg, list | tuple)
        and arg
        and all(isinstance(a, pd.Series | np.ndarray | list) for a in arg)
    ):
        items = list(arg)
    elif isinstance(arg, list | tuple):
        items = [arg]
    else:
        raise AnalysisError(f"crosstab {prefix}: give a Series, an array or a list of them")
    if names is not None and len(names) != len(items):
        raise AnalysisError(f"{len(names)} names given for {len(items)} {prefix} variable(s)")
    out = []
    for i, item in enumerate(items):
        series = item if isinstance(item, pd.Series) else pd.Series(np.asarray(item))
        name = names[i] if names is not None else series.name
        out.append(series.rename(str(name) if name is not None else f"{prefix}_{i}"))
    return out


def crosstab(
    ctx: Context,
    index: Any,
    columns: Any,
    values: Any = None,
    rownames: Sequence[str] | None = None,
    colnames: Sequence[str] | None = None,
    aggfunc: Any = None,
    margins: bool = False,
    margins_name: str = "All",
    normalize: bool | str = False,
    entity: Any = None,
    *,
    round_to: int | None = None,
) -> Made:
    """``pd.crosstab`` checked and protected: counts, or ``values`` aggregated by
    ``aggfunc`` (a name, a known numpy function, or a list of them); published rounded to
    base ``round_to`` when given (normalized shares are then of the rounded counts)."""
    base = rounding_base(round_to)
    if (values is None) != (aggfunc is None):
        raise AnalysisError("values and aggfunc go together: give both or neither")
    funcs = _aggfuncs(aggfunc) if aggfunc is not None else [None]
    rows = _series_list(index, "row", rownames)
    cols = _series_list(columns, "col", colnames)
    parts = rows + cols
    value_name = None
    if values is not None:
        (value_series,) = _series_list(values, "values", None)
        value_name = str(value_series.name) if value_series.name != "values_0" else "values"
        parts.append(value_series.rename(value_name))
    names = [str(s.name) for s in parts]
    if len(set(names)) != len(names):
        raise AnalysisError(f"variables must have distinct names; got {names}")
    frame = pd.concat(parts, axis=1)
    require_rows(frame)
    source = find_source(ctx, {str(s.name): s for s in parts}, table=True)
    frame, unit = add_entity(ctx, frame, entity, source)
    source = _confirm(ctx, frame, unit, source, names)
    require_recipe_to_round(base, source)
    norm = _normalize_axis(normalize, values)
    files, shown = [], []
    for func in funcs:
        label = _file_label(_label(func)) if func is not None else "count"
        result_margins = margins or norm is not None
        _, table, file = checked_table(
            ctx, frame, index=[str(s.name) for s in rows], columns=[str(s.name) for s in cols],
            values=value_name, aggfunc=func, entity=unit, margins=result_margins,
            source=source, label=label, round_to=base,
        )  # fmt: skip
        if norm is not None:
            table = _normalized(table, norm, margins)
        files.append(file)
        shown.append(table)
    value = (
        shown[0] if len(shown) == 1 else pd.concat(shown, axis=1, keys=[_label(f) for f in funcs])
    )
    value = _rename_margins(value, margins_name)
    call = command(
        "crosstab", index=rows, columns=cols, values=value_name, aggfunc=aggfunc,
        margins=margins or None, normalize=normalize or None, entity=unit, round_to=base,
    )  # fmt: skip
    return Made(value, tuple(files), table_provenance(source, base), "crosstab", call)


def _confirm(
    ctx: Context, frame: pd.DataFrame, unit: str | None, source: Source | None, used: list[str]
) -> Source | None:
    """The source still holds when the entity column is the dataset's own or matches it."""
    if source is None or unit is None or unit == source.entity:
        return source
    again = ctx.tracker.source_of({c: frame[c] for c in [*used, unit]})
    return again if again == source else None


def _normalize_axis(normalize: bool | str, values: Any) -> str | None:
    if normalize is False or normalize is None:
        return None
    if values is not None:
        raise AnalysisError("normalize applies to count tables only")
    axis = {True: "all", "all": "all", "index": "index", 0: "index", "columns": "columns"}
    try:
        return axis[normalize]
    except KeyError:
        raise AnalysisError("normalize must be True, 'all', 'index' or 'columns'") from None


def _normalized(table: pd.DataFrame, axis: str, keep_margins: bool) -> pd.DataFrame:
    """Shares computed from the protected counts and the true totals (suppressed stay NaN)."""
    counts = table.astype("float64")
    grid = counts.to_numpy()
    if axis == "all":
        shares = grid / grid[-1, -1]  # totals ("All") come last
    elif axis == "index":
        shares = grid / grid[:, -1:]
    else:
        shares = grid / grid[-1:, :]
    out = pd.DataFrame(shares, index=counts.index, columns=counts.columns)
    if not keep_margins:
        out = out.drop(index="All", errors="ignore").drop(columns="All", errors="ignore")
    return out


def _rename_margins(table: pd.DataFrame, name: str) -> pd.DataFrame:
    if name == "All":
        return table
    return table.rename(index={"All": name}, columns={"All": name})


def pivot_table(
    ctx: Context,
    data: pd.DataFrame,
    values: str | Sequence[str] | None = None,
    index: str | Sequence[str] | None = None,
    columns: str | Sequence[str] | None = None,
    aggfunc: Any = "mean",
    fill_value: Any = None,
    margins: bool = False,
    margins_name: str = "All",
    entity: Any = None,
    *,
    round_to: int | None = None,
) -> Made:
    """``pd.pivot_table`` checked and protected, one output file per value and aggregation
    (published rounded to base ``round_to`` when given)."""
    return _grouped(
        ctx, "pivot_table", data, _names(index), _names(columns), values, aggfunc,
        margins=margins, margins_name=margins_name, fill_value=fill_value, entity=entity,
        round_to=round_to,
    )  # fmt: skip


def groupby_agg(
    ctx: Context,
    data: pd.DataFrame,
    by: str | Sequence[str],
    values: str | Sequence[str],
    aggfunc: Any = "mean",
    margins: bool = False,
    entity: Any = None,
    *,
    round_to: int | None = None,
) -> Made:
    """``data.groupby(by)[values].agg(aggfunc)`` checked and protected (published rounded
    to base ``round_to`` when given)."""
    return _grouped(
        ctx, "groupby_agg", data, _names(by), [], values, aggfunc,
        margins=margins, margins_name="All", fill_value=None, entity=entity,
        round_to=round_to,
    )  # fmt: skip


def _grouped(
    ctx: Context,
    method: str,
    data: pd.DataFrame,
    index: list[str],
    columns: list[str],
    values: str | Sequence[str] | None,
    aggfunc: Any,
    *,
    margins: bool,
    margins_name: str,
    fill_value: Any,
    entity: Any,
    round_to: int | None,
) -> Made:
    base = rounding_base(round_to)
    if not isinstance(data, pd.DataFrame):
        raise AnalysisError(f"{method} needs a pandas DataFrame as data")
    if not index:
        raise AnalysisError(f"{method} needs at least one grouping variable (index/by)")
    if fill_value is not None:
        raise AnalysisError("fill_value is refused: it would disguise suppressed cells")
    value_names = _names(values)
    if not value_names:
        raise AnalysisError(f"{method}: name the values to aggregate")
    funcs = _aggfuncs(aggfunc)
    used = [*index, *columns, *value_names]
    missing = [c for c in dict.fromkeys(used) if c not in data.columns]
    if missing:
        raise AnalysisError(f"column(s) not in the data: {', '.join(map(repr, missing))}")
    require_rows(data)
    source = find_source(ctx, {c: data[c] for c in dict.fromkeys(used)}, table=True)
    frame, unit = add_entity(ctx, data, entity, source)
    source = _confirm(ctx, frame, unit, source, list(dict.fromkeys(used)))
    require_recipe_to_round(base, source)
    files, shown, keys = [], [], []
    for value in value_names:
        for func in funcs:
            label = _file_label(value, _label(func))
            _, table, file = checked_table(
                ctx, frame, index=index, columns=columns, values=value, aggfunc=func,
                entity=unit, margins=margins, source=source, label=label, round_to=base,
            )  # fmt: skip
            files.append(file)
            shown.append(table)
            keys.append((value, _label(func)))
    if len(shown) == 1:
        result = shown[0]
    elif not columns:  # one column per table: as pandas' groupby(...).agg([...]) lays it out
        single = len(value_names) == 1
        result = pd.DataFrame(
            {(k[1] if single else k): s.iloc[:, 0] for k, s in zip(keys, shown, strict=True)}
        )
    elif len(value_names) == 1:
        result = pd.concat(shown, axis=1, keys=[k[1] for k in keys])
    else:
        result = pd.concat(shown, axis=1, keys=keys)
    call = command(
        method, index=index, columns=columns or None, values=value_names, aggfunc=aggfunc,
        margins=margins or None, entity=unit, round_to=base,
    )  # fmt: skip
    made = _rename_margins(result, margins_name)
    return Made(made, tuple(files), table_provenance(source, base), method, call)


def describe(
    ctx: Context,
    data: pd.DataFrame,
    columns: str | Sequence[str] | None = None,
    by: str | Sequence[str] | None = None,
    entity: Any = None,
) -> Made:
    """``data.describe()`` (or ``data.groupby(by).describe()``) with every statistic checked:
    count, mean, std, min, quartiles, max. Minima, maxima and quantiles that are one unit's
    own value are suppressed."""
    if not isinstance(data, pd.DataFrame):
        raise AnalysisError("describe needs a pandas DataFrame")
    require_rows(data)
    groups = _names(by)
    missing = [c for c in groups if c not in data.columns]
    if missing:
        raise AnalysisError(f"column(s) not in the data: {', '.join(map(repr, missing))}")
    skip = {ctx.entity, *groups} | ({entity} if isinstance(entity, str) else set())
    wanted = _names(columns) or [
        str(c)
        for c in data.columns
        if pd.api.types.is_numeric_dtype(data[c])
        and not pd.api.types.is_bool_dtype(data[c])
        and c not in skip
    ]
    if not wanted:
        raise AnalysisError("describe: the data have no numeric column to describe")
    source = find_source(ctx, {c: data[c] for c in [*groups, *wanted] if c in data}, table=True)
    frame, unit = add_entity(ctx, data, entity, source)
    if source is not None and unit is not None and unit != source.entity:
        source = _confirm(ctx, frame, unit, source, [*groups, *wanted])
    if not groups:
        # a constant grouping gives one cell per statistic; no recipe can express it
        groups, source = [OVERALL], None
        frame = frame.assign(**{OVERALL: "all"})
        if ctx.require_recipes:
            raise AnalysisError("an ungrouped describe has no recipe: describe(..., by=...)")
    files, values = [], {}
    for column in wanted:
        if column not in frame.columns:
            raise AnalysisError(f"column {column!r} is not in the data")
        for row_label, file_label, func in DESCRIBE_STATISTICS:
            _, table, file = checked_table(
                ctx, frame, index=groups, columns=[], values=column, aggfunc=func,
                entity=unit, margins=False, source=source, label=_file_label(column, file_label),
            )  # fmt: skip
            files.append(file)
            values[(column, row_label)] = table.iloc[:, 0]
    combined = pd.DataFrame(values)
    if groups == [OVERALL]:
        combined = combined.iloc[0].unstack(level=0).loc[[r for r, _, _ in DESCRIBE_STATISTICS]]
        combined.columns.name = None
    call = command("describe", columns=wanted, by=_names(by) or None, entity=unit)
    return Made(combined, tuple(files), table_provenance(source), "describe", call)
