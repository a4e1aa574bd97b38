"""Treatment recipes: an anonymisation as data (TOML), checked before anything runs.

A recipe file has a ``[problem]`` table (the variables' roles, see :class:`MicrodataProblem`), an
optional ``[target]`` table (``k``, ``max_global_risk``, ``max_household_risk``) and ordered
``[[step]]`` tables, each with a ``method`` and that method's parameters::

    [[step]]
    method = "global_recode"
    variable = "age"
    breaks = [0, 20, 40, 60, 120]

    [[step]]
    method = "pram"
    variables = ["walls"]
    seed = 2024

``METHODS`` maps each method name to the function that runs it and the parameters it takes
(required, optional, with their types). Methods that draw random numbers need an integer
``seed``, so a recipe always gives the same output. A step's own choice of algorithm (MDAV or
mafast, additive or correlated noise, equidistant classes) is called ``algorithm``, because
``method`` names the step. Strata, weights and ``alpha`` come from the problem.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from output_checker.microdata.methods.microaggregation import microaggregation
from output_checker.microdata.methods.noise import add_noise
from output_checker.microdata.methods.pram import pram
from output_checker.microdata.methods.recode import global_recode, group_and_rename, top_bottom_code
from output_checker.microdata.methods.shuffle import shuffle
from output_checker.microdata.methods.suppression import local_suppression
from output_checker.microdata.methods.swapping import rank_swap
from output_checker.microdata.problem import MicrodataProblem, RiskTarget

Params = Mapping[str, Any]
Runner = Callable[[pd.DataFrame, MicrodataProblem, Params], pd.DataFrame]

# Parameter types as TOML gives them (an int is accepted where a float is expected).
_NUMBER = (int, float)
_LIST = (list,)


@dataclass(frozen=True)
class MethodSpec:
    """How a recipe method runs and which parameters it takes (name -> accepted types)."""

    run: Runner
    required: Mapping[str, tuple[type, ...]]
    optional: Mapping[str, tuple[type, ...]] = field(default_factory=dict)
    random: bool = False
    # parameters naming variables, which must be variables of the problem
    variable_params: tuple[str, ...] = ()


def _with(data: pd.DataFrame, column: str, values: pd.Series | np.ndarray) -> pd.DataFrame:
    out = data.copy()
    out[column] = values
    return out


def _strata(data: pd.DataFrame, problem: MicrodataProblem) -> pd.Series | None:
    return None if problem.strata is None else data[problem.strata]


def _global_recode(data: pd.DataFrame, problem: MicrodataProblem, p: Params) -> pd.DataFrame:
    breaks = p["breaks"]
    algorithm = p.get("algorithm", "equidistant" if isinstance(breaks, int) else "explicit")
    recoded = global_recode(data[p["variable"]], breaks, p.get("labels"), algorithm)
    return _with(data, p["variable"], recoded)


def _group_and_rename(data: pd.DataFrame, problem: MicrodataProblem, p: Params) -> pd.DataFrame:
    groups: dict[Any, list[Any]] = {}
    for entry in p["groups"]:
        if not isinstance(entry, Mapping) or set(entry) != {"to", "from"}:
            raise ValueError("group_and_rename 'groups' entries must be {to = ..., from = [...]}")
        if not isinstance(entry["from"], list):
            raise ValueError("group_and_rename 'from' must be a list of categories")
        groups[entry["to"]] = entry["from"]
    return _with(data, p["variable"], group_and_rename(data[p["variable"]], groups, p.get("na_to")))


def _top_bottom_code(data: pd.DataFrame, problem: MicrodataProblem, p: Params) -> pd.DataFrame:
    coded = top_bottom_code(data[p["variable"]], p["value"], p["replacement"], p.get("kind", "top"))
    return _with(data, p["variable"], coded)


def _local_suppression(data: pd.DataFrame, problem: MicrodataProblem, p: Params) -> pd.DataFrame:
    keys = list(problem.keys)
    importance = p.get("importance")
    if isinstance(importance, Mapping):
        unknown = sorted(set(importance) - set(keys))
        if unknown or len(importance) != len(keys):
            raise ValueError("local_suppression 'importance' must give every key variable a rank")
        importance = [importance[key] for key in keys]
    result = local_suppression(
        data[keys], p.get("k", 2), importance, _strata(data, problem), problem.alpha
    )
    out = data.copy()
    for key in keys:
        out[key] = result.keys[key]
    return out


def _pram(data: pd.DataFrame, problem: MicrodataProblem, p: Params) -> pd.DataFrame:
    variables = list(p["variables"])
    result = pram(
        data[variables],
        pd=p.get("pd", 0.8),
        alpha=p.get("alpha", 0.5),
        strata=_strata(data, problem),
        seed=p["seed"],
    )
    out = data.copy()
    for name in variables:
        out[name] = result.values[name]
    return out


def _microaggregation(data: pd.DataFrame, problem: MicrodataProblem, p: Params) -> pd.DataFrame:
    result = microaggregation(
        data, p["variables"], p.get("k", 3), p.get("algorithm", "mdav"), problem.strata
    )
    return result.data


def _add_noise(data: pd.DataFrame, problem: MicrodataProblem, p: Params) -> pd.DataFrame:
    return add_noise(
        data,
        p["variables"],
        p.get("algorithm", "additive"),
        p.get("noise", 150.0),
        p.get("delta", 0.1),
        p["seed"],
    )


def _rank_swap(data: pd.DataFrame, problem: MicrodataProblem, p: Params) -> pd.DataFrame:
    return rank_swap(
        data,
        p["variables"],
        p=p.get("p"),
        top_percent=p.get("top_percent", 5.0),
        bottom_percent=p.get("bottom_percent", 5.0),
        seed=p["seed"],
        r0=p.get("r0"),
        k0=p.get("k0"),
    )


def _shuffle(data: pd.DataFrame, problem: MicrodataProblem, p: Params) -> pd.DataFrame:
    return shuffle(data, p["variables"], p["predictors"], p["seed"])


_SEED = {"seed": (int,)}
METHODS: Mapping[str, MethodSpec] = MappingProxyType(
    {
        "global_recode": MethodSpec(
            _global_recode,
            {"variable": (str,), "breaks": (int, list)},
            {"labels": _LIST, "algorithm": (str,)},
            variable_params=("variable",),
        ),
        "group_and_rename": MethodSpec(
            _group_and_rename,
            {"variable": (str,), "groups": _LIST},
            {"na_to": (str, int, float)},
            variable_params=("variable",),
        ),
        "top_bottom_code": MethodSpec(
            _top_bottom_code,
            {"variable": (str,), "value": _NUMBER, "replacement": _NUMBER},
            {"kind": (str,)},
            variable_params=("variable",),
        ),
        "local_suppression": MethodSpec(
            _local_suppression, {}, {"k": (int,), "importance": (list, dict)}
        ),
        "pram": MethodSpec(
            _pram,
            {"variables": _LIST, **_SEED},
            {"pd": _NUMBER, "alpha": _NUMBER},
            random=True,
            variable_params=("variables",),
        ),
        "microaggregation": MethodSpec(
            _microaggregation,
            {"variables": _LIST},
            {"k": (int,), "algorithm": (str,)},
            variable_params=("variables",),
        ),
        "add_noise": MethodSpec(
            _add_noise,
            {"variables": _LIST, **_SEED},
            {"algorithm": (str,), "noise": _NUMBER, "delta": _NUMBER},
            random=True,
            variable_params=("variables",),
        ),
        "rank_swap": MethodSpec(
            _rank_swap,
            {"variables": _LIST, **_SEED},
            {
                "p": _NUMBER,
                "r0": _NUMBER,
                "k0": _NUMBER,
                "top_percent": _NUMBER,
                "bottom_percent": _NUMBER,
            },
            random=True,
            variable_params=("variables",),
        ),
        "shuffle": MethodSpec(
            _shuffle,
            {"variables": _LIST, "predictors": _LIST, **_SEED},
            random=True,
            variable_params=("variables", "predictors"),
        ),
    }
)


def _type_ok(value: object, types: tuple[type, ...]) -> bool:
    # TOML booleans are ints to Python; no parameter here is a boolean.
    return not isinstance(value, bool) and isinstance(value, types)


@dataclass(frozen=True)
class Step:
    """One treatment step: a method name and its (checked) parameters."""

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = METHODS.get(self.method)
        if spec is None:
            raise ValueError(
                f"unknown method {self.method!r} (known: {', '.join(sorted(METHODS))})"
            )
        params = dict(self.params)
        allowed = {**spec.required, **spec.optional}
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"unknown parameter(s) for {self.method}: {', '.join(unknown)}")
        absent = [name for name in spec.required if name not in params]
        if absent:
            what = "a seed (random method)" if absent == ["seed"] else ", ".join(absent)
            raise ValueError(f"{self.method} needs {what}")
        for name, value in params.items():
            if not _type_ok(value, allowed[name]):
                kinds = "/".join(t.__name__ for t in allowed[name])
                raise ValueError(f"{self.method} parameter {name!r} must be {kinds}")
        object.__setattr__(self, "params", MappingProxyType(params))

    @property
    def spec(self) -> MethodSpec:
        """The method's entry in ``METHODS``."""
        return METHODS[self.method]

    def variables(self) -> list[str]:
        """The variables the step names."""
        names: list[str] = []
        for param in self.spec.variable_params:
            value = self.params.get(param)
            names.extend([value] if isinstance(value, str) else list(value or []))
        return names

    def check(self, problem: MicrodataProblem) -> None:
        """Raise a ValueError when the step names a variable the problem does not declare."""
        declared = set(problem.keys) | set(problem.numeric) | set(problem.sensitive)
        undeclared = [name for name in self.variables() if name not in declared]
        if undeclared:
            raise ValueError(
                f"{self.method} names variable(s) not declared in the problem: "
                f"{', '.join(map(str, undeclared))}"
            )

    def run(self, data: pd.DataFrame, problem: MicrodataProblem) -> pd.DataFrame:
        """The data after this step (a new frame; ``data`` is not changed)."""
        return self.spec.run(data, problem, self.params)

    def to_dict(self) -> dict[str, Any]:
        """The step as a recipe table."""
        return {"method": self.method, **self.params}

    def describe(self) -> str:
        """One line: the method and its parameters."""
        args = ", ".join(f"{name}={value!r}" for name, value in self.params.items())
        return f"{self.method}({args})"

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> Step:
        """A step from a ``[[step]]`` table."""
        if not isinstance(table, Mapping) or "method" not in table:
            raise ValueError("every [[step]] needs a 'method'")
        params = {name: value for name, value in table.items() if name != "method"}
        return cls(str(table["method"]), params)


@dataclass(frozen=True)
class Recipe:
    """A problem, a target and the ordered steps to reach it."""

    problem: MicrodataProblem
    target: RiskTarget = field(default_factory=RiskTarget)
    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        for step in self.steps:
            step.check(self.problem)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Recipe:
        """A recipe from the parsed TOML document."""
        unknown = sorted(set(document) - {"problem", "target", "step"})
        if unknown:
            raise ValueError(f"unknown recipe table(s): {', '.join(unknown)}")
        if "problem" not in document:
            raise ValueError("the recipe needs a [problem] table")
        steps = document.get("step", [])
        if not isinstance(steps, list):
            raise ValueError("steps must be given as [[step]] tables")
        target = RiskTarget.from_dict(document.get("target", {}))
        return cls(
            MicrodataProblem.from_dict(document["problem"]),
            target,
            tuple(Step.from_dict(table) for table in steps),
        )

    @classmethod
    def loads(cls, text: str) -> Recipe:
        """A recipe from TOML text."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"the recipe is not valid TOML: {error}") from None
        return cls.from_dict(document)

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        """A recipe from a TOML file."""
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"cannot read recipe {Path(path).name}: {error}") from None
        return cls.loads(text)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as a plain document (the inverse of :meth:`from_dict`)."""
        problem = {k: v for k, v in self.problem.to_dict().items() if v not in (None, [])}
        target = {k: v for k, v in self.target.to_dict().items() if v is not None}
        return {
            "problem": problem,
            "target": target,
            "step": [step.to_dict() for step in self.steps],
        }
