"""The statistics a table may show, parsed from what pandas users write."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from output_checker.errors import InputError

NAMES = ("count", "sum", "mean", "median", "std", "var", "min", "max", "mode", "quantile")
WEIGHTED = ("count", "sum", "mean")

# Well-known callables are mapped to their names, so that ``aggfunc=np.mean`` is checked
# exactly like ``aggfunc="mean"`` (ACRO lets callables through unchecked).
_CALLABLES: dict[Callable[..., Any], str] = {
    np.mean: "mean",
    np.nanmean: "mean",
    np.sum: "sum",
    np.nansum: "sum",
    np.median: "median",
    np.nanmedian: "median",
    np.std: "std",
    np.nanstd: "std",
    np.var: "var",
    np.nanvar: "var",
    np.min: "min",
    np.nanmin: "min",
    np.max: "max",
    np.nanmax: "max",
    len: "count",
    sum: "sum",
    min: "min",
    max: "max",
}
_QUANTILE = re.compile(r"^(?:quantile\((?P<q>[0-9.eE+-]+)\)|p(?P<pct>\d{1,2}(?:\.\d+)?))$")


@dataclass(frozen=True)
class Aggregation:
    """A table statistic; ``q`` is set only for quantiles (median is ``quantile`` with q=0.5)."""

    name: str
    q: float | None = None

    @property
    def label(self) -> str:
        if self.name == "quantile":
            return "median" if self.q == 0.5 else f"quantile({self.q:g})"
        return self.name

    @classmethod
    def parse(cls, aggfunc: object) -> Aggregation:
        """Accept "mean", "quantile(0.9)", "p90", "median", np.mean...; refuse anything else."""
        if aggfunc is None:
            return cls("count")
        if callable(aggfunc) and not isinstance(aggfunc, str):
            name = _CALLABLES.get(aggfunc)
            if name is None:
                label = getattr(aggfunc, "__name__", type(aggfunc).__name__)
                raise InputError(
                    f"unsupported aggregation {label!r}: use one of {', '.join(NAMES)} "
                    "or quantile(q)"
                )
            return cls.parse(name)
        if not isinstance(aggfunc, str):
            raise InputError(f"unsupported aggregation {aggfunc!r}")
        text = aggfunc.strip().lower()
        if text == "median":
            return cls("quantile", 0.5)
        if text in NAMES and text != "quantile":
            return cls(text)
        match = _QUANTILE.match(text)
        if match:
            q = float(match["q"]) if match["q"] else float(match["pct"]) / 100
            if not 0 < q < 1:
                raise InputError(f"quantile must lie strictly between 0 and 1; got {q:g}")
            return cls("quantile", q)
        raise InputError(
            f"unsupported aggregation {aggfunc!r}: use one of {', '.join(NAMES)} or quantile(q)"
        )
