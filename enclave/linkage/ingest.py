"""Ingest a custodian's delivery: validate everything, quarantine bad rows, split the
identifiers (to the linkage zone) from the content (to the content zone), register each
dataset version in the control plane.

All or nothing: if any row of any file fails, the failing rows go to quarantine with a
per-row error report (identifier rows in the linkage zone, content rows in the content
zone), the count is returned in the refusal, and nothing is written to the zones proper or
registered. A delivery that passes is staged, registered, then moved into place.

Only the custodian's approval makes data available to linkage (SATRE 3.1.04): every file of
the delivery must first be a dataset version its custodian approved, checked by the same
``resolve_linkage_inputs`` that ``enclave link files`` uses, before anything is read into
the zones. ``unregistered_input`` skips that check for generated test data (the demo's).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from enclave.control.context import Context
from enclave.control.service.datasets import content_version
from enclave.control.service.ingress import resolve_linkage_inputs
from enclave.control.varspec import VariableSpec, variable
from enclave.linkage import catalogue
from enclave.linkage.csvfile import CsvTable, read_csv
from enclave.linkage.deliveries import Delivery, read_delivery
from enclave.linkage.errors import InvalidInput, RowError
from enclave.linkage.progress import bar
from enclave.linkage.schemas import DEMOGRAPHICS, TableSchema, typed, validate
from enclave.linkage.standardise import UNIQUE_ID, standardise
from enclave.linkage.zones import Zones, remove_tree


@dataclass(frozen=True)
class FileCount:
    """Rows read from one file and how many of them had problems."""

    file: str
    rows: int
    bad_rows: int


class IngestRefused(InvalidInput):
    """The delivery had problems: nothing was registered; bad rows are in ``quarantine``."""

    def __init__(
        self, errors: Sequence[RowError], counts: Sequence[FileCount], quarantine: Sequence[Path]
    ) -> None:
        super().__init__(errors)
        self.counts = tuple(counts)
        self.quarantine = tuple(quarantine)


@dataclass(frozen=True)
class IngestResult:
    """What an accepted delivery became."""

    source: str
    counts: tuple[FileCount, ...]
    identifiers_version: str
    datasets: tuple[str, ...]  # every slug of the delivery (registered now or before)
    registered: tuple[str, ...]  # the slugs registered by this call


@dataclass(frozen=True)
class CheckedDelivery:
    """Every file of a delivery as read, and every problem found in them."""

    delivery: Delivery
    identifiers: CsvTable
    tables: tuple[tuple[str, TableSchema, CsvTable], ...]
    errors: tuple[RowError, ...]


def check_delivery(delivery: Delivery, *, today: date, progress: bool = False) -> CheckedDelivery:
    """Read and validate every file of ``delivery``; collect all problems (never raises for
    bad content)."""
    source = delivery.source
    errors: list[RowError] = []
    files = [delivery.identifiers, *(t.path for t in delivery.tables)]
    steps = bar(len(files), f"checking {source}", enabled=progress, unit="file")
    ident = read_csv(
        delivery.identifiers,
        encoding=delivery.encoding,
        label=_label(delivery, delivery.identifiers),
    )
    errors += ident.errors
    layout = delivery.layout
    schema = layout.schema(source)
    if not ident.frame.empty:
        errors += validate(
            ident.frame,
            schema,
            file=_label(delivery, delivery.identifiers),
            lines=ident.lines,
            today=today,
        )
    keys = (
        set(ident.frame[layout.record_key].dropna()) if layout.record_key in ident.frame else set()
    )
    steps.update()
    tables: list[tuple[str, TableSchema, CsvTable]] = []
    for table in delivery.tables:
        label = _label(delivery, table.path)
        content = read_csv(table.path, encoding=delivery.encoding, label=label)
        errors += content.errors
        if not content.frame.empty:
            errors += validate(
                content.frame, table.schema, file=label, lines=content.lines, today=today
            )
            errors += _references(content, table.schema, keys, label)
        tables.append((table.name, table.schema, content))
        steps.update()
    steps.close()
    return CheckedDelivery(delivery, ident, tuple(tables), tuple(errors))


def _label(delivery: Delivery, path: Path) -> str:
    return f"{delivery.directory.name}/{path.name}"


def _references(
    content: CsvTable, schema: TableSchema, keys: set[str], label: str
) -> list[RowError]:
    """Record keys (and references) that the identifier file does not have."""
    out: list[RowError] = []
    for f in schema.fields:
        if f.kind not in ("key", "record_ref") or f.name not in content.frame:
            continue
        values = content.frame[f.name]
        unknown = values.notna() & ~values.isin(keys)
        for row in unknown[unknown].index:
            out.append(
                RowError(label, content.lines[row], f.name, "record key not in the identifier file")
            )
    return out


def _counts(checked: CheckedDelivery) -> list[FileCount]:
    bad_lines: dict[str, set[int]] = {}
    header_broken: set[str] = set()
    for e in checked.errors:
        if e.line <= 1:
            header_broken.add(e.file)
        bad_lines.setdefault(e.file, set()).add(e.line)
    out = []
    tables = [("", None, checked.identifiers), *checked.tables]
    for _, _, table in tables:
        label = _label(checked.delivery, table.path)
        rows = len(table.frame)
        bad = rows if label in header_broken else len(bad_lines.get(label, set()) - {1})
        out.append(FileCount(label, rows, bad))
    return out


def _quarantine(checked: CheckedDelivery, zones: Zones, stamp: str) -> list[Path]:
    """Write the bad rows and the error report; identifier rows stay in the linkage zone."""
    by_file: dict[str, list[RowError]] = {}
    for e in checked.errors:
        by_file.setdefault(e.file, []).append(e)
    written: list[Path] = []
    ident_label = _label(checked.delivery, checked.identifiers.path)
    tables = [checked.identifiers, *(t for _, _, t in checked.tables)]
    for table in tables:
        label = _label(checked.delivery, table.path)
        problems = by_file.get(label)
        if not problems:
            continue
        zone = zones.linkage if label == ident_label else zones.content
        folder = zones.quarantine(zone, stamp)
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        report = pd.DataFrame(
            [(e.file, e.line, e.column, e.message) for e in problems],
            columns=["file", "line", "column", "message"],
        )
        stem = Path(label).name.removesuffix(".csv")
        report.to_csv(folder / f"{stem}.errors.csv", index=False)
        lines = {e.line for e in problems}
        raw = table.path.read_bytes().splitlines()
        with (folder / f"{stem}.lines.txt").open("w", encoding="utf-8") as handle:
            # every problem line as it was sent, also those that could not be parsed
            for line in sorted(n for n in lines if 1 <= n <= len(raw)):
                text = raw[line - 1].decode(checked.delivery.encoding, errors="replace")
                handle.write(f"{line}\t{text}\n")
        if not table.frame.empty:
            at = pd.Series(table.lines, dtype="int64")
            rows = table.frame[at.isin(lines).to_numpy()].copy()
            rows.insert(0, "line", at[at.isin(lines)].to_numpy())
            rows.to_csv(folder / f"{stem}.rows.csv", index=False)
        written.append(folder)
    return sorted(set(written))


def demographics(identifiers: pd.DataFrame) -> pd.DataFrame:
    """The coarse person attributes the content zone may hold, derived inside the linkage
    unit: month of birth, sex and postcode district, keyed by record key."""
    dob = identifiers.get(
        "date_of_birth", pd.Series(pd.NA, index=identifiers.index, dtype="string")
    )
    postcode = identifiers.get(
        "postcode", pd.Series(pd.NA, index=identifiers.index, dtype="string")
    )
    sex = identifiers.get("sex", pd.Series(pd.NA, index=identifiers.index, dtype="string"))
    return pd.DataFrame(
        {
            UNIQUE_ID: identifiers[UNIQUE_ID].astype("string"),
            "birth_month": dob.astype("string").str[:7],
            "sex": sex.astype("string"),
            "postcode_district": postcode_district(postcode.astype("string")),
        }
    )


def postcode_district(postcode: pd.Series) -> pd.Series:
    """The outward code of a UK-shaped postcode (``AB12 3CD`` -> ``AB12``); else the first
    three characters."""
    spaced = postcode.str.contains(" ", regex=False, na=False)
    return postcode.str.split(" ").str[0].where(spaced, postcode.str[:3])


def _variables(schema: TableSchema) -> tuple[VariableSpec, ...]:
    return tuple(variable(f.name, f.sensitivity, f.description) for f in schema.fields)


def delivery_files(delivery: Delivery) -> list[Path]:
    """Every data file of ``delivery``: the identifier file, then the content tables."""
    return [delivery.identifiers, *(t.path for t in delivery.tables)]


def require_approved(ctx: Context, actor: str, delivery: Delivery) -> None:
    """Refuse unless every file of ``delivery`` is a dataset version approved by its
    custodian (by content hash), recorded as one audited ``use_dataset_version`` by
    ``actor`` (an admin: the linkage unit's operator).

    Raises:
        ControlError: RuleViolation ``unapproved_input`` for a file no custodian approved,
            PermissionDenied ``role`` for an actor who may not use dataset versions (the
            refusal is audited).
    """
    resolve_linkage_inputs(ctx, actor, [str(path) for path in delivery_files(delivery)])


def ingest_delivery(
    ctx: Context,
    actor: str,
    zones: Zones,
    directory: Path,
    *,
    custodian: str,
    purposes: Sequence[str],
    progress: bool = False,
    unregistered_input: bool = False,
) -> IngestResult:
    """Validate, split, store and register the delivery in ``directory``, whose files must
    be custodian-approved dataset versions (``require_approved``) unless
    ``unregistered_input`` (generated test data only: then unchecked).

    Raises:
        InvalidInput: an unreadable or inconsistent ``delivery.json``.
        ControlError: a file is not an approved version (nothing read, stored or
            registered), or the control plane refused a registration (nothing stored).
        IngestRefused: rows with problems (quarantined; nothing stored or registered).
        LinkageError: a dataset is registered at another version (nothing stored).
    """
    delivery = read_delivery(directory)
    if not unregistered_input:
        require_approved(ctx, actor, delivery)
    now = ctx.now()
    checked = check_delivery(delivery, today=now.date(), progress=progress)
    counts = _counts(checked)
    zones.prepare()
    stamp = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{delivery.source}"
    if checked.errors:
        folders = _quarantine(checked, zones, stamp)
        raise IngestRefused(checked.errors, counts, folders)
    layout = delivery.layout
    std = standardise(
        checked.identifiers.frame,
        layout.roles,
        unique_id=layout.record_key,
        date_format=layout.date_format,
    )
    ident_version = content_version(delivery.identifiers)
    source = delivery.source
    entries: list[catalogue.Entry] = [
        catalogue.Entry(
            catalogue.slug_for(source, "identifiers"),
            f"{delivery.agency}: identifiers",
            delivery.agency,
            "Identifiers held by the linkage unit only; never granted.",
            ident_version,
            _variables(layout.schema(source)),
        ),
        catalogue.Entry(
            catalogue.slug_for(source, "demographics"),
            f"{delivery.agency}: demographics",
            delivery.agency,
            "Month of birth, sex and postcode district, derived by the linkage unit.",
            _derived_version(ident_version, "demographics"),
            _variables(DEMOGRAPHICS),
        ),
    ]
    content: list[tuple[catalogue.Entry, pd.DataFrame, TableSchema]] = [
        (entries[1], demographics(std), DEMOGRAPHICS)
    ]
    for (name, schema, table), spec in zip(checked.tables, delivery.tables, strict=True):
        entry = catalogue.Entry(
            catalogue.slug_for(source, name),
            f"{delivery.agency}: {name.replace('_', ' ')}",
            delivery.agency,
            schema.description or f"{name} delivered by {delivery.agency}",
            content_version(spec.path),
            _variables(schema),
        )
        entries.append(entry)
        content.append((entry, typed(table.frame, schema), schema))
    staging = zones.data_dir / f".staging-{stamp}"
    try:
        moves = _stage(zones, staging, source, std, content)
        registered = catalogue.register_all(
            ctx, actor, entries, custodian=custodian, purposes=purposes
        )
        for staged, final in moves:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)
        _record_source(zones, source, ident_version, len(std), now)
    finally:
        remove_tree(staging)
    return IngestResult(
        source, tuple(counts), ident_version, tuple(e.slug for e in entries), tuple(registered)
    )


def _derived_version(version: str, what: str) -> str:
    return "sha256:" + hashlib.sha256(f"{what}:{version}".encode()).hexdigest()


def _stage(
    zones: Zones,
    staging: Path,
    source: str,
    identifiers: pd.DataFrame,
    content: Sequence[tuple[catalogue.Entry, pd.DataFrame, TableSchema]],
) -> list[tuple[Path, Path]]:
    """Write every output under ``staging``; return (staged, final) pairs."""
    staging.mkdir(parents=True)
    os.chmod(staging, 0o700)
    moves: list[tuple[Path, Path]] = []
    staged = staging / f"{source}.identifiers.parquet"
    identifiers.to_parquet(staged, index=False)
    moves.append((staged, zones.identifiers(source)))
    for entry, frame, schema in content:
        data = staging / f"{entry.slug}.parquet"
        frame.to_parquet(data, index=False)
        final = zones.content_table(entry.slug, entry.version)
        meta = staging / f"{entry.slug}.json"
        meta.write_text(
            json.dumps(
                {
                    "slug": entry.slug,
                    "version": entry.version,
                    "source": source,
                    "schema": schema.to_dict(),
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        moves += [(data, final), (meta, final.with_suffix(".json"))]
    return moves


def _record_source(zones: Zones, source: str, version: str, rows: int, now: datetime) -> None:
    path = zones.sources_file
    current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    current[source] = {
        "version": version,
        "rows": rows,
        "ingested_at": now.astimezone(UTC).isoformat(),
    }
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def current_sources(zones: Zones) -> dict[str, dict[str, object]]:
    """The identifier sources ingested so far: source -> version, rows, time."""
    path = zones.sources_file
    if not path.exists():
        return {}
    data: dict[str, dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))
    return data


__all__ = [
    "FileCount",
    "IngestRefused",
    "IngestResult",
    "check_delivery",
    "current_sources",
    "delivery_files",
    "demographics",
    "ingest_delivery",
    "require_approved",
]
