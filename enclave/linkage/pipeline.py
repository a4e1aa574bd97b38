"""``enclave link run`` and ``enclave link cohort``: link the ingested sources into the
master person index, and add a new cohort to it incrementally.

Everything here happens inside the linkage zone: identifiers are read from it, and the person
index, the model and the quality report are written to it. Each output is written to a
temporary name and moved into place, so a failed run leaves the previous index intact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from enclave.linkage import evaluate
from enclave.linkage.backends import open_backend
from enclave.linkage.errors import LinkageError
from enclave.linkage.ingest import current_sources
from enclave.linkage.link import Linkage, best_links
from enclave.linkage.model import TrainedModel
from enclave.linkage.person_index import add_records, assign_person_ids
from enclave.linkage.report import ReportData, render_report
from enclave.linkage.settings import LinkageSettings, default_settings
from enclave.linkage.standardise import ALIAS, UNIQUE_ID
from enclave.linkage.zones import Zones

UK_POSTCODE = r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}$"
HISTOGRAM_BIN = 1.0
REPORT_THRESHOLDS = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class RunResult:
    """What a linkage run produced."""

    sources: dict[str, int]
    pairs_scored: int
    clusters: int
    persons: int
    report: Path
    model: Path
    timings: dict[str, float]
    true_clusters: evaluate.Scores | None


def load_sources(zones: Zones, names: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """The standardised identifiers of the ingested sources, all with the same columns (a role
    a source lacks is a null column). LinkageError when nothing was ingested."""
    known = current_sources(zones)
    chosen = sorted(known) if names is None else names
    missing = [n for n in chosen if n not in known]
    if missing or not chosen:
        raise LinkageError(
            f"no ingested source(s): {', '.join(missing) or 'none at all'}; "
            "ingest deliveries first (enclave link ingest)"
        )
    frames = {name: pd.read_parquet(zones.identifiers(name)) for name in chosen}
    columns = sorted({c for f in frames.values() for c in f.columns} - {UNIQUE_ID})
    return {
        name: frame.reindex(columns=[UNIQUE_ID, *columns]).astype("string")
        for name, frame in frames.items()
    }


def roles_of(frames: dict[str, pd.DataFrame]) -> list[str]:
    """Identifier roles present (non-null somewhere) in any source."""
    roles = set()
    for frame in frames.values():
        roles |= {
            c for c in frame.columns if c not in (UNIQUE_ID, ALIAS) and frame[c].notna().any()
        }
    return sorted(roles)


def uk_postcodes(frames: dict[str, pd.DataFrame]) -> bool:
    """Whether nine in ten known postcodes have the UK shape (sector, district, area)."""
    codes = pd.concat([f["postcode"] for f in frames.values() if "postcode" in f]).dropna()
    return bool(len(codes)) and float(codes.str.match(UK_POSTCODE).mean()) >= 0.9


def settings_for(frames: dict[str, pd.DataFrame], backend: str = "duckdb") -> LinkageSettings:
    """The default settings for the roles these sources carry."""
    return default_settings(roles_of(frames), backend=backend, uk_postcodes=uk_postcodes(frames))


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def run_linkage(
    zones: Zones,
    *,
    settings: LinkageSettings | None = None,
    model: TrainedModel | None = None,
    truth: pd.DataFrame | None = None,
    progress: bool = False,
    now: datetime | None = None,
) -> RunResult:
    """Link every ingested source; write the person index, model and report.

    ``model`` skips training (its settings are used); otherwise ``settings`` (default: from
    the roles present) are trained afresh with their fixed seed. ``truth`` (source,
    record_key, entity) adds true precision, recall and F1 to the report.
    """
    frames = load_sources(zones)
    chosen = model.settings if model is not None else settings or settings_for(frames)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    with open_backend(chosen, zones.linkage / "work") as api:
        linkage = Linkage(api, frames, chosen, model=model, progress=progress)
        trained = linkage.train() if model is None else model
        pairs = linkage.predict()
        clusters = linkage.clusters()
        histogram = linkage.weight_histogram(HISTOGRAM_BIN)
        expected = linkage.expected_quality(REPORT_THRESHOLDS)
        true_pairs = (
            {t: evaluate.score_pairs(linkage.pairs(t), truth) for t in REPORT_THRESHOLDS}
            if truth is not None
            else None
        )
    previous = pd.read_parquet(zones.person_index) if zones.person_index.exists() else None
    index = assign_person_ids(clusters, previous)
    true_clusters = evaluate.score_clusters(clusters, truth) if truth is not None else None
    stamp = moment.strftime("%Y%m%dT%H%M%SZ")
    zones.reports.mkdir(parents=True, exist_ok=True)
    report_path = zones.reports / f"linkage-{stamp}.html"
    data = ReportData(
        title="Linkage quality report",
        generated_at=moment.isoformat(timespec="seconds"),
        sources={name: len(frame) for name, frame in frames.items()},
        model=trained,
        pairs_scored=pairs,
        histogram=histogram,
        bin_width=HISTOGRAM_BIN,
        expected=expected,
        clusters=clusters,
        timings=dict(linkage.timings),
        true_pairs=true_pairs,
        true_clusters=true_clusters,
    )
    _write_atomic(zones.person_index, lambda p: index.to_parquet(p, index=False))
    _write_atomic(zones.model, trained.save)
    _write_atomic(report_path, lambda p: p.write_text(render_report(data), encoding="utf-8"))
    _log_run(zones, moment, chosen.backend, frames, pairs, clusters, index)
    return RunResult(
        sources=dict(data.sources),
        pairs_scored=pairs,
        clusters=int(clusters["cluster_id"].nunique()),
        persons=int(index["person_id"].nunique()),
        report=report_path,
        model=zones.model,
        timings=dict(linkage.timings),
        true_clusters=true_clusters,
    )


def _log_run(
    zones: Zones,
    moment: datetime,
    backend: str,
    frames: dict[str, pd.DataFrame],
    pairs: int,
    clusters: pd.DataFrame,
    index: pd.DataFrame,
) -> None:
    entry = {
        "at": moment.isoformat(timespec="seconds"),
        "backend": backend,
        "sources": {name: len(frame) for name, frame in frames.items()},
        "pairs_scored": pairs,
        "clusters": int(clusters["cluster_id"].nunique()),
        "persons": int(index["person_id"].nunique()),
    }
    with (zones.linkage / "runs.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


@dataclass(frozen=True)
class CohortResult:
    """What incremental linking of one new source did."""

    source: str
    records: int
    linked: int
    new_persons: int


def link_cohort(
    zones: Zones, source: str, *, threshold: float | None = None, progress: bool = False
) -> CohortResult:
    """Link an ingested ``source`` (a new cohort) to the existing index with the saved model
    (``predict_between``: cohort records against indexed records, never against each
    other). Each record joins the person of its best link at or above ``threshold``
    (default: the model's cluster threshold), else becomes a new person.

    Raises:
        LinkageError: no saved model or person index yet, or the source is unknown.
    """
    if not zones.model.exists() or not zones.person_index.exists():
        raise LinkageError("no person index yet: run `enclave link run` first")
    model = TrainedModel.load(zones.model)
    index = pd.read_parquet(zones.person_index)
    indexed = sorted(set(index["source"]) - {source})
    frames = load_sources(zones, [*indexed, source])
    cohort = frames.pop(source)
    cut = model.settings.cluster_threshold if threshold is None else threshold
    with open_backend(model.settings, zones.linkage / "work") as api:
        linkage = Linkage(api, frames, model.settings, model=model, progress=progress)
        pairs = linkage.predict_between({source: cohort}, threshold=cut)
    links = best_links(pairs)
    new_records = pd.DataFrame({"source": source, "record_key": cohort[UNIQUE_ID].to_numpy()})
    before = set(index["person_id"])
    updated = add_records(index, links, new_records)
    _write_atomic(zones.person_index, lambda p: updated.to_parquet(p, index=False))
    added = updated[updated["source"] == source]
    return CohortResult(
        source,
        len(cohort),
        int(added["person_id"].isin(before).sum()),
        int((~added["person_id"].isin(before)).sum()),
    )
