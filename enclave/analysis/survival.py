"""Kaplan-Meier survival with ACRO's ``surv_func`` signature: the checker estimates the curve
itself, merges steps until each rests on enough removed units and truncates the tail, and the
researcher gets that protected table (or a plot drawn from it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from enclave.analysis.context import Context, Made, add_entity, command, find_source
from enclave.analysis.errors import AnalysisError
from enclave.analysis.outputs import OutputFile
from enclave.analysis.plots import CheckedPlot, draw_survival, png_file
from enclave.analysis.recipes import provenance_of
from output_checker import CheckerError

_UNSUPPORTED = ("entry", "freq_weights", "exog")


def _named(value: Any, default: str, data: pd.DataFrame | None) -> pd.Series[Any]:
    if isinstance(value, str):
        if data is None or value not in data.columns:
            raise AnalysisError(f"column {value!r} is not in the data")
        return data[value]
    if isinstance(value, pd.Series):
        return value if value.name is not None else value.rename(default)
    return pd.Series(np.asarray(value), name=default)


def surv_func(
    ctx: Context,
    time: Any,
    status: Any,
    output: str = "table",
    *,
    group: Any = None,
    data: pd.DataFrame | None = None,
    entity: Any = None,
    title: str | None = None,
    unsupported: dict[str, Any] | None = None,
) -> Made:
    """Kaplan-Meier estimate of ``time`` (``status`` 1 = event, 0 = censored), one curve per
    ``group``; ``output`` is ``"table"`` (the protected step table) or ``"plot"``."""
    from output_checker.survival import check_survival

    given = [k for k, v in (unsupported or {}).items() if v is not None]
    if given:
        raise AnalysisError(
            f"surv_func: {', '.join(given)} not supported: the checker has no rules for "
            "left truncation, weights or covariate-adjusted curves"
        )
    if output not in ("table", "plot"):
        raise AnalysisError("surv_func output must be 'table' or 'plot'")
    parts = [_named(time, "time", data), _named(status, "status", data)]
    if group is not None:
        parts.append(_named(group, "group", data))
    names = [str(p.name) for p in parts]
    if len(set(names)) != len(names):
        raise AnalysisError(f"time, status and group need distinct names; got {names}")
    frame = pd.concat(parts, axis=1)
    if frame.shape[0] == 0:
        raise AnalysisError("the data are empty: there is nothing to estimate")
    source = find_source(ctx, {str(p.name): p for p in parts}, table=False)
    frame, unit = add_entity(ctx, frame, entity, source)
    try:
        result = check_survival(
            frame, names[0], names[1], group=names[2] if group is not None else None,
            entity=unit, conventions=ctx.conventions, parameters=ctx.parameters,
        )  # fmt: skip
    except CheckerError as error:
        raise AnalysisError(str(error)) from None
    protected = result.protected
    csv = OutputFile(
        "table", "csv", protected.to_csv(index=False).encode("utf-8"), result.to_dict()
    )
    call = command("surv_func", time=names[0], status=names[1], output=output,
                   group=names[2] if group is not None else None)  # fmt: skip
    provenance = provenance_of(source, table=False)
    if output == "table":
        return Made(protected, (csv,), provenance, "surv_func", call)
    png = draw_survival(
        protected, names[2] if group is not None else None, title=title, xlabel=names[0]
    )
    plot = CheckedPlot("kaplan-meier", png, protected, result.status.label)
    return Made(plot, (csv, png_file(png, csv)), provenance, "surv_func", call)
