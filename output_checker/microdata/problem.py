"""What an anonymisation problem is (which variables play which role) and what "safe" means.

``MicrodataProblem`` names the key variables (quasi-identifiers), the numeric (continuous)
variables, the optional weight, household id and strata variables, the sensitive variables (for
l-diversity) and ``alpha`` (the weight of a missing key value when counting matches). It is a
plain settings object that round-trips through JSON, so a problem can be stored beside the data.

``RiskTarget`` is the release criterion: every record k-anonymous and a global risk (expected
re-identifications as a share of the records) at most ``max_global_risk``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import numpy as np
import pandas as pd

_LIST_FIELDS = ("keys", "numeric", "sensitive")
_NAME_FIELDS = ("weight", "household", "strata")


def _names(value: object, field_name: str) -> tuple[str, ...]:
    """A tuple of non-empty, distinct variable names from a list (or one name)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable):
        raise ValueError(f"{field_name} must be a list of variable names")
    names = tuple(value)
    bad = [name for name in names if not isinstance(name, str) or not name]
    if bad:
        raise ValueError(f"{field_name} must hold non-empty names, got {bad!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{field_name} names a variable more than once: {', '.join(repeated)}")
    return names


@dataclass(frozen=True)
class MicrodataProblem:
    """The roles of the variables of one microdata file (sdcMicro's ``createSdcObj`` arguments)."""

    keys: tuple[str, ...]
    numeric: tuple[str, ...] = ()
    weight: str | None = None
    household: str | None = None
    strata: str | None = None
    sensitive: tuple[str, ...] = ()
    alpha: float = 1.0

    def __post_init__(self) -> None:
        # Lists are accepted and frozen to tuples so the object stays hashable and immutable.
        for name in _LIST_FIELDS:
            object.__setattr__(self, name, _names(getattr(self, name), name))
        if not self.keys:
            raise ValueError("keys must name at least one key variable")
        for name in _NAME_FIELDS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a variable name or None, got {value!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float):
            raise ValueError(f"alpha must be a number in [0, 1], got {self.alpha!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        roles: dict[str, str] = {}
        for role, names in self._roles():
            for name in names:
                if name in roles:
                    raise ValueError(f"variable {name!r} is both {roles[name]} and {role}")
                roles[name] = role

    def _roles(self) -> list[tuple[str, tuple[str, ...]]]:
        single = [(n, (getattr(self, n),)) for n in _NAME_FIELDS if getattr(self, n) is not None]
        return [("keys", self.keys), ("numeric", self.numeric), ("sensitive", self.sensitive)] + [
            (role, names) for role, names in single
        ]

    @property
    def columns(self) -> tuple[str, ...]:
        """Every variable the problem names, in role order."""
        return tuple(name for _, names in self._roles() for name in names)

    def validate(self, data: pd.DataFrame) -> None:
        """Raise a ValueError naming the variables missing from ``data`` or unusable there."""
        missing = [name for name in self.columns if name not in data.columns]
        if missing:
            raise ValueError(f"variables not in the data: {', '.join(missing)}")
        if len(data) == 0:
            raise ValueError("the data has no records")
        for name in self.numeric:
            if not pd.api.types.is_numeric_dtype(data[name]):
                raise ValueError(f"numeric variable {name!r} is not numeric")
        if self.weight is not None:
            w = data[self.weight]
            if not pd.api.types.is_numeric_dtype(w):
                raise ValueError(f"weight variable {self.weight!r} is not numeric")
            values = w.to_numpy(dtype=float, na_value=np.nan)
            if not (np.isfinite(values).all() and (values > 0).all()):
                raise ValueError(f"weight variable {self.weight!r} must be positive and finite")
        if self.household is not None and data[self.household].isna().any():
            raise ValueError(f"household variable {self.household!r} has missing ids")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready settings (lists for the tuples)."""
        out = asdict(self)
        for name in _LIST_FIELDS:
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> MicrodataProblem:
        """The problem from settings; unknown or missing required settings are a ValueError."""
        if not isinstance(settings, Mapping):
            raise ValueError("problem settings must be a table/object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown problem setting(s): {', '.join(unknown)}")
        if "keys" not in settings:
            raise ValueError("problem settings must name the key variables ('keys')")
        return cls(**dict(settings))

    def to_json(self) -> str:
        """The settings as a JSON document (stable key order)."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> MicrodataProblem:
        """The problem from :meth:`to_json`'s output."""
        try:
            settings = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"problem settings are not valid JSON: {error}") from None
        return cls.from_dict(settings)


class _Measured(Protocol):
    """What a target is checked against (``RiskMeasures`` or a workflow's risk summary)."""

    @property
    def global_risk(self) -> float: ...

    @property
    def expected_reidentifications(self) -> float: ...

    @property
    def household_global_risk(self) -> float | None: ...

    def kanon_violations(self, k: float, weighted: bool = False) -> int: ...


@dataclass(frozen=True)
class RiskTarget:
    """The release criterion: k-anonymity and a maximal global (expected re-identification)
    risk. The one rule for every record-level file the enclave holds to a target: anonymised
    files (``Workflow.treat_until``), research extracts (``enclave.linkage.extract_risk``) and
    record-level outputs (``output_checker.record_level``).

    ``max_global_risk`` is a share of the records: the default 1e-4 allows one expected
    re-identification per 10,000 records. It is enforced for **sample** data (with sampling
    weights) only: without weights a file is its own population, each record's risk is 1/fk
    and the global risk is the number of distinct key combinations over the number of
    records, which k-anonymity already bounds (by 1/k) and which a per-10,000 target could
    only meet by blanking nearly every value; it is then reported, not enforced.
    ``max_household_risk`` (optional) also bounds the household global risk when household
    ids are known.
    """

    k: int = 5
    max_global_risk: float = 1e-4
    max_household_risk: float | None = field(default=None)

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        for name in ("max_global_risk", "max_household_risk"):
            value = getattr(self, name)
            if value is None and name == "max_household_risk":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> RiskTarget:
        """The target from settings; unknown settings are a ValueError."""
        if not isinstance(settings, Mapping):
            raise ValueError("target settings must be a table/object")
        unknown = sorted(set(settings) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown target setting(s): {', '.join(unknown)}")
        return cls(**dict(settings))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready settings."""
        return asdict(self)

    def check(self, measures: _Measured, *, weighted: bool = True) -> list[str]:
        """Human-readable failures (empty when the target holds), counts and names only;
        ``weighted``: the measures are of sample data (see the class docstring)."""
        failures: list[str] = []
        violations = measures.kanon_violations(self.k)
        if violations:
            failures.append(f"{violations} record(s) violate {self.k}-anonymity (fk < {self.k})")
        risk = measures.global_risk
        if weighted and not risk <= self.max_global_risk:  # NaN fails too
            failures.append(
                f"global risk {risk:.3g} ({measures.expected_reidentifications:.3g} expected "
                f"re-identifications) exceeds the target {self.max_global_risk:.3g}"
            )
        if self.max_household_risk is not None:
            hh = measures.household_global_risk
            if hh is None:
                failures.append("household risk is bounded but the problem names no household")
            elif not (math.isfinite(hh) and hh <= self.max_household_risk):
                failures.append(
                    f"household global risk {hh:.3g} exceeds the target "
                    f"{self.max_household_risk:.3g}"
                )
        return failures
