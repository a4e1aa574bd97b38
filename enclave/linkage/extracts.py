"""Research extracts: a project's granted variables, keyed by its own pseudonyms, with
quasi-identifiers coarsened, written read-only into ``projects/<slug>/data/``.

For each grant in force the content-zone table of the granted version is read, only the
granted variables are kept, the record key is replaced by the project pseudonym issued by the
linkage unit (records not yet linked are left out and counted), references to other records
become those records' pseudonyms, and every quasi-identifier is coarsened by its schema's
rule (month of birth to year, postcode district to area), then held to its dataset's
microdata policy (``extract_risk``: k-anonymity on the coarsened quasi-identifiers, local
suppression where needed, refused where that is not enough). The files are Parquet, with a
DuckDB database of views over them and a manifest of SHA-256 hashes, which is registered in
the control plane as a dataset version before the extract is moved into place.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from enclave.control.context import Context
from enclave.control.service import grants as grant_service
from enclave.control.service import projects as project_service
from enclave.control.service.microdata_policy import microdata_policies
from enclave.control.varspec import variable
from enclave.control.views import GrantView
from enclave.linkage import catalogue
from enclave.linkage.errors import LinkageError
from enclave.linkage.extract_risk import TableRisk, protect_table
from enclave.linkage.issue import issue_mapping
from enclave.linkage.progress import track
from enclave.linkage.zones import Zones, remove_tree
from output_checker.microdata.problem import RiskTarget
from output_checker.microdata.recipe import Step

PERSON = "person"
MANIFEST = "manifest.json"
DATABASE = "extract.duckdb"
RISK_REPORT = "disclosure-risk.json"  # each table's microdata risk before and after treatment
OPEN_STATES = ("approved", "active")


@dataclass(frozen=True)
class ExtractFile:
    """One table of the extract."""

    file: str
    dataset: str
    dataset_version: str
    rows: int
    unlinked_rows: int
    columns: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class ExtractResult:
    """Where the extract went and what the control plane registered."""

    directory: Path
    files: tuple[ExtractFile, ...]
    manifest_sha256: str
    registered_as: str
    risks: tuple[TableRisk, ...] = ()  # each table's microdata risk, as in disclosure-risk.json


def coarsen(values: pd.Series, rule: str | None) -> pd.Series:
    """Apply a schema's coarsening rule: ``year`` (YYYY...), ``month`` (YYYY-MM of a date),
    ``area`` (leading letters of a postcode district, else its first character), ``keep``."""
    if rule in (None, "keep"):
        return values
    dated = pd.api.types.is_datetime64_any_dtype(values)
    if rule == "month" and dated:
        months: pd.Series = values.dt.strftime("%Y-%m").astype("string")
        return months
    text = values.astype("string")
    if rule == "year":
        years: pd.Series = (
            values.dt.year if dated else pd.to_numeric(text.str[:4], errors="coerce")
        ).astype("Int64")
        return years
    if rule == "month":
        return text.str[:7]
    letters = text.str.extract(r"^([A-Za-z]+)")[0].astype("string")
    return letters.fillna(text.str[:1])


def coarsened_name(name: str, rule: str | None) -> str:
    """The column name after coarsening (``birth_month`` by year -> ``birth_year``,
    ``postcode_district`` by area -> ``postcode_area``)."""
    if rule == "year":
        return name.removesuffix("_month").removesuffix("_date") + "_year"
    if rule == "month":
        return name.removesuffix("_date") + "_month"
    if rule == "area":
        return name.removesuffix("_district") + "_area"
    return name


def _grants_in_force(ctx: Context, actor: str, project: str) -> list[GrantView]:
    today = ctx.today()
    return [g for g in grant_service.list_grants(ctx, actor, project=project) if g.in_force(today)]


def _content(zones: Zones, grant: GrantView) -> tuple[pd.DataFrame, dict[str, Any]]:
    data = zones.content_table(grant.dataset, grant.dataset_version)
    meta_path = data.with_suffix(".json")
    if not data.exists() or not meta_path.exists():
        raise LinkageError(
            f"dataset {grant.dataset} at the granted version is not in the content zone "
            "(identifier datasets never are)"
        )
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    fields = {f["name"]: f for f in meta["schema"]["fields"]}
    unknown = [v for v in grant.variables if v not in fields]
    direct = [
        v for v in grant.variables if fields.get(v, {}).get("sensitivity") == "direct_identifier"
    ]
    if unknown or direct:
        raise LinkageError(
            f"grant {grant.uuid} names unusable variables: {', '.join(unknown + direct)}"
        )
    frame = pd.read_parquet(data, columns=["record_key", *grant.variables])
    return frame, meta


def _quasi_identifiers(grant: GrantView, fields: Mapping[str, Any]) -> list[str]:
    """The granted quasi-identifiers under their coarsened names."""
    return [
        coarsened_name(name, fields[name]["coarsen"])
        for name in grant.variables
        if fields[name]["sensitivity"] == "quasi_identifier"
    ]


def preview_grant_risk(zones: Zones, grant: GrantView, target: RiskTarget) -> TableRisk:
    """What the extract would do to ``grant``'s table under ``target``: its granted
    quasi-identifiers coarsened, measured per record of the source (before linkage, so per
    source record rather than per person) and suppressed to k; for the custodian deciding
    the grant. LinkageError when the data is not in the content zone or cannot meet it."""
    frame, meta = _content(zones, grant)
    fields = {f["name"]: f for f in meta["schema"]["fields"]}
    quasi = _quasi_identifiers(grant, fields)
    table = pd.DataFrame({"record_key": frame["record_key"].astype(str)})
    for name in grant.variables:
        if fields[name]["sensitivity"] == "quasi_identifier":
            rule = fields[name]["coarsen"]
            table[coarsened_name(name, rule)] = coarsen(frame[name], rule)
    return protect_table(table, grant.dataset, "record_key", quasi, target)[1]


def grant_risk_report(zones: Zones, grant: GrantView, target: RiskTarget) -> str:
    """The HTML report of :func:`preview_grant_risk`, measured once and kept in the linkage
    zone under the hash of everything it depends on: the content version (immutable), its
    metadata, the granted variables and the policy. Later page loads read the file; a new
    policy or grant gets a new report. LinkageError as for the preview (never kept)."""
    data = zones.content_table(grant.dataset, grant.dataset_version)
    meta = data.with_suffix(".json")
    basis = {
        "dataset": grant.dataset,
        "version": grant.dataset_version,
        "meta": hashlib.sha256(meta.read_bytes()).hexdigest() if meta.exists() else None,
        "variables": sorted(grant.variables),
        "target": [target.k, target.max_global_risk, target.max_household_risk],
    }
    key = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()
    kept = zones.reports / "grant-risk" / f"{key}.html"
    if kept.exists():
        return kept.read_text(encoding="utf-8")
    report = preview_grant_risk(zones, grant, target).report
    zones.prepare()  # the linkage zone owner-only, even when no linkage has run yet
    kept.parent.mkdir(parents=True, exist_ok=True)
    partial = kept.with_name(f".{key}.{os.getpid()}.tmp")
    partial.write_text(report, encoding="utf-8")
    os.replace(partial, kept)
    return report


def build_extract(
    ctx: Context,
    actor: str,
    zones: Zones,
    project: str,
    *,
    master_key: bytes,
    custodian: str | None = None,
    treatments: Mapping[str, tuple[Step, ...]] | None = None,
    progress: bool = False,
) -> ExtractResult:
    """Write ``project``'s research extract and register its manifest.

    ``actor`` needs to list grants and register datasets (an admin, or a custodian for
    ``custodian``, default ``actor``). ``treatments`` are recipe steps per dataset, run on
    its table's coarsened quasi-identifiers before its microdata policy is checked. The DuckDB
    views name their Parquet files relative to the data directory, so they work wherever
    sessions mount it: open the database from that directory, or ``SET file_search_path``.

    Raises:
        LinkageError: the project is not approved or active, has no grants in force, or a
            grant's data is not in the content zone. ControlError from the control plane.
    """
    view = project_service.get_project(ctx, actor, project)
    if view.state not in OPEN_STATES:
        raise LinkageError(
            f"project {project} is {view.state}: extracts only for approved or active projects"
        )
    granted = _grants_in_force(ctx, actor, project)
    if not granted:
        raise LinkageError(f"project {project} has no grants in force")
    target = zones.project_data(project)
    staging = target.with_name(f".data-{os.getpid()}.partial")
    remove_tree(staging)
    staging.mkdir(parents=True)
    try:
        policies = microdata_policies(ctx, [g.dataset for g in granted])
        treated = _Treatment(policies, treatments or {})
        files, risks = _write_tables(
            zones, project, granted, staging, master_key, treated, progress
        )
        _write_views(staging, files)
        reports = _write_risk_reports(staging, risks)
        manifest = {
            "project": project,
            "created": ctx.now().isoformat(timespec="seconds"),
            "person_column": PERSON,
            "files": [f.__dict__ | {"columns": list(f.columns)} for f in files],
            "database": {"file": DATABASE, "sha256": _sha256(staging / DATABASE)},
            "disclosure_risk": reports,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        digest = _sha256(staging / MANIFEST)
        slug = catalogue.slug_for(project[:40], "extract", digest[:12])
        entry = catalogue.Entry(
            slug,
            f"Research extract of {project}",
            "Linkage unit",
            "Manifest of the research extract: "
            + "; ".join(f"{f.file} sha256:{f.sha256}" for f in files),
            f"sha256:{digest}",
            tuple(_extract_variables(files)),
        )
        catalogue.register_all(
            ctx, actor, [entry], custodian=custodian or actor, purposes=[view.purpose]
        )
        remove_tree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
    finally:
        remove_tree(staging)
    for path in target.iterdir():
        os.chmod(path, 0o444)  # read-only files; sessions mount the directory read-only too
    return ExtractResult(target, tuple(files), digest, slug, tuple(risks))


def _write_tables(
    zones: Zones,
    project: str,
    granted: Sequence[GrantView],
    out: Path,
    master_key: bytes,
    treated: _Treatment,
    progress: bool,
) -> tuple[list[ExtractFile], list[TableRisk]]:
    loaded = [(g, *_content(zones, g)) for g in granted]
    wanted = []
    for _, frame, meta in loaded:
        source = meta["source"]
        keys = [frame["record_key"]]
        keys += [
            frame[f["name"]]
            for f in meta["schema"]["fields"]
            if f["kind"] == "record_ref" and f["name"] in frame
        ]
        for column in keys:
            wanted.append(
                pd.DataFrame({"source": source, "record_key": column.dropna().astype(str)})
            )
    mapping = issue_mapping(
        zones, project, pd.concat(wanted, ignore_index=True), master_key=master_key
    )
    files: list[ExtractFile] = []
    risks: list[TableRisk] = []
    for grant, frame, meta in track(loaded, "writing extract", enabled=progress):
        source = meta["source"]
        lookup = mapping[mapping["source"] == source].set_index("record_key")["pseudonym"]
        fields = {f["name"]: f for f in meta["schema"]["fields"]}
        out_frame = pd.DataFrame(
            {PERSON: frame["record_key"].astype(str).map(lookup).astype("string")}
        )
        for name in grant.variables:
            spec = fields[name]
            if spec["kind"] == "record_ref":
                ref = name.removesuffix("_record_key") + "_" + PERSON
                out_frame[ref] = frame[name].astype("string").map(lookup).astype("string")
            elif spec["sensitivity"] == "quasi_identifier":
                rule = spec["coarsen"]
                out_frame[coarsened_name(name, rule)] = coarsen(frame[name], rule)
            elif pd.api.types.is_datetime64_any_dtype(frame[name]):
                out_frame[name] = frame[name].dt.date  # Parquet date, not timestamp
            else:
                out_frame[name] = frame[name]
        unlinked = int(out_frame[PERSON].isna().sum())
        out_frame = out_frame[out_frame[PERSON].notna()].reset_index(drop=True)
        out_frame, risk = protect_table(
            out_frame,
            grant.dataset,
            PERSON,
            _quasi_identifiers(grant, fields),
            treated.policies[grant.dataset],
            treated.steps.get(grant.dataset, ()),
        )
        risks.append(risk)
        file = f"{grant.dataset}.parquet"
        out_frame.to_parquet(out / file, index=False)
        files.append(
            ExtractFile(
                file,
                grant.dataset,
                grant.dataset_version,
                len(out_frame),
                unlinked,
                tuple(out_frame.columns),
                _sha256(out / file),
            )
        )
    return files, risks


@dataclass(frozen=True)
class _Treatment:
    """Each granted dataset's microdata policy and treatment steps."""

    policies: Mapping[str, RiskTarget]
    steps: Mapping[str, tuple[Step, ...]]


def _write_risk_reports(out: Path, risks: Sequence[TableRisk]) -> dict[str, Any]:
    """``disclosure-risk.json`` (every table) and one HTML report per measured table; what
    the manifest lists of them, with their hashes."""
    (out / RISK_REPORT).write_text(
        json.dumps({"tables": [r.to_dict() for r in risks]}, indent=2) + "\n", encoding="utf-8"
    )
    listed: dict[str, Any] = {"file": RISK_REPORT, "sha256": _sha256(out / RISK_REPORT)}
    pages = {}
    for risk in risks:
        if risk.report:
            name = f"disclosure-risk-{risk.dataset}.html"
            (out / name).write_text(risk.report, encoding="utf-8")
            pages[risk.dataset] = {"file": name, "sha256": _sha256(out / name)}
    return listed | {"reports": pages}


def _extract_variables(files: Sequence[ExtractFile]) -> list[Any]:
    names = {PERSON}
    specs = [variable(PERSON, "direct_identifier", "the project's pseudonym; never granted on")]
    for f in files:
        for column in f.columns:
            if column not in names:
                names.add(column)
                specs.append(variable(column, "other", f"from {f.dataset}"))
    return specs


def _write_views(out: Path, files: Sequence[ExtractFile]) -> None:
    connection = duckdb.connect(str(out / DATABASE))
    try:
        search = out.as_posix().replace("'", "''")
        connection.execute(f"SET file_search_path = '{search}'")
        for f in files:
            name = f.dataset.replace("-", "_")
            path = f.file.replace("'", "''")
            connection.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{path}')")
    finally:
        connection.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
