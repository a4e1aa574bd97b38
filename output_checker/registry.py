"""Which rules apply to which output type, per conventions: a table, not code (spec §2, §12.3).

An output type not listed here is never passed: :func:`rules_for` returns ``None`` and the
caller records ``review``.
"""

from __future__ import annotations

from dataclasses import dataclass

from output_checker.aggregation import Aggregation


@dataclass(frozen=True)
class OutputType:
    name: str
    safe_class: bool  # ESSnet safe/unsafe class: safe outputs pass unless a check fails
    description: str


OUTPUT_TYPES: dict[str, OutputType] = {
    t.name: t
    for t in (
        OutputType("frequency", False, "frequency table, counts"),
        OutputType("magnitude", False, "magnitude table (sums, totals)"),
        OutputType("mean", False, "means, ratios, indicators"),
        OutputType("quantile", False, "medians, percentiles, quartiles"),
        OutputType("extreme", False, "minimum, maximum, range"),
        OutputType("mode", True, "mode"),
        OutputType("moment", True, "variance, standard deviation and other moments"),
        OutputType("regression", True, "regression coefficients and summary statistics"),
        OutputType("survival", False, "Kaplan-Meier tables and curves"),
        OutputType("histogram", False, "histogram or bar chart bin counts"),
        OutputType("microdata", False, "record-level data: held to the microdata policy"),
    )
}

AGGREGATION_TYPES: dict[str, str] = {
    "count": "frequency",
    "sum": "magnitude",
    "mean": "mean",
    "quantile": "quantile",
    "min": "extreme",
    "max": "extreme",
    "mode": "mode",
    "std": "moment",
    "var": "moment",
}

_MAGNITUDE = ("threshold", "nk", "p_percent", "negative", "missing")

TABLE_RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "default": {
        "frequency": ("threshold", "class_disclosure", "zero", "missing"),
        "magnitude": _MAGNITUDE,
        "mean": _MAGNITUDE,
        "quantile": ("threshold", "quantile", "missing"),
        "extreme": ("threshold", "extreme", "missing"),
        "mode": ("threshold", "class_disclosure", "missing"),
        "moment": ("threshold", "missing"),
    },
    # ACRO 1.0.2, per its ontology (spec §12.3)
    "acro": {
        "frequency": ("threshold", "zero", "missing"),
        "magnitude": _MAGNITUDE,
        "mean": _MAGNITUDE,
        "quantile": ("threshold", "zero", "missing"),
        "extreme": ("threshold", "zero", "missing"),
        "mode": ("zero", "missing"),
        "moment": ("dof", "missing"),
    },
}


def output_type_of(aggregation: Aggregation) -> str:
    return AGGREGATION_TYPES[aggregation.name]


def rules_for(output_type: str, conventions: str) -> tuple[str, ...] | None:
    """The rule ids to run on a table output, or ``None`` when the type is unknown."""
    return TABLE_RULES.get(conventions, {}).get(output_type)


def needs_totals(output_type: str, conventions: str) -> bool:
    """Whether the rules compare cells with their row or column totals (a mode compares its
    modal count with its own group instead)."""
    return output_type != "mode" and "class_disclosure" in (
        rules_for(output_type, conventions) or ()
    )
