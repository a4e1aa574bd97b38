"""A custodian's delivery on disk: a directory with ``delivery.json`` and its CSV files.

``delivery.json`` names the source and agency, the file encoding, the identifier file (its
record-key column, which column carries which identifier role, the date-of-birth format and
sex codes, and any local ids) and the content tables with the schema each must meet::

    {"format": "enclave-delivery/1", "source": "health", "agency": "Ministry of Health",
     "encoding": "utf-8",
     "identifiers": {"file": "identifiers.csv", "record_key": "record_key",
                     "roles": {"given_name": "first_name", ...}, "date_format": "%Y-%m-%d",
                     "sex_codes": ["F", "M"], "local_ids": ["health_number"]},
     "tables": {"physician_visits": {"file": "physician_visits.csv",
                                     "schema": "health.physician_visits"}}}

``write_synthetic`` writes ``enclave synth`` output in this shape, with the truth in a
separate directory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enclave.linkage.columns import ROLES
from enclave.linkage.csvfile import check_encoding
from enclave.linkage.errors import InvalidInput, LinkageError, RowError
from enclave.linkage.link import check_source_name
from enclave.linkage.progress import track
from enclave.linkage.schemas import SCHEMAS, IdentifierLayout, TableSchema
from enclave.synth.ministries import MinistryData

DELIVERY_FORMAT = "enclave-delivery/1"
MANIFEST = "delivery.json"


@dataclass(frozen=True)
class TableFile:
    """One content table of a delivery."""

    name: str
    path: Path
    schema: TableSchema


@dataclass(frozen=True)
class Delivery:
    """A delivery read from disk (not yet validated: see ``ingest``)."""

    directory: Path
    source: str
    agency: str
    encoding: str
    identifiers: Path
    layout: IdentifierLayout
    tables: tuple[TableFile, ...]


def read_delivery(directory: Path) -> Delivery:
    """Read ``directory/delivery.json``.

    Raises:
        InvalidInput: the manifest is missing, is not JSON, or names unknown roles, schemas,
            encodings or files that do not exist (each problem reported on its own).
    """
    manifest = directory / MANIFEST
    problems: list[RowError] = []

    def bad(message: str) -> None:
        problems.append(RowError(str(manifest), 1, "", message))

    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput([RowError(str(manifest), 1, "", "no delivery.json")]) from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InvalidInput([RowError(str(manifest), 1, "", f"unreadable: {error}")]) from None
    if not isinstance(data, dict) or data.get("format") != DELIVERY_FORMAT:
        raise InvalidInput([RowError(str(manifest), 1, "", f"not an {DELIVERY_FORMAT} manifest")])
    source = str(data.get("source", ""))
    try:
        check_source_name(source)
        check_encoding(str(data.get("encoding", "utf-8")))
    except LinkageError as error:
        bad(str(error))
    ident = data.get("identifiers")
    if not isinstance(ident, dict):
        raise InvalidInput([*problems, RowError(str(manifest), 1, "", "no identifiers section")])
    roles = ident.get("roles", {})
    if not isinstance(roles, dict):
        roles = {}
        bad("identifiers.roles must be an object")
    for role in roles:
        if role not in ROLES:
            bad(f"unknown identifier role {role!r}")
    layout = IdentifierLayout(
        record_key=str(ident.get("record_key", "record_key")),
        roles={str(k): str(v) for k, v in roles.items() if k in ROLES},
        date_format=str(ident.get("date_format", "%Y-%m-%d")),
        local_ids=tuple(str(c) for c in ident.get("local_ids", ())),
        sex_codes=tuple(str(c) for c in ident.get("sex_codes", ())),
    )
    identifiers = directory / _plain(str(ident.get("file", "identifiers.csv")), bad)
    if not identifiers.is_file():
        bad(f"identifier file {identifiers.name} does not exist")
    tables: list[TableFile] = []
    raw_tables = data.get("tables", {})
    for name, spec in raw_tables.items() if isinstance(raw_tables, dict) else []:
        schema_id = str(spec.get("schema", "")) if isinstance(spec, dict) else ""
        path = (
            directory / _plain(str(spec.get("file", f"{name}.csv")), bad)
            if isinstance(spec, dict)
            else directory
        )
        if schema_id not in SCHEMAS:
            bad(f"table {name}: unknown schema {schema_id!r}")
        elif not path.is_file():
            bad(f"table {name}: file {path.name} does not exist")
        else:
            tables.append(TableFile(str(name), path, SCHEMAS[schema_id]))
    if problems:
        raise InvalidInput(problems)
    return Delivery(
        directory,
        source,
        str(data.get("agency", source)),
        str(data.get("encoding", "utf-8")),
        identifiers,
        layout,
        tuple(tables),
    )


def _plain(name: str, bad: Callable[[str], None]) -> str:
    """A file name inside the delivery directory; anything with a path is refused (a
    delivery is untrusted input and must not make ingest read other files)."""
    if not name or Path(name).name != name or name in (".", ".."):
        bad(f"file name {name!r} must be a plain name inside the delivery directory")
        return ".invalid"
    return name


def write_synthetic(data: MinistryData, out: Path, *, progress: bool = False) -> dict[str, Any]:
    """Write every delivery to ``out/deliveries/<source>/`` and the truth to ``out/truth/``.

    Returns a summary (rows per file). Raises LinkageError if ``out`` is a non-empty
    directory (nothing is overwritten).
    """
    if out.exists() and any(out.iterdir()):
        raise LinkageError(f"{out} is not empty; choose a new directory")
    summary: dict[str, Any] = {}
    items = list(data.deliveries.items())
    for source, delivery in track(items, "writing deliveries", enabled=progress):
        folder = out / "deliveries" / source
        folder.mkdir(parents=True)
        style = delivery.style
        delivery.identifiers.to_csv(folder / "identifiers.csv", index=False)
        tables: dict[str, Mapping[str, str]] = {}
        for name, frame in delivery.tables.items():
            frame.to_csv(folder / f"{name}.csv", index=False)
            tables[name] = {"file": f"{name}.csv", "schema": f"{source}.{name}"}
        local = [c for r, c in style.columns.items() if r == "local_id"]
        manifest = {
            "format": DELIVERY_FORMAT,
            "source": source,
            "agency": style.agency,
            "encoding": "utf-8",
            "identifiers": {
                "file": "identifiers.csv",
                "record_key": "record_key",
                "roles": {r: c for r, c in style.columns.items() if r != "local_id"},
                "date_format": style.date_format,
                "sex_codes": list(style.sex_codes),
                "local_ids": local,
            },
            "tables": tables,
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        summary[source] = {
            "identifiers": len(delivery.identifiers),
            **{name: len(frame) for name, frame in delivery.tables.items()},
        }
    truth = out / "truth"
    truth.mkdir(parents=True)
    data.truth_links.to_csv(truth / "links.csv", index=False)
    data.truth_persons.to_csv(truth / "persons.csv", index=False)
    (truth / "effects.json").write_text(
        json.dumps(data.effects, indent=2, default=float) + "\n", encoding="utf-8"
    )
    return summary
