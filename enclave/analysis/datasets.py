"""Registered datasets and where a frame's columns came from.

A registered dataset is a file of the project's extract, ``<name>.parquet`` or ``<name>.csv``
in the project's read-only data directory, identified by its name and the SHA-256 of its
bytes (its version). :meth:`Datasets.load` reads it and remembers a fingerprint of every column;
an output whose columns still carry those fingerprints was built from the dataset as loaded
(plus any filters applied with :func:`where`), so a recipe can say how the queue may re-derive
it. A frame the researcher changed (a new or edited column, rows dropped by hand, a merge) no
longer matches, and its outputs are labelled as having no recipe.

A fingerprint is a hash of the multiset of (row label, value) pairs of a column plus its dtype,
so it survives copies, column selection and row re-ordering (which change no table) but not a
changed value, a dropped or duplicated row, or a new dtype (a categorical with extra levels
changes a table).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from enclave.analysis.errors import AnalysisError

DATASET_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")  # the queue's dataset slug
SUFFIXES = (".parquet", ".csv")
OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null")


@dataclass(frozen=True)
class Filter:
    """One row filter in the queue's recipe vocabulary: ``column op value``."""

    column: str
    op: str
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "op": self.op, "value": self.value}


@dataclass(frozen=True)
class Source:
    """A registered dataset as loaded: name, version, the filters applied since, and the
    entity column (the unit protected) declared when it was loaded."""

    dataset: str
    version: str
    filters: tuple[Filter, ...] = ()
    entity: str | None = None


def column_fingerprint(series: pd.Series[Any]) -> str:
    """Order-independent hash of a column's (row label, value) pairs and its dtype."""
    try:
        hashed = pd.util.hash_pandas_object(series, index=True).to_numpy(dtype=np.uint64, copy=True)
    except TypeError:  # unhashable cells (lists, dicts) were never loaded from a dataset file
        return "unhashable"
    hashed.sort()
    digest = hashlib.sha256(hashed.tobytes())
    dtype = series.dtype
    digest.update(str(dtype).encode())
    if isinstance(dtype, pd.CategoricalDtype):
        digest.update(repr(list(dtype.categories)).encode() + repr(dtype.ordered).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class _Entry:
    source: Source
    fingerprints: Mapping[str, str]
    entity: pd.Series[Any] | None  # the entity column as loaded, to count units by it


class FrameTracker:
    """Fingerprints of frames loaded from registered datasets (hashes only, no data)."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def register(self, frame: pd.DataFrame, source: Source, columns: Iterable[str]) -> None:
        prints = {str(c): column_fingerprint(frame[c]) for c in columns}
        entity = None
        if source.entity is not None and prints.get(source.entity) is not None:
            entity = frame[source.entity].copy()
        self._entries.append(_Entry(source, prints, entity))

    def entity_column(self, source: Source) -> pd.Series[Any] | None:
        """The entity column of ``source`` as loaded (indexed by row label), if declared."""
        for entry in reversed(self._entries):
            if entry.source == source and entry.entity is not None:
                return entry.entity
        return None

    def source_of(self, columns: Mapping[str, pd.Series[Any]]) -> Source | None:
        """The most recently registered source whose columns of these names still hold exactly
        these values, or None."""
        if not columns:
            return None
        prints = {name: column_fingerprint(series) for name, series in columns.items()}
        for entry in reversed(self._entries):
            if all(
                fp != "unhashable" and entry.fingerprints.get(name) == fp
                for name, fp in prints.items()
            ):
                return entry.source
        return None

    def matching_columns(self, frame: pd.DataFrame, source: Source) -> list[str]:
        """Columns of ``frame`` that still hold what ``source`` loaded."""
        for entry in reversed(self._entries):
            if entry.source == source:
                return [
                    str(c)
                    for c in frame.columns
                    if entry.fingerprints.get(str(c)) == column_fingerprint(frame[c])
                ]
        return []


class Datasets:
    """The project's registered datasets: a directory holding ``<name>.parquet``/``.csv``, or
    an explicit mapping of names to files."""

    def __init__(self, source: str | Path | Mapping[str, str | Path] | None) -> None:
        self._directory: Path | None = None
        self._files: dict[str, Path] = {}
        if isinstance(source, Mapping):
            for name, path in source.items():
                self._files[_dataset_name(name)] = Path(path)
        elif source is not None:
            self._directory = Path(source)

    def names(self) -> list[str]:
        """Names of the datasets that can be loaded, sorted."""
        names = set(self._files)
        if self._directory is not None and self._directory.is_dir():
            for path in self._directory.iterdir():
                if path.suffix in SUFFIXES and DATASET_NAME.match(path.stem):
                    names.add(path.stem)
        return sorted(names)

    def path(self, name: str) -> Path:
        """The file of dataset ``name``; AnalysisError if it is not registered."""
        _dataset_name(name)
        if name in self._files:
            path = self._files[name]
            if path.suffix not in SUFFIXES:
                raise AnalysisError(f"dataset {name}: {path.name} is not a .parquet or .csv file")
            if path.is_file() and not path.is_symlink():
                return path
        elif self._directory is not None:
            for suffix in SUFFIXES:
                candidate = self._directory / f"{name}{suffix}"
                if candidate.is_file() and not candidate.is_symlink():
                    return candidate
        known = ", ".join(self.names()) or "none"
        raise AnalysisError(f"no registered dataset named {name!r} (registered: {known})")

    def read(self, name: str) -> tuple[pd.DataFrame, str]:
        """The dataset's frame and its version ``sha256:<hex>``, both from one read of the
        file's bytes (so the version is exactly what was read)."""
        path = self.path(name)
        data = path.read_bytes()
        version = "sha256:" + hashlib.sha256(data).hexdigest()
        try:
            if path.suffix == ".parquet":
                frame = pd.read_parquet(io.BytesIO(data))
            else:
                frame = pd.read_csv(io.BytesIO(data))
        except (OSError, ValueError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise AnalysisError(f"cannot read dataset {name}: {first}") from None
        return frame, version


def _dataset_name(name: object) -> str:
    if not isinstance(name, str) or not DATASET_NAME.match(name):
        raise AnalysisError(
            f"dataset name {str(name)[:40]!r} must be lower-case letters, digits and dashes"
        )
    return name


def parse_filters(filters: Iterable[Any]) -> tuple[Filter, ...]:
    """Filters given as ``(column, op, value)`` tuples, dicts or :class:`Filter`."""
    out = []
    for raw in filters:
        if isinstance(raw, Filter):
            out.append(check_filter(raw.column, raw.op, raw.value))
        elif isinstance(raw, Mapping):
            out.append(check_filter(raw.get("column"), raw.get("op"), raw.get("value")))
        elif isinstance(raw, Sequence) and not isinstance(raw, str) and len(raw) in (2, 3):
            out.append(check_filter(*raw))
        else:
            raise AnalysisError(f"a filter is (column, op, value); got {raw!r}")
    return tuple(out)


def _plain(value: Any, column: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise AnalysisError(
        f"filter on {column!r}: compare with a string, number, boolean or None, "
        f"not {type(value).__name__}"
    )


def check_filter(column: Any, op: Any, value: Any = None) -> Filter:
    """A validated :class:`Filter`; AnalysisError naming the problem."""
    if not isinstance(column, str) or not column:
        raise AnalysisError("a filter needs a column name")
    if op not in OPS:
        raise AnalysisError(f"filter op {op!r} is not one of {', '.join(OPS)}")
    if op in ("in", "not_in"):
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise AnalysisError(f"filter {column} {op}: give a list of values")
        values = [_plain(v, column) for v in value]
        if not values:
            raise AnalysisError(f"filter {column} {op}: the list of values is empty")
        return Filter(column, op, values)
    if op in ("is_null", "not_null"):
        return Filter(column, op, None)
    return Filter(column, op, _plain(value, column))


def apply_filter(frame: pd.DataFrame, rule: Filter) -> pd.DataFrame:
    """The rows of ``frame`` that satisfy ``rule`` (a pandas mask; no ``eval``/``query``)."""
    if rule.column not in frame.columns:
        raise AnalysisError(f"filter column {rule.column!r} is not in the data")
    column = frame[rule.column]
    try:
        if rule.op == "in":
            mask = column.isin(rule.value)
        elif rule.op == "not_in":
            mask = ~column.isin(rule.value)
        elif rule.op == "is_null":
            mask = column.isna()
        elif rule.op == "not_null":
            mask = column.notna()
        else:
            mask = _COMPARE[rule.op](column, rule.value)
    except TypeError:
        raise AnalysisError(
            f"filter {rule.column} {rule.op} {rule.value!r} compares incompatible types"
        ) from None
    return frame[mask.to_numpy(dtype=bool, na_value=False)]


_COMPARE: dict[str, Any] = {
    "==": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
}
