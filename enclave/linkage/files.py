"""``enclave link files``: link any CSV files on their identifier columns.

Columns are recognised by their usual names (``columns.recognise``) unless overridden; each
file is checked row by row (malformed CSV, encodings, missing or duplicate record ids,
impossible dates of birth) and nothing is linked if any row fails. Every file is assumed to
hold each person at most once (link-only, single best links), unless ``dedupe`` asks for
duplicates within files too (link-and-dedupe, connected components). The output lists every
record as ``source,record_id,cluster_id``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from enclave.linkage.backends import open_backend
from enclave.linkage.columns import recognise
from enclave.linkage.csvfile import read_csv
from enclave.linkage.errors import InvalidInput, LinkageError, RowError
from enclave.linkage.link import Linkage
from enclave.linkage.model import TrainedModel
from enclave.linkage.pipeline import HISTOGRAM_BIN, REPORT_THRESHOLDS, settings_for
from enclave.linkage.report import ReportData, render_report
from enclave.linkage.standardise import UNIQUE_ID, standardise

DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%Y/%m/%d", "%d.%m.%Y")


@dataclass(frozen=True)
class InputFile:
    """One checked input: its label, source name, roles, date format and standardised rows."""

    label: str
    source: str
    roles: Mapping[str, str]
    date_format: str | None
    frame: pd.DataFrame
    notes: tuple[RowError, ...] = ()  # invalid dates read as missing (on request)


@dataclass(frozen=True)
class FilesResult:
    """The links written and what produced them."""

    links: pd.DataFrame  # source, record_id, cluster_id
    inputs: tuple[InputFile, ...]
    pairs_scored: int
    model: TrainedModel
    report: ReportData


def source_name(label: str, taken: set[str]) -> str:
    """A table-safe, unique source name from a file name."""
    base = re.sub(r"[^a-z0-9_]+", "_", Path(label).stem.lower()).strip("_") or "file"
    if not base[0].isalpha():
        base = f"f_{base}"
    base = base[:50]
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def guess_date_format(values: pd.Series) -> str | None:
    """The candidate format that parses the most non-missing values (None if none parses)."""
    present = values.dropna()
    if present.empty:
        return None
    best, best_count = None, 0
    for fmt in DATE_FORMATS:
        count = int(pd.to_datetime(present, format=fmt, errors="coerce").notna().sum())
        if count > best_count:
            best, best_count = fmt, count
    return best


def check_file(
    path: Path,
    *,
    id_column: str,
    overrides: Mapping[str, str],
    date_format: str | None,
    encoding: str,
    taken: set[str],
    today: date,
    invalid_dates: str = "error",
) -> tuple[InputFile | None, list[RowError]]:
    """Read and check one file; the InputFile is None when it had problems. With
    ``invalid_dates="missing"`` an impossible date of birth is read as missing and listed in
    the InputFile's notes instead of refusing the file."""
    label = str(path)
    table = read_csv(path, encoding=encoding, label=label)
    errors = list(table.errors)
    frame = table.frame
    if frame.empty and not errors:
        errors.append(RowError(label, 2, "", "the file has a header but no data rows"))
    if frame.empty or (errors and any(e.line <= 1 for e in errors)):
        return None, errors
    if id_column not in frame.columns:
        return None, [*errors, RowError(label, 1, id_column, "the record id column is missing")]
    try:
        roles = recognise(
            frame.columns,
            {r: c for r, c in overrides.items() if c in frame.columns},
            exclude=[id_column],
        )
    except LinkageError as error:
        return None, [*errors, RowError(label, 1, "", str(error))]
    ids = frame[id_column].reset_index(drop=True)
    lines = table.lines
    for row in ids.index[ids.isna()]:
        errors.append(RowError(label, lines[row], id_column, "missing record id"))
    repeated = ids.notna() & ids.duplicated(keep="first")
    first_line = {ids[i]: lines[i] for i in ids.index[~ids.duplicated(keep="first")]}
    for row in ids.index[repeated]:
        errors.append(
            RowError(
                label,
                table.lines[row],
                id_column,
                f"duplicate record id {ids[row]!r} (first on line {first_line[ids[row]]})",
            )
        )
    fmt = date_format
    notes: list[RowError] = []
    if "date_of_birth" in roles:
        column = roles["date_of_birth"]
        fmt = fmt or guess_date_format(frame[column]) or DATE_FORMATS[0]
        parsed = pd.to_datetime(frame[column], format=fmt, errors="coerce")
        for row in frame.index[frame[column].notna() & parsed.isna()]:
            (notes if invalid_dates == "missing" else errors).append(
                RowError(
                    label,
                    table.lines[row],
                    column,
                    f"{frame.at[row, column]!r} is not a valid date ({fmt})",
                )
            )
        future = parsed > pd.Timestamp(today)
        for row in frame.index[future.fillna(False)]:
            errors.append(RowError(label, table.lines[row], column, "date of birth in the future"))
    if errors:
        return None, errors
    std = standardise(frame, roles, unique_id=id_column, date_format=fmt)
    return InputFile(label, source_name(label, taken), roles, fmt, std, tuple(notes)), []


def link_files(
    paths: Sequence[Path],
    *,
    id_column: str,
    overrides: Mapping[str, str] | None = None,
    date_format: str | None = None,
    encoding: str = "utf-8",
    dedupe: bool = False,
    backend: str = "duckdb",
    threshold: float | None = None,
    model: TrainedModel | None = None,
    work_dir: Path,
    invalid_dates: str = "error",
    progress: bool = False,
) -> FilesResult:
    """Check, link and cluster ``paths``. ``invalid_dates="missing"`` reads impossible dates
    of birth as missing (listed in each input's notes) instead of refusing the files.

    Raises:
        InvalidInput: any row of any file failed its checks (nothing is linked).
        LinkageError: fewer than two files (without ``dedupe``), or too few identifier roles.
    """
    if len(paths) < (1 if dedupe else 2):
        raise LinkageError("give at least two files to link (or --dedupe for one)")
    taken: set[str] = set()
    today = datetime.now(UTC).date()
    inputs: list[InputFile] = []
    errors: list[RowError] = []
    for path in paths:
        checked, problems = check_file(
            path,
            id_column=id_column,
            overrides=overrides or {},
            date_format=date_format,
            encoding=encoding,
            taken=taken,
            today=today,
            invalid_dates=invalid_dates,
        )
        errors += problems
        if checked is not None:
            inputs.append(checked)
    if errors:
        raise InvalidInput(errors)
    columns = sorted({c for i in inputs for c in i.frame.columns} - {UNIQUE_ID})
    frames = {
        i.source: i.frame.reindex(columns=[UNIQUE_ID, *columns]).astype("string") for i in inputs
    }
    if model is not None:
        settings = model.settings
    else:
        settings = settings_for(frames, backend=backend)
        settings = replace(settings, link_type="link_and_dedupe" if dedupe else "link_only")
    if threshold is not None:
        settings = replace(settings, cluster_threshold=threshold)
        if model is not None:
            model = replace(model, settings=settings)
    with open_backend(settings, work_dir) as api:
        linkage = Linkage(api, frames, settings, model=model, progress=progress)
        trained = model or linkage.train()
        pairs = linkage.predict()
        clusters = linkage.clusters()
        histogram = linkage.weight_histogram(HISTOGRAM_BIN)
        expected = linkage.expected_quality(REPORT_THRESHOLDS)
    report = ReportData(
        title="Linkage quality report",
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        sources={i.label: len(i.frame) for i in inputs},
        model=trained,
        pairs_scored=pairs,
        histogram=histogram,
        bin_width=HISTOGRAM_BIN,
        expected=expected,
        clusters=clusters,
        timings=dict(linkage.timings),
    )
    return FilesResult(_links(inputs, clusters), tuple(inputs), pairs, trained, report)


def _links(inputs: Sequence[InputFile], clusters: pd.DataFrame) -> pd.DataFrame:
    """Every record with a compact cluster number (singletons get their own)."""
    names = {i.source: Path(i.label).stem for i in inputs}
    records = pd.concat(
        [pd.DataFrame({"source": i.source, "record_key": i.frame[UNIQUE_ID]}) for i in inputs],
        ignore_index=True,
    )
    joined = records.merge(clusters, on=["source", "record_key"], how="left")
    alone = joined["cluster_id"].isna()
    joined.loc[alone, "cluster_id"] = (
        "single:" + joined.loc[alone, "source"] + ":" + joined.loc[alone, "record_key"]
    )
    order = joined.drop_duplicates("cluster_id")["cluster_id"]
    number = pd.Series(range(1, len(order) + 1), index=order.to_numpy())
    return pd.DataFrame(
        {
            "source": joined["source"].map(names),
            "record_id": joined["record_key"],
            "cluster_id": joined["cluster_id"].map(number).astype("int64"),
        }
    )


def write_links(links: pd.DataFrame, out: Path) -> None:
    """Write ``links`` as CSV atomically."""
    partial = out.with_name(out.name + ".partial")
    links.to_csv(partial, index=False)
    os.replace(partial, out)


def write_report(result: FilesResult, out: Path) -> None:
    """Write the quality report of a ``link_files`` result."""
    out.write_text(render_report(result.report), encoding="utf-8")
