"""Rule parameters: defaults per conventions, validation, and the tighten-only project override.

The custodian sets parameters per dataset and project; a project (or researcher) may only make
them stricter. ``Parameters.tightened`` is the one place that rule is enforced.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from output_checker.errors import ParameterError

Conventions = Literal["default", "acro"]
CONVENTIONS: tuple[str, ...] = ("default", "acro")


@dataclass(frozen=True)
class NKRule:
    """(n, k) dominance: unsafe when the n largest contributions exceed k % of the total."""

    n: int
    k: float

    @property
    def key(self) -> str:
        return f"{self.n},{self.k:g}"


@dataclass(frozen=True)
class Parameters:
    """Every tunable number of the primary and model rules (spec §3).

    Use :meth:`for_conventions` for the defaults of a mode and :meth:`tightened` to apply a
    project's overrides. ``None`` switches an optional rule off.
    """

    conventions: Conventions = "default"
    threshold: int = 10
    nk_rules: tuple[NKRule, ...] = (NKRule(1, 50.0), NKRule(2, 85.0))
    p_percent: float | None = 10.0
    pq: tuple[float, float] | None = None
    coalition: int = 1
    class_share: float | None = 0.90
    zeros: Literal["review", "fail"] = "review"
    check_missing: bool = False
    weights_mode: Literal["replicate", "sample_top"] = "replicate"
    dof_threshold: int = 10
    max_saturation: float | None = 0.33
    max_cells: int = 1_000_000
    rounding_base: int = 5
    frequency_range: float = 0.0  # % of a cell's value protecting threshold/class failures
    suppression_costs: Literal["value", "unity", "frequency", "log"] = "value"
    singleton_audit: bool = False  # also audit against contributors who know their own cell
    pair_audit: bool = True  # protect the sum of two primaries with < threshold contributors
    # record-level outputs (output_checker.record_level): each record k-anonymous on the
    # quasi-identifiers, and the expected re-identifications per record at most this share
    microdata_k: int = 5
    microdata_max_global_risk: float = 1e-4
    quasi_identifiers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def for_conventions(cls, conventions: str = "default") -> Parameters:
        """The defaults of ``default`` (tau-Argus/Handbook) or ``acro`` (ACRO 1.0.2) mode."""
        if conventions == "default":
            return cls()
        if conventions == "acro":
            return cls(
                conventions="acro",
                nk_rules=(NKRule(2, 90.0),),
                p_percent=10.0,
                class_share=None,
                zeros="fail",
                max_saturation=None,
            )
        raise ParameterError(
            f"conventions must be one of {', '.join(CONVENTIONS)}; got {conventions!r}"
        )

    @property
    def nk_depth(self) -> int:
        """How many top contributions the evidence must keep: max n of the NK rules, at least 2,
        and enough for a p% coalition."""
        depths = [rule.n for rule in self.nk_rules] + [2, self.coalition + 1]
        return max(depths)

    def tightened(self, **overrides: Any) -> Parameters:
        """Return a copy with ``overrides`` applied, refusing any that loosens a rule."""
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ParameterError(f"unknown parameter(s): {', '.join(unknown)}")
        if "conventions" in overrides and overrides["conventions"] != self.conventions:
            raise ParameterError("conventions cannot be changed by a project override")
        if "quasi_identifiers" in overrides:
            overrides["quasi_identifiers"] = tuple(str(q) for q in overrides["quasi_identifiers"])
        if "nk_rules" in overrides:
            overrides["nk_rules"] = tuple(_as_nk(rule) for rule in overrides["nk_rules"])
        candidate = dataclasses.replace(self, **overrides)
        for name in overrides:
            if not _at_least_as_strict(name, getattr(candidate, name), getattr(self, name)):
                raise ParameterError(
                    f"parameter {name!r} may only be tightened: default {getattr(self, name)!r}, "
                    f"requested {getattr(candidate, name)!r}"
                )
        return candidate

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as recorded in every results manifest."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["nk_rules"] = [[rule.n, rule.k] for rule in self.nk_rules]
        out["pq"] = list(self.pq) if self.pq else None
        out["quasi_identifiers"] = list(self.quasi_identifiers)
        return out


def _as_nk(rule: NKRule | tuple[int, float] | list[float]) -> NKRule:
    if isinstance(rule, NKRule):
        return rule
    n, k = rule
    return NKRule(int(n), float(k))


def _at_least_as_strict(name: str, new: Any, old: Any) -> bool:
    """Whether ``new`` protects at least as much as ``old`` for parameter ``name``."""
    if new == old:
        return True
    match name:
        case "threshold" | "dof_threshold" | "coalition":
            return bool(new >= old)
        case "p_percent":
            return old is None or (new is not None and new >= old)
        case "class_share" | "max_saturation":
            return old is None or (new is not None and new <= old)
        case "zeros":
            return bool(new == "fail")
        case "check_missing":
            return bool(new)
        case "nk_rules":
            # every existing rule must still be covered by a rule at least as strict
            return all(any(r.n >= o.n and r.k <= o.k for r in new) for o in old)
        case "pq":
            return old is None or (new is not None and new[0] / new[1] >= old[0] / old[1])
        case "weights_mode":
            return bool(new == "replicate")
        case "frequency_range":
            return bool(new >= old)
        case "singleton_audit" | "pair_audit":
            return bool(new)
        case "microdata_k":
            return bool(new >= old)
        case "microdata_max_global_risk":
            return bool(new <= old)
        case "quasi_identifiers":
            return set(old) <= set(new)
        case "max_cells" | "rounding_base" | "suppression_costs":
            return True  # operational choices, not disclosure protection
    return False


def _validate(p: Parameters) -> None:
    """Reject values outside their declared range, naming the parameter."""
    checks: list[tuple[str, bool, str]] = [
        ("conventions", p.conventions in CONVENTIONS, f"one of {CONVENTIONS}"),
        ("threshold", isinstance(p.threshold, int) and p.threshold >= 1, "an integer >= 1"),
        ("p_percent", p.p_percent is None or 0 < p.p_percent < 100, "a number in (0, 100)"),
        ("coalition", p.coalition >= 1, "an integer >= 1"),
        ("class_share", p.class_share is None or 0 < p.class_share <= 1, "a share in (0, 1]"),
        ("zeros", p.zeros in ("review", "fail"), "'review' or 'fail'"),
        (
            "weights_mode",
            p.weights_mode in ("replicate", "sample_top"),
            "'replicate' or 'sample_top'",
        ),
        ("dof_threshold", p.dof_threshold >= 0, "an integer >= 0"),
        (
            "max_saturation",
            p.max_saturation is None or 0 < p.max_saturation <= 1,
            "a share in (0, 1]",
        ),
        ("max_cells", p.max_cells >= 1, "an integer >= 1"),
        ("rounding_base", p.rounding_base >= 1, "an integer >= 1"),
        ("microdata_k", isinstance(p.microdata_k, int) and p.microdata_k >= 2, "an integer >= 2"),
        (
            "microdata_max_global_risk",
            0 < p.microdata_max_global_risk < 1,
            "a share in (0, 1)",
        ),
        ("frequency_range", 0 <= p.frequency_range < 100, "a percentage in [0, 100)"),
        (
            "suppression_costs",
            p.suppression_costs in ("value", "unity", "frequency", "log"),
            "'value', 'unity', 'frequency' or 'log'",
        ),
        ("pq", p.pq is None or (0 < p.pq[0] < p.pq[1]), "a pair (p, q) with 0 < p < q"),
    ]
    for rule in p.nk_rules:
        if not isinstance(rule, NKRule) or rule.n < 1 or not 0 < rule.k < 100:
            raise ParameterError(
                f"parameter 'nk_rules' must hold (n >= 1, 0 < k < 100); got {rule!r}"
            )
    for name, ok, expected in checks:
        if not ok:
            raise ParameterError(f"parameter {name!r} must be {expected}; got {getattr(p, name)!r}")
