"""Ingest: a delivery is validated in full; a clean one is split between the zones and
registered with its content hashes; any bad row refuses the whole delivery, quarantines the
bad rows with a per-row report, and registers and stores nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from enclave.control.context import Context
from enclave.control.service import datasets
from enclave.control.service.datasets import content_version
from enclave.linkage.errors import InvalidInput, LinkageError
from enclave.linkage.ingest import IngestRefused, current_sources, ingest_delivery
from enclave.linkage.zones import Zones
from tests.enclave.control.factories import World, counts

PURPOSES = ["health_research", "social_research"]


def ingest(ctx: Context, world: World, zones: Zones, folder: Path) -> object:
    return ingest_delivery(
        ctx, world.admin, zones, folder, custodian=world.custodian, purposes=PURPOSES,
        unregistered_input=True,  # generated test data: the approval rule is test_ingest_approval's
    )  # fmt: skip


def stored_files(zones: Zones) -> list[Path]:
    found = []
    for zone in (zones.content, zones.linkage / "identifiers"):
        if zone.exists():
            found += [p for p in zone.rglob("*") if p.is_file() and "quarantine" not in p.parts]
    return found


def test_clean_delivery_is_split_stored_and_registered(
    ctx: Context, world: World, zones: Zones, deliveries: Path
) -> None:
    folder = deliveries / "human_services"
    result = ingest(ctx, world, zones, folder)
    assert result.registered == (  # type: ignore[attr-defined]
        "human-services-identifiers",
        "human-services-demographics",
        "human-services-income-support",
        "human-services-child-support-dependents",
        "human-services-disability-services",
    )
    registered = {d.slug: d for d in datasets.list_datasets(ctx, world.admin)}
    ident = registered["human-services-identifiers"]
    assert ident.version == content_version(folder / "identifiers.csv")
    assert {v.sensitivity for v in ident.variables} == {"direct_identifier"}
    support = registered["human-services-income-support"]
    assert support.version == content_version(folder / "income_support.csv")
    assert {v.name: v.sensitivity for v in support.variables}["record_key"] == "direct_identifier"
    # identifiers only in the linkage zone, standardised
    std = pd.read_parquet(zones.identifiers("human_services"))
    assert {"given_name", "surname", "date_of_birth", "national_id"} <= set(std.columns)
    assert std["surname"].str.fullmatch(r"[a-z0-9]+").all()
    # content keyed by record key, no identifier column
    content = pd.read_parquet(zones.content_table("human-services-income-support", support.version))
    assert list(content.columns) == [
        "record_key",
        "start_date",
        "end_date",
        "programme",
        "monthly_amount",
    ]
    demo = pd.read_parquet(
        zones.content_table(
            "human-services-demographics", registered["human-services-demographics"].version
        )
    )
    assert list(demo.columns) == ["record_key", "birth_month", "sex", "postcode_district"]
    assert demo["birth_month"].dropna().str.fullmatch(r"\d{4}-\d{2}").all()
    assert current_sources(zones)["human_services"]["rows"] == len(std)
    assert oct(zones.linkage.stat().st_mode)[-3:] == "700"


def test_the_same_delivery_twice_registers_nothing_new(
    ctx: Context, world: World, zones: Zones, deliveries: Path
) -> None:
    ingest(ctx, world, zones, deliveries / "justice")
    before = counts(ctx)
    again = ingest(ctx, world, zones, deliveries / "justice")
    assert again.registered == ()  # type: ignore[attr-defined]
    assert counts(ctx) == before


def test_a_new_version_under_a_taken_name_is_refused_whole(
    ctx: Context, world: World, zones: Zones, deliveries: Path
) -> None:
    ingest(ctx, world, zones, deliveries / "justice")
    custody = deliveries / "justice" / "custody.csv"
    lines = custody.read_text().splitlines()
    custody.write_text("\n".join(lines[:-1]) + "\n")  # one row fewer: another version
    before, files = counts(ctx), {p: p.stat().st_mtime_ns for p in stored_files(zones)}
    with pytest.raises(LinkageError, match="justice-custody is registered at"):
        ingest(ctx, world, zones, deliveries / "justice")
    assert counts(ctx) == before
    assert {p: p.stat().st_mtime_ns for p in stored_files(zones)} == files


def corrupt(folder: Path, file: str, line: int, new: str | bytes) -> None:
    """Replace 1-based ``line`` of ``folder/file``."""
    path = folder / file
    rows = path.read_bytes().split(b"\n")
    rows[line - 1] = new if isinstance(new, bytes) else new.encode()
    path.write_bytes(b"\n".join(rows))


def identifier_row(folder: Path, line: int) -> list[str]:
    return (folder / "identifiers.csv").read_text().splitlines()[line - 1].split(",")


@pytest.mark.parametrize(
    "case",
    [
        "malformed",
        "encoding",
        "duplicate_key",
        "empty_file",
        "impossible_dob",
        "impossible_event_date",
        "identifier_in_content",
        "unknown_record",
    ],
)
def test_bad_input_refuses_everything_and_quarantines(
    ctx: Context, world: World, zones: Zones, deliveries: Path, case: str
) -> None:
    folder = deliveries / "justice"
    expected: tuple[str, int, str]
    if case == "malformed":
        corrupt(folder, "offences.csv", 3, 'x,"unclosed,2020-01-01,theft')
        expected = ("justice/offences.csv", 3, "malformed CSV")
    elif case == "encoding":
        row = identifier_row(folder, 4)
        row[4] = "M\xdcLLER"
        corrupt(folder, "identifiers.csv", 4, ",".join(row).encode("latin-1"))
        expected = ("justice/identifiers.csv", 4, "not valid utf-8: byte 0xdc")
    elif case == "duplicate_key":
        first = identifier_row(folder, 2)[0]
        row = identifier_row(folder, 5)
        row[0] = first
        corrupt(folder, "identifiers.csv", 5, ",".join(row))
        expected = (
            "justice/identifiers.csv",
            5,
            f"duplicate record key '{first}' (first on line 2)",
        )
    elif case == "empty_file":
        (folder / "custody.csv").write_text("")
        expected = ("justice/custody.csv", 1, "the file is empty")
    elif case == "impossible_dob":
        row = identifier_row(folder, 3)
        row[5] = "1990-02-30"
        corrupt(folder, "identifiers.csv", 3, ",".join(row))
        expected = ("justice/identifiers.csv", 3, "not a valid date")
    elif case == "impossible_event_date":
        row = (folder / "convictions.csv").read_text().splitlines()[1].split(",")
        row[2] = "2020-13-01"
        corrupt(folder, "convictions.csv", 2, ",".join(row))
        expected = ("justice/convictions.csv", 2, "not a valid date")
    elif case == "identifier_in_content":
        custody = pd.read_csv(folder / "custody.csv", dtype=str)
        custody.insert(1, "surname", "SMITH")
        custody.to_csv(folder / "custody.csv", index=False)
        expected = ("justice/custody.csv", 1, "unexpected column")
    else:
        row = (folder / "offences.csv").read_text().splitlines()[1].split(",")
        row[0] = "ffffffffffffffff"
        corrupt(folder, "offences.csv", 2, ",".join(row))
        expected = ("justice/offences.csv", 2, "record key not in the identifier file")
    before = counts(ctx)
    with pytest.raises(IngestRefused) as refused:
        ingest(ctx, world, zones, folder)
    error = refused.value
    assert any(
        e.file == expected[0] and e.line == expected[1] and expected[2] in e.message
        for e in error.errors
    ), error.errors
    assert counts(ctx) == before  # nothing registered
    assert stored_files(zones) == []  # nothing stored
    assert current_sources(zones) == {}
    count = next(c for c in error.counts if c.file == expected[0])
    assert count.bad_rows >= 1 or count.rows == 0
    stem = Path(expected[0]).stem
    (report_path,) = [p for q in error.quarantine for p in q.glob(f"{stem}.errors.csv")]
    report = pd.read_csv(report_path)
    assert expected[1] in report["line"].tolist()
    # identifier rows are quarantined in the linkage zone, content rows in the content zone
    identifier_problem = stem == "identifiers"
    assert report_path.is_relative_to(zones.linkage if identifier_problem else zones.content)
    if count.rows:
        sent = report_path.with_name(f"{stem}.lines.txt").read_text().splitlines()
        assert f"{expected[1]}\t" in "\n".join(line[: len(str(expected[1])) + 1] for line in sent)


def test_an_unreadable_manifest_is_refused(
    ctx: Context, world: World, zones: Zones, deliveries: Path
) -> None:
    folder = deliveries / "health"
    manifest = json.loads((folder / "delivery.json").read_text())
    manifest["tables"]["physician_visits"]["schema"] = "health.nonsense"
    manifest["identifiers"]["roles"]["shoe_size"] = "sex"
    (folder / "delivery.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidInput) as refused:
        ingest(ctx, world, zones, folder)
    text = str(refused.value)
    assert "unknown schema 'health.nonsense'" in text or "unknown identifier role" in text
    assert len(refused.value.errors) == 2
    shutil.rmtree(folder)
    with pytest.raises(InvalidInput, match=r"no delivery\.json"):
        ingest(ctx, world, zones, folder)


def test_a_manifest_cannot_point_outside_its_delivery(
    ctx: Context, world: World, zones: Zones, deliveries: Path
) -> None:
    folder = deliveries / "justice"
    manifest = json.loads((folder / "delivery.json").read_text())
    manifest["identifiers"]["file"] = "../health/identifiers.csv"
    (folder / "delivery.json").write_text(json.dumps(manifest))
    before = counts(ctx)
    with pytest.raises(InvalidInput, match="must be a plain name inside the delivery"):
        ingest(ctx, world, zones, folder)
    assert counts(ctx) == before
