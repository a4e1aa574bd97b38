"""The results manifest on disk: its JSON Schema, validation, and atomic reading and writing.

A manifest file holds one record (a JSON object) or a list of records, each as an output's
``to_dict()`` writes it. :data:`SCHEMA` is the versioned JSON Schema (draft 2020-12) shipped in
``output_checker/schema/manifest-v1.json``; ``docs/manifest.md`` documents it field by field.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from output_checker import registry
from output_checker.errors import CheckerError
from output_checker.results import SCHEMA_VERSION

SCHEMA_FILE = f"manifest-v{SCHEMA_VERSION}.json"


def _load_schema() -> dict[str, Any]:
    text = resources.files("output_checker").joinpath("schema", SCHEMA_FILE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


SCHEMA: dict[str, Any] = _load_schema()
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
_LABEL_KEYS = frozenset({"index", "columns"})
_CELL_VALIDATOR = jsonschema.Draft202012Validator(
    {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"], "$ref": "#/$defs/cell"}
)


def json_path(parts: Sequence[str | int]) -> str:
    """A JSONPath-style location such as ``$.cells[3].evidence.top[0]``."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _describe(error: jsonschema.ValidationError) -> str:
    """What is wrong, without quoting the offending value: a record's numbers may be one
    person's contribution, and they must not reach an exception message."""
    expected: Any = error.validator_value
    instance: Any = error.instance
    match error.validator:
        case "required":
            missing = [k for k in expected if isinstance(instance, dict) and k not in instance]
            return f"missing required key {missing[0]!r}" if missing else "missing a required key"
        case "type":
            kinds = expected if isinstance(expected, list) else [expected]
            return f"expected {' or '.join(kinds)}"
        case "enum":
            return f"expected one of {', '.join(map(json.dumps, expected))}"
        case "const":
            return f"expected {json.dumps(expected)}"
        case "additionalProperties":
            # key names come from the schema's vocabulary or a researcher's labels, never values
            known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            extra = sorted(str(key) for key in instance if key not in known)
            return f"unexpected key(s) {', '.join(map(repr, extra))}"
        case "propertyNames":
            return "a key that is not allowed here"
        case "pattern":
            return f"does not match the pattern {expected}"
        case "dependentRequired":
            return "incomplete group of keys: " + "; ".join(
                f"{key!r} needs {', '.join(map(repr, needs))}" for key, needs in expected.items()
            )
        case "oneOf" | "anyOf":
            return "does not match any allowed form"
    return f"violates '{error.validator}' ({json.dumps(expected)})"


def _first_error(validator: jsonschema.Draft202012Validator, instance: Any) -> Any:
    return jsonschema.exceptions.best_match(validator.iter_errors(instance))


def _shape(value: Any, labels: bool = False) -> Any:
    """``value`` with every number replaced by one of its class (sign, integral or not) and,
    where ``labels``, every string by "": all that the cell schema can tell apart (a test
    guards the keywords it uses). Cells of one shape share one verdict."""
    kind = type(value)
    if kind is dict:
        return {k: _shape(v, labels or k in _LABEL_KEYS) for k, v in value.items()}
    if kind is list:
        return [_shape(item, labels) for item in value]
    if kind is str:
        return "" if labels else value
    if kind is float:
        if not math.isfinite(value):
            return str(value)
        sign = (value > 0) - (value < 0)
        return float(sign) if value.is_integer() else sign / 2
    if kind is int:
        return (value > 0) - (value < 0)
    if value is None or kind is bool:
        return value
    return [repr(kind), repr(value)]  # anything else: a shape of its own, checked on its own


def _cell_error(cells: list[Any]) -> tuple[int, Any] | None:
    """The first invalid cell and its error; each distinct cell shape is validated once,
    which keeps a 100,000-cell table fast."""
    seen: set[str] = set()
    for position, cell in enumerate(cells):
        shape = json.dumps(_shape(cell))
        if shape in seen:
            continue
        seen.add(shape)
        error = _first_error(_CELL_VALIDATOR, cell)
        if error is not None:
            return position, error
    return None


def validate(record: Mapping[str, Any]) -> None:
    """Check one manifest record against :data:`SCHEMA` and the output-type registry.

    Raises:
        CheckerError: naming the JSON path of the first problem, on one line.
    """
    if not isinstance(record, Mapping):
        raise CheckerError(
            f"manifest record invalid at $: expected object, got {type(record).__name__}"
        )
    cells = record.get("cells")
    split = record.get("kind") == "table" and isinstance(cells, list)
    error = _first_error(_VALIDATOR, {**record, "cells": []} if split else record)
    where: list[str | int] = []
    if error is None and split:
        assert isinstance(cells, list)
        found = _cell_error(cells)
        if found is not None:
            where, error = ["cells", found[0]], found[1]
    if error is not None:
        path = json_path([*where, *error.absolute_path])
        raise CheckerError(f"manifest record invalid at {path}: {_describe(error)}")
    # a file output may carry any type (unknown types are sent to review, never passed)
    if record["kind"] != "file" and record["output_type"] not in registry.OUTPUT_TYPES:
        raise CheckerError(
            "manifest record invalid at $.output_type: not a registered output type "
            f"({', '.join(registry.OUTPUT_TYPES)})"
        )


def _many(document: Any) -> bool:
    return isinstance(document, list | tuple)


def dumps(record_or_records: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """Validate and serialise a record, or a list of records one per line, as strict JSON
    (no NaN). Compact, because the C encoder is what keeps 100,000-cell tables fast.

    Raises:
        CheckerError: a record is invalid or not JSON-serialisable.
    """
    many = _many(record_or_records)
    records: list[Any] = list(record_or_records) if many else [record_or_records]
    for position, record in enumerate(records):
        try:
            validate(record)
        except CheckerError as error:
            raise CheckerError(f"record {position}: {error}" if many else str(error)) from None
    try:
        lines = [json.dumps(record, ensure_ascii=False, allow_nan=False) for record in records]
    except (TypeError, ValueError) as error:
        raise CheckerError(f"manifest cannot be written as JSON: {error}") from None
    return "[\n" + ",\n".join(lines) + "\n]\n" if many else lines[0] + "\n"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never part.

    The bytes go to a temporary file in the same directory, are flushed and fsynced, and the
    file then replaces ``path`` with :func:`os.replace` (atomic on POSIX and Windows).

    Raises:
        CheckerError: the file cannot be written; ``path`` is then left as it was.
    """
    target = Path(path)
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        tmp_name = None
        _fsync_directory(target.parent)
    except OSError as error:
        raise CheckerError(f"cannot write {target.name}: {error.strerror or error}") from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_json(
    path: str | Path, record_or_records: Mapping[str, Any] | Sequence[Mapping[str, Any]]
) -> None:
    """Validate one record or a list of records and write them atomically to ``path``.

    Raises:
        CheckerError: a record is invalid (nothing is written) or the file cannot be written.
    """
    atomic_write_bytes(path, dumps(record_or_records).encode("utf-8"))


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def read_json(path: str | Path) -> dict[str, Any] | list[dict[str, Any]]:
    """Read a manifest file written by :func:`write_json` and validate every record in it.

    Returns the record, or the list of records, as stored.

    Raises:
        CheckerError: the file is missing, is not JSON, or holds an invalid record.
    """
    source = Path(path)
    try:
        document = json.loads(source.read_text("utf-8"), parse_constant=_reject_constant)
    except FileNotFoundError:
        raise CheckerError(f"manifest file not found: {source.name}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CheckerError(f"cannot read {source.name}: {error}") from None
    except ValueError as error:
        raise CheckerError(
            f"{source.name} is not valid JSON: {str(error).splitlines()[0]}"
        ) from None
    for position, record in enumerate(document if _many(document) else [document]):
        try:
            validate(record)
        except CheckerError as error:
            prefix = f"record {position}: " if _many(document) else ""
            raise CheckerError(f"{source.name}: {prefix}{error}") from None
    return document  # type: ignore[no-any-return]
