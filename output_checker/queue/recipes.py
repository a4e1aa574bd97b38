"""Declarative recipes: how a table output was made, so a trusted worker can make it again.

A recipe names a dataset in the project's read-only data directory and its version, row
filters, the grouping, the values and the aggregation::

    {"dataset": "hospital-episodes", "version": "sha256:…",
     "filters": [{"column": "year", "op": ">=", "value": 2020}],
     "grouping": {"index": ["region"], "columns": ["sex"]},
     "values": "income", "aggregation": "mean",
     "entity": null, "weights": null, "margins": false}

It is data, never code: filters are a fixed vocabulary of comparisons applied with pandas
masks (no ``eval``, no ``query``), names are checked before they touch the file system, and
the dataset is read from ``<data_dir>/projects/<slug>/data/<dataset>.parquet`` (or ``.csv``)
whose sha256 must equal the recipe's version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from output_checker.api import check_table
from output_checker.errors import CheckerError
from output_checker.io import read_data
from output_checker.parameters import Parameters
from output_checker.queue.errors import InvalidInput
from output_checker.queue.storage import file_sha256
from output_checker.results import TableResult
from output_checker.rounding import rounded_frame

DATASET = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
VERSION = re.compile(r"^sha256:[0-9a-f]{64}$")
OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null")
KEYS = frozenset(
    {
        "dataset",
        "version",
        "filters",
        "grouping",
        "values",
        "aggregation",
        "entity",
        "weights",
        "margins",
        "protect",
        "round",
    }
)
DATA_SUFFIXES = (".parquet", ".csv")


class DataMismatch(CheckerError):
    """The recipe cannot be re-derived from the project's data as stated."""


@dataclass(frozen=True)
class Filter:
    """One row filter: ``column op value`` from a fixed vocabulary."""

    column: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Recipe:
    """How a table was made: dataset and version, filters, grouping, values."""

    dataset: str
    version: str
    index: tuple[str, ...]
    columns: tuple[str, ...] = ()
    values: str | None = None
    aggregation: str = "count"
    filters: tuple[Filter, ...] = ()
    entity: str | None = None
    weights: str | None = None
    margins: bool = False
    protect: bool = False  # the table was protected (secondary suppression) as submitted
    round: int | None = None  # every published value rounded to this base (a mitigation)

    def to_dict(self) -> dict[str, Any]:
        """The recipe's JSON form, as the bundle manifest holds it."""
        return {
            "dataset": self.dataset,
            "version": self.version,
            "filters": [{"column": f.column, "op": f.op, "value": f.value} for f in self.filters],
            "grouping": {"index": list(self.index), "columns": list(self.columns)},
            "values": self.values,
            "aggregation": self.aggregation,
            "entity": self.entity,
            "weights": self.weights,
            "margins": self.margins,
            "protect": self.protect,
            "round": self.round,
        }

    def columns_needed(self) -> list[str]:
        names = [*self.index, *self.columns, *(f.column for f in self.filters)]
        names += [c for c in (self.values, self.entity, self.weights) if c]
        return list(dict.fromkeys(names))


def _bad(where: str, problem: str) -> InvalidInput:
    return InvalidInput(f"recipe invalid at {where}: {problem}", rule="bad_recipe")


def _column(value: Any, where: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > 128:
        raise _bad(where, "expected a column name")
    return value


def _columns(value: Any, where: str, *, required: bool) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or (required and not value):
        raise _bad(where, "expected a list of column names")
    return tuple(str(_column(v, f"{where}[{i}]")) for i, v in enumerate(value))


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    raise _bad(where, "expected a string, number, boolean or null")


def _filter(raw: Any, where: str) -> Filter:
    if not isinstance(raw, Mapping) or set(raw) - {"column", "op", "value"}:
        raise _bad(where, "expected {column, op, value}")
    op = raw.get("op")
    if op not in OPS:
        raise _bad(f"{where}.op", f"expected one of {', '.join(OPS)}")
    column = str(_column(raw.get("column"), f"{where}.column"))
    value = raw.get("value")
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise _bad(f"{where}.value", "expected a non-empty list")
        value = [_scalar(v, f"{where}.value[{i}]") for i, v in enumerate(value)]
    elif op in ("is_null", "not_null"):
        value = None
    else:
        value = _scalar(value, f"{where}.value")
    return Filter(column, op, value)


def parse_recipe(raw: Any) -> Recipe:
    """A Recipe from its JSON form; InvalidInput (rule ``bad_recipe``) naming the bad key."""
    if not isinstance(raw, Mapping):
        raise _bad("$", "expected an object")
    extra = sorted(set(raw) - KEYS)
    if extra:
        raise _bad("$", f"unexpected key(s) {', '.join(extra)}")
    dataset, version = raw.get("dataset"), raw.get("version")
    if not isinstance(dataset, str) or not DATASET.match(dataset):
        raise _bad("$.dataset", "expected a dataset slug")
    if not isinstance(version, str) or not VERSION.match(version):
        raise _bad("$.version", "expected sha256:<64 hex digits>")
    grouping = raw.get("grouping")
    if not isinstance(grouping, Mapping) or set(grouping) - {"index", "columns"}:
        raise _bad("$.grouping", "expected {index, columns}")
    filters = raw.get("filters") or []
    if not isinstance(filters, list):
        raise _bad("$.filters", "expected a list")
    aggregation = raw.get("aggregation", "count")
    if not isinstance(aggregation, str):
        raise _bad("$.aggregation", "expected a string such as count or mean")
    margins, protect = raw.get("margins", False), raw.get("protect", False)
    if not isinstance(margins, bool):
        raise _bad("$.margins", "expected true or false")
    if not isinstance(protect, bool):
        raise _bad("$.protect", "expected true or false")
    base = raw.get("round")
    if base is not None and (isinstance(base, bool) or not isinstance(base, int) or base < 2):
        raise _bad("$.round", "expected a whole number of at least 2, or null")
    return Recipe(
        dataset=dataset,
        version=version,
        index=_columns(grouping.get("index"), "$.grouping.index", required=True),
        columns=_columns(grouping.get("columns"), "$.grouping.columns", required=False),
        values=_column(raw.get("values"), "$.values", optional=True),
        aggregation=aggregation,
        filters=tuple(_filter(f, f"$.filters[{i}]") for i, f in enumerate(filters)),
        entity=_column(raw.get("entity"), "$.entity", optional=True),
        weights=_column(raw.get("weights"), "$.weights", optional=True),
        margins=margins,
        protect=protect,
        round=base,
    )


def project_data_dir(data_dir: Path, project: str) -> Path:
    """The project's read-only research extract: ``<data_dir>/projects/<slug>/data``."""
    return Path(data_dir) / "projects" / project / "data"


def dataset_file(data_dir: Path, dataset: str) -> Path:
    """The dataset's file in a project's data directory; DataMismatch if there is none."""
    if not DATASET.match(dataset):
        raise DataMismatch(f"invalid dataset name {dataset!r}")
    for suffix in DATA_SUFFIXES:
        candidate = data_dir / f"{dataset}{suffix}"
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    raise DataMismatch(f"dataset {dataset} is not in the project's data directory")


def _mask(frame: pd.DataFrame, rule: Filter) -> pd.Series[bool]:
    column = frame[rule.column]
    mask: Any
    match rule.op:
        case "==":
            mask = column == rule.value
        case "!=":
            mask = column != rule.value
        case "<":
            mask = column < rule.value
        case "<=":
            mask = column <= rule.value
        case ">":
            mask = column > rule.value
        case ">=":
            mask = column >= rule.value
        case "in":
            mask = column.isin(rule.value)
        case "not_in":
            mask = ~column.isin(rule.value)
        case "is_null":
            mask = column.isna()
        case _:
            mask = column.notna()
    return cast("pd.Series[bool]", mask)


def recipe_frame(recipe: Recipe, data_dir: Path) -> pd.DataFrame:
    """The recipe's rows of the project's data: its dataset at its version, filtered. The
    index keeps each row's position in the dataset file (the ledger's entity when the recipe
    names none).

    Raises DataMismatch if the dataset is missing or is another version.
    """
    path = dataset_file(data_dir, recipe.dataset)
    actual = "sha256:" + file_sha256(path)
    if actual != recipe.version:
        raise DataMismatch(
            f"dataset {recipe.dataset} is at version {actual[:19]}…, not {recipe.version[:19]}…"
        )
    frame = read_data(path, recipe.columns_needed()).reset_index(drop=True)
    for rule in recipe.filters:
        try:
            frame = frame[_mask(frame, rule)]
        except TypeError:
            raise DataMismatch(f"filter on {rule.column} compares incompatible types") from None
    return frame


def derive(recipe: Recipe, data_dir: Path, parameters: Parameters) -> TableResult:
    """Re-make the table from the project's data with the project's parameters.

    Raises DataMismatch if the dataset is missing or is another version, and CheckerError
    subclasses if the recipe's columns or aggregation do not fit the data.
    """
    return derive_from(recipe, recipe_frame(recipe, data_dir), parameters)


def published(recipe: Recipe, result: TableResult) -> pd.DataFrame:
    """The table as the recipe publishes it: rounded when it says so."""
    frame = result.to_frame()
    return frame if recipe.round is None else rounded_frame(frame, recipe.round)


def derive_from(recipe: Recipe, frame: pd.DataFrame, parameters: Parameters) -> TableResult:
    """The recipe's table from its rows (:func:`recipe_frame`)."""
    return check_table(
        frame.reset_index(drop=True),
        list(recipe.index),
        list(recipe.columns) or None,
        values=recipe.values,
        aggfunc=recipe.aggregation if recipe.values is not None else None,
        entity=recipe.entity,
        weights=recipe.weights,
        margins=recipe.margins,
        parameters=parameters,
        protect=recipe.protect,
    )
