"""Variable specifications of a dataset: parsed from CSV or JSON, validated before registration.

CSV: a header row with ``name`` and ``sensitivity`` (``description`` optional). JSON: a list
of objects with the same keys. Sensitivity is one of the ``Sensitivity`` classes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enclave.control.errors import InvalidInput
from enclave.control.rules import Sensitivity

VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")


@dataclass(frozen=True)
class VariableSpec:
    """One variable of a dataset and its sensitivity class."""

    name: str
    sensitivity: Sensitivity
    description: str = ""


def variable(name: str, sensitivity: str, description: str = "") -> VariableSpec:
    """A validated VariableSpec; InvalidInput names the variable and the problem."""
    name = (name or "").strip()
    if not VARIABLE_NAME.match(name):
        raise InvalidInput(f"invalid variable name {name!r}", rule="invalid_variable")
    try:
        klass = Sensitivity((sensitivity or "").strip())
    except ValueError:
        known = ", ".join(s.value for s in Sensitivity)
        raise InvalidInput(
            f"variable {name}: unknown sensitivity {sensitivity!r}; known: {known}",
            rule="invalid_variable",
        ) from None
    return VariableSpec(name, klass, (description or "").strip()[:2000])


def check_variables(specs: Iterable[VariableSpec]) -> tuple[VariableSpec, ...]:
    """The specs, refusing an empty list or a repeated name."""
    result = tuple(specs)
    if not result:
        raise InvalidInput("a dataset needs at least one variable", rule="invalid_variable")
    seen: set[str] = set()
    for spec in result:
        if spec.name in seen:
            raise InvalidInput(f"variable {spec.name} is listed twice", rule="invalid_variable")
        seen.add(spec.name)
    return result


def parse_variables(text: str, fmt: str) -> tuple[VariableSpec, ...]:
    """Parse a spec in ``fmt`` (``csv`` or ``json``); InvalidInput on any malformed entry."""
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInput(f"variables file is not JSON: {error}") from error
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise InvalidInput("a JSON variables file must be a list of objects")
        rows: list[Mapping[str, Any]] = data
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"name", "sensitivity"} <= set(reader.fieldnames):
            raise InvalidInput("a CSV variables file needs the columns name and sensitivity")
        rows = list(reader)
    else:
        raise InvalidInput(f"unknown variables format {fmt!r}; use csv or json")
    return check_variables(
        variable(
            str(row.get("name", "")),
            str(row.get("sensitivity", "")),
            str(row.get("description") or ""),
        )
        for row in rows
    )


def read_variables(path: Path) -> tuple[VariableSpec, ...]:
    """Read a ``.csv`` or ``.json`` variables file."""
    fmt = path.suffix.lower().lstrip(".")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"cannot read variables file {path}: {error.strerror}") from error
    return parse_variables(text, fmt)
