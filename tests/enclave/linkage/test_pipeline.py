"""The whole linkage unit on a small synthetic population: ingest four ministries, link them
into the person index (checked against the truth), add a provider's cohort incrementally,
write two projects' extracts, and attack the separation principle: identifiers must never
reach the content zone or an extract, and once a project is closed its pseudonyms map to
nothing, in particular not to another project's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.control.service import grants, projects
from enclave.control.service.microdata_policy import set_microdata_policy
from enclave.linkage.deliveries import write_synthetic
from enclave.linkage.errors import KeyUnavailable, LinkageError
from enclave.linkage.extracts import PERSON, build_extract
from enclave.linkage.ingest import ingest_delivery
from enclave.linkage.issue import issue_mapping
from enclave.linkage.keys import derive_project_key, issue_project_key, read_project_key
from enclave.linkage.pipeline import link_cohort, load_sources, run_linkage, settings_for
from enclave.linkage.pseudonyms import pseudonyms
from enclave.linkage.schemas import SCHEMAS
from enclave.linkage.zones import Zones
from enclave.synth.ministries import MINISTRIES, MinistryData, generate_ministries
from output_checker.microdata.recipe import Step
from output_checker.microdata.risk.frequencies import frequencies
from tests.enclave.control.factories import FakeClock, World, make_world, propose

MASTER = bytes(range(32))
GRANTS = {
    "health-demographics": ("birth_month", "sex", "postcode_district"),
    "justice-offences": ("offence_date", "offence_group"),
    "service-provider-interventions": ("programme", "intervention_start"),
    "human-services-child-support-dependents": ("guardian_record_key", "case_start"),
}


@dataclass
class Installation:
    ctx: Context
    world: World
    zones: Zones
    data: MinistryData
    run: object
    cohort: object
    extracts: dict[str, object]


def make_project(ctx: Context, world: World, slug: str) -> None:
    propose(ctx, world, slug, purpose="social_research")
    projects.approve_project(ctx, world.admin, slug)
    for dataset, variables in GRANTS.items():
        pending = grants.request_grant(
            ctx,
            world.admin,
            project=slug,
            dataset=dataset,
            variables=variables,
            expires_on=ctx.today() + timedelta(days=200),
        )
        grants.approve_grant(ctx, world.custodian, pending.uuid)
    projects.activate_project(ctx, world.admin, slug)


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    root = tmp_path_factory.mktemp("enclave")
    engine = make_engine(f"sqlite:///{root / 'enclave.sqlite3'}")
    upgrade(engine)
    ctx = Context(engine=engine, data_dir=root / "data", clock=FakeClock())
    world = make_world(ctx)
    data = generate_ministries(3_000, seed=21)
    write_synthetic(data, root / "synth")
    zones = Zones(ctx.data_dir)
    for source in MINISTRIES:
        ingest_delivery(
            ctx,
            world.admin,
            zones,
            root / "synth" / "deliveries" / source,
            custodian=world.custodian,
            purposes=["social_research"],
            unregistered_input=True,  # generated test data
        )
    settings = dataclasses.replace(settings_for(load_sources(zones)), u_max_pairs=2e5)
    truth = data.truth_links.rename(columns={"person_id": "entity"})
    truth = truth[truth["source"] != "service_provider"]
    run = run_linkage(zones, settings=settings, truth=truth)
    ingest_delivery(
        ctx,
        world.admin,
        zones,
        root / "synth" / "deliveries" / "service_provider",
        custodian=world.custodian,
        purposes=["social_research"],
        unregistered_input=True,  # generated test data
    )
    cohort = link_cohort(zones, "service_provider")
    extracts = {}
    for slug in ("alpha", "beta"):
        make_project(ctx, world, slug)
        extracts[slug] = build_extract(
            ctx, world.admin, zones, slug, master_key=MASTER, custodian=world.custodian
        )
    yield Installation(ctx, world, zones, data, run, cohort, extracts)
    ctx.close()


def test_linkage_recovers_the_truth(installation: Installation) -> None:
    run = installation.run
    assert run.true_clusters.f1 >= 0.98, run.true_clusters  # type: ignore[attr-defined]
    report = run.report.read_text()  # type: ignore[attr-defined]
    assert "<svg" in report and 'class="bar"' in report and "True quality" in report
    index = pd.read_parquet(installation.zones.person_index)
    assert set(index["source"]) == {*MINISTRIES, "service_provider"}
    assert installation.zones.model.exists()


def test_cohort_joins_the_right_people(installation: Installation) -> None:
    cohort = installation.cohort
    assert cohort.records == cohort.linked + cohort.new_persons  # type: ignore[attr-defined]
    index = pd.read_parquet(installation.zones.person_index)
    truth = installation.data.truth_links
    with_truth = index.merge(truth, on=["source", "record_key"], suffixes=("", "_true"))
    users = with_truth[with_truth["source"] == "service_provider"]
    justice = with_truth[with_truth["source"] == "justice"]
    pairs = users.merge(justice, on="person_id_true", suffixes=("_u", "_j"))
    # every service user is an offender: nearly all must share the justice record's person
    assert len(pairs) == len(users) > 0
    assert (pairs["person_id_u"] == pairs["person_id_j"]).mean() >= 0.9


def extract_tables(installation: Installation, slug: str) -> dict[str, pd.DataFrame]:
    folder = installation.extracts[slug].directory  # type: ignore[attr-defined]
    return {p.stem: pd.read_parquet(p) for p in folder.glob("*.parquet")}


def test_extract_holds_granted_variables_only_coarsened(installation: Installation) -> None:
    tables = extract_tables(installation, "alpha")
    assert set(tables) == set(GRANTS)
    demo = tables["health-demographics"]
    assert set(demo.columns) == {PERSON, "birth_year", "sex", "postcode_area"}
    assert demo["birth_year"].between(1900, 2030).all()
    assert demo["postcode_area"].dropna().str.fullmatch(r"[A-Z]{1,2}").all()
    assert set(tables["justice-offences"].columns) == {PERSON, "offence_date", "offence_group"}
    deps = tables["human-services-child-support-dependents"]
    assert set(deps.columns) == {PERSON, "case_start", "guardian_person"}
    guardians = deps["guardian_person"].dropna()
    assert guardians.str.fullmatch(r"[A-Z2-7]{26}").all()
    # a guardian is a person of the same project (most also have a health record)
    assert guardians.isin(alpha_people(tables)).mean() > 0.9
    assert deps[PERSON].str.fullmatch(r"[A-Z2-7]{26}").all()
    folder = installation.extracts["alpha"].directory  # type: ignore[attr-defined]
    assert all(oct(p.stat().st_mode)[-3:] == "444" for p in folder.iterdir())
    connection = duckdb.connect(str(folder / "extract.duckdb"), read_only=True)
    connection.execute(f"SET file_search_path = '{folder}'")
    rows = connection.execute("SELECT count(*) FROM justice_offences").fetchone()
    connection.close()
    assert rows == (len(tables["justice-offences"]),)


def alpha_people(tables: dict[str, pd.DataFrame]) -> set[str]:
    return set().union(*(set(t[PERSON]) for t in tables.values()))


def test_one_person_one_pseudonym_within_a_project_never_across(installation: Installation) -> None:
    alpha, beta = extract_tables(installation, "alpha"), extract_tables(installation, "beta")
    users = set(alpha["service-provider-interventions"][PERSON])
    offenders = set(alpha["justice-offences"][PERSON])
    assert len(users & offenders) >= 0.9 * len(users)  # linked across ministries
    everyone_a = set().union(*(set(t[PERSON]) for t in alpha.values()))
    everyone_b = set().union(*(set(t[PERSON]) for t in beta.values()))
    assert len(everyone_a) == len(everyone_b) > 0
    assert not everyone_a & everyone_b


def identifier_values(data: MinistryData) -> set[str]:
    """Every identifier value as delivered and as true, except short or shared words and
    dates (an event may fall on someone's birthday; dates of birth are checked apart)."""
    categories = {v for s in SCHEMAS.values() for f in s.fields for v in f.values}
    values: set[str] = set()
    for delivery in data.deliveries.values():
        frame = delivery.identifiers.drop(columns=["record_key"])
        for column in frame.columns:
            values |= {str(v) for v in frame[column].dropna()}
    persons = data.truth_persons
    for column in ("given_name", "surname", "date_of_birth", "postcode", "address", "national_id"):
        values |= {str(v) for v in persons[column].dropna()}
        values |= {str(v).upper() for v in persons[column].dropna()}
    dates = r"\d{4}-\d{2}-\d{2}|\d{8}|\d{2}/\d{2}/\d{4}"
    return {
        v
        for v in values
        if len(v) >= 4 and v.lower() not in categories and not re.fullmatch(dates, v)
    }


def cells(frame: pd.DataFrame) -> set[str]:
    found: set[str] = set()
    for column in frame.columns:
        found |= {str(v) for v in frame[column].dropna()}
        found.add(str(column))
    return found


def test_no_identifier_reaches_the_content_zone_or_an_extract(installation: Installation) -> None:
    secret = identifier_values(installation.data)
    record_keys = set(installation.data.truth_links["record_key"])
    content = list(installation.zones.content.rglob("*.parquet"))
    assert content
    for path in content:
        leaked = cells(pd.read_parquet(path)) & secret
        assert not leaked, (path, sorted(leaked)[:5])
    for slug in ("alpha", "beta"):
        for name, table in extract_tables(installation, slug).items():
            found = cells(table)
            assert not found & secret, (slug, name)
            assert not found & record_keys, (slug, name)  # no linkage key either
    # and the identifiers themselves are only in the linkage zone
    assert not list(installation.zones.content.rglob("*identifiers*"))
    # dates of birth: the content zone has months of birth at most, extracts years
    for path in installation.zones.content.glob("*-demographics/*.parquet"):
        months = pd.read_parquet(path)["birth_month"].dropna()
        assert months.str.fullmatch(r"\d{4}-\d{2}").all()
    dob_names = {"date_of_birth", "dob", "birth_date", "birth_month"}
    for slug in ("alpha", "beta"):
        for table in extract_tables(installation, slug).values():
            assert not dob_names & set(table.columns)


def test_closure_destroys_the_key_and_the_pseudonyms_map_to_nothing(
    installation: Installation,
) -> None:
    ctx, world, zones = installation.ctx, installation.world, installation.zones
    leftover = extract_tables(installation, "alpha")  # what a researcher may have copied
    old = set().union(*(set(t[PERSON]) for t in leftover.values()))
    closure = projects.close_project(ctx, world.admin, "alpha", "study complete")
    assert "alpha.key" in closure.keys_destroyed
    assert not zones.project_data("alpha").exists()
    with pytest.raises(KeyUnavailable, match="destroyed at closure"):
        read_project_key(zones.keys, "alpha")
    with pytest.raises(LinkageError, match="closed"):
        build_extract(ctx, world.admin, zones, "alpha", master_key=MASTER)
    # the attacker holds the master key and the whole person index
    persons = pd.read_parquet(zones.person_index)["person_id"].unique().tolist()
    beta = derive_project_key(MASTER, read_project_key(zones.keys, "beta"))
    assert not old & set(pseudonyms(beta, persons))
    reissued = derive_project_key(MASTER, issue_project_key(zones.keys, "alpha"))
    assert not old & set(pseudonyms(reissued, persons))
    records = pd.read_parquet(zones.person_index)[["source", "record_key"]]
    fresh = issue_mapping(zones, "alpha", records, master_key=MASTER)
    assert not old & set(fresh["pseudonym"])


def test_extracts_need_grants_in_force(installation: Installation) -> None:
    ctx, world, zones = installation.ctx, installation.world, installation.zones
    propose(ctx, world, "gamma", purpose="social_research")
    projects.approve_project(ctx, world.admin, "gamma")
    with pytest.raises(LinkageError, match="no grants in force"):
        build_extract(ctx, world.admin, zones, "gamma", master_key=MASTER)
    assert not zones.project_data("gamma").exists()


def test_mappings_are_logged_without_ids(installation: Installation) -> None:
    log = installation.zones.mapping_log.read_text().splitlines()
    assert len(log) >= 2
    assert all("person_id" not in line and "record_key" not in line for line in log)
    assert Path(installation.zones.linkage).stat().st_mode & 0o077 == 0


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


DEMOGRAPHICS_QI = ["birth_year", "sex", "postcode_area"]


def test_every_extract_table_is_k_anonymous_per_person_and_reported(
    installation: Installation,
) -> None:
    ctx, world = installation.ctx, installation.world
    make_project(ctx, world, "reported")  # its own: other tests close alpha's
    folder = build_extract(
        ctx, world.admin, installation.zones, "reported", master_key=MASTER,
        custodian=world.custodian,
    ).directory  # fmt: skip
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = manifest["disclosure_risk"]
    assert _sha(folder / listed["file"]) == listed["sha256"]
    tables = {t["dataset"]: t for t in json.loads((folder / listed["file"]).read_text())["tables"]}
    demo = tables["health-demographics"]
    assert sorted(demo["quasi_identifiers"]) == sorted(DEMOGRAPHICS_QI) and demo["k"] == 5
    assert demo["after"]["not_k_anonymous"]["5"] == 0
    frame = pd.read_parquet(folder / "health-demographics.parquet")
    units = frame[[PERSON, *DEMOGRAPHICS_QI]].drop_duplicates()
    assert frequencies(units[DEMOGRAPHICS_QI]).fk.min() >= 5  # sdcMicro's fk, NA as wildcard
    # new suppressions: at most the values missing now (some were missing in the source)
    assert 0 < sum(demo["suppressed"].values()) <= int(units[DEMOGRAPHICS_QI].isna().sum().sum())
    page = listed["reports"]["health-demographics"]
    html = (folder / page["file"]).read_text()
    assert _sha(folder / page["file"]) == page["sha256"]
    assert "data:image/png;base64," in html and "birth_year" in html
    assert not any(pseudonym in html for pseudonym in frame[PERSON].head(200))


def test_the_custodians_policy_and_a_treatment_shape_the_extract(
    installation: Installation,
) -> None:
    ctx, world = installation.ctx, installation.world
    make_project(ctx, world, "treated")
    set_microdata_policy(ctx, world.custodian, "health-demographics", k=20, max_global_risk=1e-4)
    decades = Step(
        "global_recode", {"variable": "birth_year", "breaks": list(range(1900, 2040, 10))}
    )
    try:
        result = build_extract(
            ctx, world.admin, installation.zones, "treated", master_key=MASTER,
            custodian=world.custodian, treatments={"health-demographics": (decades,)},
        )  # fmt: skip
    finally:
        set_microdata_policy(ctx, world.custodian, "health-demographics", k=5, max_global_risk=1e-4)
    risk = next(r for r in result.risks if r.dataset == "health-demographics")
    assert risk.k == 20 and risk.steps[0].startswith("global_recode")
    frame = pd.read_parquet(result.directory / "health-demographics.parquet")
    years = frame["birth_year"].dropna().astype(str)
    assert years.str.fullmatch(r"\(\d{4},\d{4}\]").all()  # decades, not years
    units = frame[[PERSON, *DEMOGRAPHICS_QI]].drop_duplicates()
    assert frequencies(units[DEMOGRAPHICS_QI]).fk.min() >= 20
    income = Step("top_bottom_code", {"variable": "income", "value": 1, "replacement": 1})
    with pytest.raises(LinkageError, match="treatment refused"):
        build_extract(
            ctx, world.admin, installation.zones, "treated", master_key=MASTER,
            treatments={"health-demographics": (income,)},
        )  # fmt: skip
