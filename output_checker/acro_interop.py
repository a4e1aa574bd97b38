"""ACRO ``results.json`` export and import (spec §12.4).

Export keeps every key ACRO 1.0.2 writes, so SACRO-Viewer and ``acro.record.load_records``
can read the file, and puts the enclave's full manifest record under one namespaced key,
``"enclave"``, per output. Import maps ACRO's check names back to rule ids, keeps the flagged
cell positions, and re-checks every file against ``checksums/<file>.txt``: a missing file, a
missing checksum or a mismatch is reported on that output and sends it to ``review`` at least.
This module never imports ACRO.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from output_checker import __version__, manifest
from output_checker.errors import CheckerError
from output_checker.status import Status

ACRO_VERSION = "1.0.2"  # the results.json format written; SACRO-Viewer checks major.minor
NAMESPACE = "enclave"
RESULTS_FILE = "results.json"
CHECKSUMS_DIR = "checksums"

RULE_TO_CHECK: dict[str, str] = {
    "threshold": "MinimumThresholdCheck",
    "nk": "NKCheck",
    "p_percent": "PPercentCheck",
    "zero": "PresenceOfZeroCheck",
    "missing": "MissingCheck",
    "dof": "MinimumDoFCheck",
    # ACRO has no such checks; exported in its naming style so a viewer still lists them
    "class_disclosure": "ClassDisclosureCheck",
    "negative": "NegativeValueCheck",
    "quantile": "QuantileCheck",
    "extreme": "ExtremeValueCheck",
}
CHECK_TO_RULE: dict[str, str] = {check: rule for rule, check in RULE_TO_CHECK.items()}
# ACRO checks that never flag a cell of their own: notes for the checker, not rules
INFORMATIONAL_CHECKS = frozenset(
    {"PresenceOfLinkedTableCheck", "StatbarnDataCheck", "RequiredZeroCheck", "AllSameValuesCheck"}
)

# output type -> ACRO statbarn and its risks (ACRO's statbarns.json)
_STATBARNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "frequency": ("Frequencies", ("ClassDisclosure", "Differencing", "LowCount")),
    "histogram": ("Frequencies", ("ClassDisclosure", "Differencing", "LowCount")),
    "magnitude": ("LinearAggregations", ("Dominance", "Differencing", "LowCount")),
    "mean": ("LinearAggregations", ("Dominance", "Differencing", "LowCount")),
    "quantile": ("Position", ("ClassDisclosure", "LowCount")),
    "extreme": ("Endpoints", ("ClassDisclosure", "LowCount")),
    "mode": ("Mode", ("Differencing", "ClassDisclosure")),
    "moment": ("Shape", ("LowDOF",)),
    "regression": ("CorrelationCoefficients", ("LowDOF",)),
    "survival": ("HazardSurvivalTables", ("ImplicitTables", "LowDOF")),
}
_IMAGE_FORMATS = frozenset({"png", "jpg", "jpeg", "pdf", "svg"})

Position = tuple[int, int]


# ----- export ---------------------------------------------------------------------------------
def _label(labels: Sequence[Any]) -> str:
    """A row or column label as pandas ``to_json`` writes it (tuple repr for several levels)."""
    return str(labels[0]) if len(labels) == 1 else repr(tuple(labels))


def table_positions(record: Mapping[str, Any]) -> list[Position]:
    """Integer (row, column) position of each cell of a table record in its output table."""
    rows: dict[tuple[Any, ...], int] = {}
    cols: dict[tuple[Any, ...], int] = {}
    out = []
    for cell in record["cells"]:
        row = rows.setdefault(tuple(cell["index"]), len(rows))
        out.append((row, cols.setdefault(tuple(cell["columns"]), len(cols))))
    return out


def _table_parts(
    record: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """ACRO's ``sdc``, ``outcome`` and per-check status for a table record."""
    rules = list(record["rules"])
    flagged: dict[str, list[list[int]]] = {RULE_TO_CHECK[r]: [] for r in rules}
    worst = {RULE_TO_CHECK[r]: Status.PASS for r in rules}
    outcome: dict[str, dict[str, str]] = {}
    single_column = [record["statistic"]]
    for (row, col), cell in zip(table_positions(record), record["cells"], strict=True):
        text = ""
        for rule, check in cell["checks"].items():
            status = Status.from_label(check["status"])
            if status != Status.PASS:
                name = RULE_TO_CHECK[rule]
                flagged[name].append([row, col])
                worst[name] = max(worst[name], status)
                text += f"{name}; "
        column = _label(cell["columns"] or single_column)
        outcome.setdefault(column, {})[_label(cell["index"])] = text or "ok"
    sdc = {"summary": {k: len(v) for k, v in flagged.items()}, "cells": flagged}
    return sdc, outcome, {k: v.label for k, v in worst.items()}


def _acro_type(record: Mapping[str, Any]) -> str:
    kind = record["kind"]
    if kind == "model":
        return "regression"
    if kind == "histogram":
        return "histogram"
    if kind == "survival" and record["output"]["format"].lower() in _IMAGE_FORMATS:
        return "survival plot"
    return "table"


def _command(record: Mapping[str, Any]) -> str:
    request = record.get("request")
    if record["kind"] != "table" or not isinstance(request, Mapping):
        return f"{record['kind']}: {record['output_type']}"
    args = [f"index={request['index']!r}"]
    if request["columns"]:
        args.append(f"columns={request['columns']!r}")
    if request["values"] is not None:
        args += [f"values={request['values']!r}", f"aggfunc={request['aggfunc']!r}"]
    args += [
        f"margins={request['margins']!r}",
        f"conventions={record['parameters']['conventions']!r}",
    ]
    return f"check_table({', '.join(args)})"


def _acro_record(uid: str, record: Mapping[str, Any], file_name: str) -> dict[str, Any]:
    # Only a table's request names index and columns; models, curves and histograms have
    # requests of other shapes.
    given = record.get("request")
    request = given if record["kind"] == "table" and isinstance(given, Mapping) else None
    statbarn, risks = _STATBARNS.get(record["output_type"], ("unknown", ()))
    if record["kind"] == "table":
        sdc, outcome, check_status = _table_parts(record)
        suppressed = any(cell["suppressed"] for cell in record["cells"])
        method = "crosstab" if request and request["columns"] else "pivot_table"
        properties: dict[str, Any] = {
            "method": method,
            "mitigation": "suppress" if suppressed else "none",
        }
    else:
        sdc, outcome, check_status = {}, {}, {}
        properties = {"method": record["output_type"]}
        dof = _find(record, "df_resid")
        if record["kind"] == "model" and isinstance(dof, int):
            properties["dof"] = dof
    exception = record.get("exception")
    return {
        "uid": uid,
        "status": record["status"],
        "type": _acro_type(record),
        "properties": properties,
        "files": [{"name": file_name, "sdc": sdc}],
        "outcome": outcome,
        "command": _command(record),
        "summary": record["summary"],
        "timestamp": record["created"],
        "comments": [],
        "exception": exception if isinstance(exception, str) else "",
        "fair": {
            "context": "https://w3id.org/statbarnsdc#",
            "statbarn": statbarn,
            "risks": list(risks),
            "checks_needed": list(check_status),
            "common_mitigations": [],
            "check_status": check_status,
            "dependent": (request or {}).get("values") or "unknown",
            "independent": [*request["index"], *request["columns"]] if request else [],
        },
        NAMESPACE: dict(record),
    }


def _find(node: Any, key: str) -> Any:
    """The first value stored under ``key`` anywhere in ``node`` (breadth first), or None."""
    queue = [node]
    while queue:
        item = queue.pop(0)
        if isinstance(item, Mapping):
            if key in item:
                return item[key]
            queue += list(item.values())
        elif isinstance(item, list):
            queue += item
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plain_name(name: object) -> bool:
    """A file name with no directory part: results.json must not point outside its folder."""
    return (
        isinstance(name, str) and name not in ("", ".", "..") and not set(name) & {"/", "\\", "\0"}
    )


def to_acro_results(
    records: Sequence[Mapping[str, Any]], *, files: Mapping[str, Path] | None = None
) -> dict[str, Any]:
    """ACRO 1.0.2's ``results.json`` structure for manifest ``records``.

    Output ``i`` gets uid ``output_i``. ``files`` maps a uid to the file that holds that output
    (its name goes into ``results.json``); the file must hash to the record's
    ``output.sha256``. Without one, the name is ACRO's ``<uid>_0.<format>``.

    Raises:
        CheckerError: a record is invalid, a file is missing or not the checked output, a uid
            in ``files`` is unknown, or two outputs share a file name.
    """
    files = dict(files or {})
    uids = [f"output_{i}" for i in range(len(records))]
    unknown = sorted(set(files) - set(uids))
    if unknown:
        raise CheckerError(f"files given for unknown output(s): {', '.join(unknown)}")
    results: dict[str, Any] = {}
    names: set[str] = set()
    for uid, record in zip(uids, records, strict=True):
        try:
            manifest.validate(record)
        except CheckerError as error:
            raise CheckerError(f"{uid}: {error}") from None
        path = files.get(uid)
        if path is None:
            name = f"{uid}_0.{record['output']['format']}"
        else:
            name = Path(path).name
            if not Path(path).is_file():
                raise CheckerError(f"{uid}: file not found: {name}")
            if _sha256(Path(path)) != record["output"]["sha256"]:
                raise CheckerError(f"{uid}: {name} is not the output that was checked (SHA-256)")
        if name in names:
            raise CheckerError(f"{uid}: file name {name} is used by another output")
        names.add(name)
        results[uid] = _acro_record(uid, record, name)
    return {
        "version": ACRO_VERSION,
        "tool": {
            "@type": "SoftwareApplication",
            "name": "enclave output checker",
            "url": "https://enclave.invalid/output-checker",
            "version": __version__,
        },
        "results": results,
    }


def write_acro_results(
    directory: Path, records: Sequence[Mapping[str, Any]], files: Mapping[str, Path]
) -> Path:
    """Write an ACRO-style folder: the output files, ``results.json`` and ``checksums/``.

    Every output needs its file (``files`` maps uid to path). Each write is atomic. Returns the
    path of ``results.json``.

    Raises:
        CheckerError: as :func:`to_acro_results`, or an output has no file.
    """
    missing = [f"output_{i}" for i in range(len(records)) if f"output_{i}" not in files]
    if missing:
        raise CheckerError(f"no file given for {', '.join(missing)}")
    document = to_acro_results(records, files=files)
    directory = Path(directory)
    (directory / CHECKSUMS_DIR).mkdir(parents=True, exist_ok=True)
    written = []
    for uid, path in files.items():
        data = Path(path).read_bytes()  # hashed again: the file may change after the check above
        if (
            hashlib.sha256(data).hexdigest()
            != document["results"][uid][NAMESPACE]["output"]["sha256"]
        ):
            raise CheckerError(f"{uid}: {Path(path).name} changed while it was exported")
        target = directory / Path(path).name
        manifest.atomic_write_bytes(target, data)
        written.append(target)
    results = directory / RESULTS_FILE
    try:
        text = json.dumps(document, indent=4, allow_nan=False)
    except ValueError as error:
        raise CheckerError(f"results.json cannot be written: {error}") from None
    manifest.atomic_write_bytes(results, text.encode("utf-8"))
    for target in [*written, results]:
        manifest.atomic_write_bytes(
            directory / CHECKSUMS_DIR / f"{target.name}.txt", _sha256(target).encode("ascii")
        )
    return results


# ----- import ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportedFile:
    """One file of an imported output and what its checksum check found."""

    name: str
    verified: bool
    problem: str | None = None


@dataclass(frozen=True)
class ImportedOutput:
    """One output of an ACRO ``results.json``, in the enclave's terms.

    ``status`` is the worst of the status recorded by ACRO, the status of an embedded enclave
    record, and ``review`` when any file failed verification (see ``problems``).
    ``flagged`` maps rule ids to the (row, column) positions ACRO flagged; ``other_checks``
    keeps the positions of checks with no rule id (informational ones and unknown names).
    """

    uid: str
    status: Status
    recorded_status: Status
    acro_type: str
    method: str | None
    summary: str
    flagged: dict[str, tuple[Position, ...]]
    flagged_counts: dict[str, int]
    check_status: dict[str, Status]
    other_checks: dict[str, tuple[Position, ...]]
    row_labels: tuple[str, ...]
    column_labels: tuple[str, ...]
    files: tuple[ImportedFile, ...]
    problems: tuple[str, ...]
    exception: str
    comments: tuple[str, ...]
    properties: dict[str, Any] = field(default_factory=dict)
    enclave: dict[str, Any] | None = None

    @property
    def verified(self) -> bool:
        """Whether every file of the output matched its checksum."""
        return bool(self.files) and all(f.verified for f in self.files)


def _status(value: object, where: str) -> Status:
    if isinstance(value, str) and value.lower() in ("pass", "review", "fail"):
        return Status.from_label(value.lower())
    raise CheckerError(f"{where}: status must be pass, review or fail")


def _positions(value: object, where: str) -> tuple[Position, ...]:
    if not isinstance(value, list):
        raise CheckerError(f"{where}: cell positions must be a list")
    out = []
    for item in value:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in item)
        ):
            raise CheckerError(f"{where}: a cell position is not a pair of integers >= 0")
        out.append((item[0], item[1]))
    return tuple(out)


def _mapping(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def _verify_file(name: object, base_dir: Path | None) -> ImportedFile:
    if not _plain_name(name):
        return ImportedFile(str(name), False, "file name is not a plain name in the folder")
    assert isinstance(name, str)
    if base_dir is None:
        return ImportedFile(name, False, f"{name}: not verified (no folder to check against)")
    path, checksum = base_dir / name, base_dir / CHECKSUMS_DIR / f"{name}.txt"
    if not path.is_file():
        return ImportedFile(name, False, f"{name}: file missing")
    if not checksum.is_file():
        return ImportedFile(name, False, f"{name}: no checksum in {CHECKSUMS_DIR}/")
    expected = checksum.read_text("utf-8", errors="replace").strip().lower()
    if _sha256(path) != expected:
        return ImportedFile(name, False, f"{name}: checksum mismatch (file changed after checking)")
    return ImportedFile(name, True)


def _import_one(
    uid: str, raw: Mapping[str, Any], base_dir: Path | None, shared_problems: list[str]
) -> ImportedOutput:
    where = f"results.json output {uid!r}"
    if not isinstance(raw, Mapping):
        raise CheckerError(f"{where}: not an object")
    recorded = _status(raw.get("status"), where)
    raw_files = raw.get("files")
    if not isinstance(raw_files, list) or not raw_files:
        raise CheckerError(f"{where}: 'files' must be a non-empty list")
    files = []
    sdc: Mapping[str, Any] = {}
    for entry in raw_files:
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise CheckerError(f"{where}: every file needs a 'name'")
        files.append(_verify_file(entry["name"], base_dir))
        sdc = sdc or _mapping(entry, "sdc")  # ACRO repeats one sdc for every file
    flagged: dict[str, tuple[Position, ...]] = {}
    other: dict[str, tuple[Position, ...]] = {}
    problems = list(shared_problems)
    for check, cells in _mapping(sdc, "cells").items():
        rule = CHECK_TO_RULE.get(check)
        positions = _positions(cells, f"{where} {check}")
        (flagged if rule else other)[rule or check] = positions
        if not rule and check not in INFORMATIONAL_CHECKS and positions:
            problems.append(f"unknown ACRO check {check} flags {len(positions)} cell(s)")
    counts = {
        CHECK_TO_RULE[check]: int(n)
        for check, n in _mapping(sdc, "summary").items()
        if check in CHECK_TO_RULE and isinstance(n, int | float) and math.isfinite(n)
    }
    check_status = {
        CHECK_TO_RULE[check]: _status(value, f"{where} {check}")
        for check, value in _mapping(_mapping(raw, "fair"), "check_status").items()
        if check in CHECK_TO_RULE
    }
    problems += [f.problem for f in files if f.problem]
    enclave = raw.get(NAMESPACE)
    worst = recorded
    if enclave is not None:
        try:
            manifest.validate(enclave)
        except CheckerError as error:
            problems.append(f"embedded enclave record: {error}")
            enclave = None
    if enclave is not None:
        ours = Status.from_label(enclave["status"])
        worst = max(worst, ours)
        if ours != recorded:
            problems.append(f"status {recorded.label} differs from the enclave's {ours.label}")
        checked = base_dir / files[0].name if base_dir is not None else None
        if files[0].verified and checked and _sha256(checked) != enclave["output"]["sha256"]:
            problems.append(f"{files[0].name} is not the output the enclave checked")
    status = max(worst, Status.REVIEW) if problems else worst
    outcome = _mapping(raw, "outcome")
    columns = tuple(str(c) for c in outcome)
    first: Any = next(iter(outcome.values()), {})
    properties = _mapping(raw, "properties")
    comments = raw.get("comments")
    comments = comments if isinstance(comments, list) else []
    return ImportedOutput(
        uid=uid,
        status=status,
        recorded_status=recorded,
        acro_type=str(raw.get("type", "unknown")),
        method=properties.get("method"),
        summary=str(raw.get("summary", "")),
        flagged=flagged,
        flagged_counts=counts,
        check_status=check_status,
        other_checks=other,
        row_labels=tuple(str(r) for r in first) if isinstance(first, Mapping) else (),
        column_labels=columns,
        files=tuple(files),
        problems=tuple(problems),
        exception=str(raw.get("exception") or ""),
        comments=tuple(str(c) for c in comments),
        properties=dict(properties),
        enclave=dict(enclave) if enclave is not None else None,
    )


def from_acro_results(
    source: Path | str | Mapping[str, Any], *, base_dir: Path | None = None
) -> list[ImportedOutput]:
    """Read an ACRO ``results.json`` (a path, its folder, or the parsed dict).

    Files are verified against ``checksums/`` in ``base_dir`` (by default the folder of the
    ``results.json`` path); a parsed dict without ``base_dir`` cannot be verified, which every
    output reports. Returns one :class:`ImportedOutput` per output, in file order.

    Raises:
        CheckerError: the file is missing or is not an ACRO results structure.
    """
    shared: list[str] = []
    if isinstance(source, Mapping):
        document: Any = source
    else:
        path = Path(source)
        if path.is_dir():
            path = path / RESULTS_FILE
        try:
            text = path.read_bytes()
            document = json.loads(text)
        except FileNotFoundError:
            raise CheckerError(f"ACRO results file not found: {path.name}") from None
        except (OSError, ValueError) as error:
            raise CheckerError(f"cannot read {path.name}: {str(error).splitlines()[0]}") from None
        base_dir = path.parent if base_dir is None else base_dir
        own = base_dir / CHECKSUMS_DIR / f"{path.name}.txt"
        if own.is_file() and own.read_text("utf-8", errors="replace").strip().lower() != (
            hashlib.sha256(text).hexdigest()
        ):
            shared.append(f"{path.name}: checksum mismatch (edited after it was written)")
    if not isinstance(document, Mapping) or not isinstance(document.get("results"), Mapping):
        raise CheckerError("not an ACRO results structure: no 'results' object")
    if not isinstance(document.get("version"), str):
        raise CheckerError("not an ACRO results structure: no 'version'")
    base = Path(base_dir) if base_dir is not None else None
    return [_import_one(str(uid), raw, base, shared) for uid, raw in document["results"].items()]
