"""The checker's public functions. Everything they call is pure; these only wire it up."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from output_checker import registry
from output_checker.aggregation import Aggregation
from output_checker.errors import InputError, ParameterError
from output_checker.io import read_data
from output_checker.parameters import Parameters
from output_checker.results import TableResult
from output_checker.rules import RULES, RuleResult
from output_checker.status import Status
from output_checker.table import Label, TableRequest, lay_out


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def resolve_parameters(conventions: str, parameters: Parameters | None) -> Parameters:
    """The parameters to use: the given ones (which must match ``conventions``) or defaults."""
    if parameters is None:
        return Parameters.for_conventions(conventions)
    if parameters.conventions != conventions:
        raise ParameterError(
            f"parameters are for {parameters.conventions!r} conventions, not {conventions!r}"
        )
    return parameters


def check_table(
    data: pd.DataFrame | str | Path,
    index: str | Sequence[str],
    columns: str | Sequence[str] | None = None,
    values: str | None = None,
    aggfunc: Any = None,
    entity: str | None = None,
    weights: str | None = None,
    margins: bool = False,
    conventions: str = "default",
    protect: bool = False,
    *,
    parameters: Parameters | None = None,
    hierarchical: bool = False,
    structural_zeros: Iterable[Sequence[Label]] = (),
) -> TableResult:
    """Tabulate ``data`` as ``pd.crosstab``/``pivot_table`` would and check every cell.

    Args mirror pandas: ``index``/``columns`` classify, ``values`` with ``aggfunc`` (count,
    sum, mean, median, std, var, min, max, mode, "quantile(q)") give the statistic. ``entity``
    names the unit protected (rows otherwise); ``weights`` are sampling weights; ``margins``
    adds "All" totals and ``hierarchical`` a subtotal for every nested prefix of the variables.

    Returns a :class:`TableResult`; ``.to_dict()`` is the manifest record.

    Raises:
        InputError: the data or the request cannot be tabulated (one-line message).
        ParameterError: invalid parameters or conventions.
    """
    params = resolve_parameters(conventions, parameters)
    aggregation = Aggregation.parse(aggfunc if values is not None or aggfunc else None)
    if values is not None and aggfunc is None:
        raise InputError("values given without an aggregation: pass aggfunc (e.g. 'mean')")
    request = TableRequest(
        index=_names(index),
        columns=_names(columns),
        values=values,
        aggregation=aggregation,
        entity=entity,
        weights=weights,
        margins=margins,
        hierarchical=hierarchical,
        structural_zeros=tuple(tuple(z) for z in structural_zeros),
    )
    needed = [*request.index, *request.columns, *(c for c in (values, entity, weights) if c)]
    frame = read_data(data, needed)
    output_type = registry.output_type_of(aggregation)
    rule_ids = registry.rules_for(output_type, params.conventions)
    table = lay_out(
        frame,
        request,
        max_cells=params.max_cells,
        depth=params.nk_depth if {"nk", "p_percent"} & set(rule_ids or ()) else 0,
        with_totals=registry.needs_totals(output_type, params.conventions),
        owners=protect and params.singleton_audit,
    )
    notes: list[str] = []
    floor = Status.PASS
    if rule_ids is None:
        notes.append(f"no rules are registered for output type {output_type!r}: sent to review")
        floor = Status.REVIEW
    results: dict[str, RuleResult] = {}
    for rule_id in rule_ids or ():
        try:
            result = RULES[rule_id](table, params)
        except Exception as error:  # a rule that cannot be evaluated never passes (spec §1)
            result = RuleResult(
                rule_id,
                np.full(table.n_cells, Status.REVIEW, dtype=np.int8),
                {},
                "not evaluated",
                note=f"rule {rule_id} could not be evaluated ({type(error).__name__})",
            )
        results[rule_id] = result
        if result.note:
            notes.append(result.note)
    checked = TableResult(
        table=table,
        parameters=params,
        output_type=output_type,
        rules=results,
        notes=tuple(notes),
        output_status=floor,
    )
    if not protect:
        return checked
    from output_checker.protect import protect_table  # scipy's solvers load only when needed

    protection = protect_table(table, checked.primary, checked.protection_level, params)
    return replace(checked, protection=protection)
