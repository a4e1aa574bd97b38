"""The data lab's pipeline on synthetic ministries with a known programme effect: a provider's
cohort file is validated, located in the justice records through the linkage unit, given
index events, covariates and outcomes, and evaluated; the effect built into the data must be
recovered, and the client's identifiers must not survive matching."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from enclave.control.audit import records
from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.control.service import people
from enclave.datalab.cohort import check_cohort
from enclave.datalab.evaluate import evaluate
from enclave.datalab.locate import (
    AUDIT_ACTION,
    BENEFIT_DAYS,
    COVARIATES,
    benefit_days,
    cohort_events,
    identify,
    index_events,
    locate,
    pool_events,
)
from enclave.datalab.outcomes import OUTCOME_COLUMNS
from enclave.linkage.deliveries import write_synthetic
from enclave.linkage.ingest import ingest_delivery
from enclave.linkage.pipeline import load_sources, run_linkage, settings_for
from enclave.linkage.zones import Zones
from enclave.synth.ministries import generate_ministries

# 40,000 people hold about 1,700 offenders and 240 service users: enough for a confidence
# interval of about +-8 points around the built-in effect of about -13 points.
POPULATION, SEED = 40_000, 7
ADMIN = "admin@datalab.example"
CUSTODIAN = "custodian@datalab.example"
TODAY = date(2026, 11, 26)
SENTINELS = ("Quixotlemna", "Zyrbaxwell")  # client names found nowhere else


@dataclass(frozen=True)
class JusticeEnclave:
    """A data directory with justice records ingested and linked, and the synthetic
    deliveries and truth kept outside it."""

    data_dir: Path
    synth: Path
    database_url: str
    effect: dict[str, Any]

    def context(self) -> Context:
        return Context(engine=make_engine(self.database_url), data_dir=self.data_dir)


@cache
def build_enclave(root: Path) -> JusticeEnclave:
    """Synthesise, ingest justice (and human services, so that a model can be trained on a
    link between two sources) and link them, as ``enclave link ingest/run`` would."""
    synth, data_dir = root / "synth", root / "enclave"
    write_synthetic(generate_ministries(POPULATION, seed=SEED), synth)
    url = f"sqlite:///{data_dir / 'db' / 'enclave.sqlite3'}"  # the settings' default
    engine = make_engine(url)
    upgrade(engine)
    ctx = Context(engine=engine, data_dir=data_dir)
    try:
        people.bootstrap_admin(ctx, email=ADMIN, name="Admin", organisation="Enclave")
        people.create_person(
            ctx, ADMIN, email=CUSTODIAN, name="Custodian", organisation="MoJ",
            roles=["data_custodian"],
        )  # fmt: skip
        zones = Zones(data_dir)
        for source in ("justice", "human_services"):
            ingest_delivery(
                ctx, ADMIN, zones, synth / "deliveries" / source, custodian=CUSTODIAN,
                purposes=["social_research"],
                unregistered_input=True,  # generated test data
            )  # fmt: skip
        settings = dataclasses.replace(settings_for(load_sources(zones)), u_max_pairs=2e5)
        run_linkage(zones, settings=settings)
    finally:
        ctx.close()
    effects = json.loads((synth / "truth" / "effects.json").read_text(encoding="utf-8"))
    return JusticeEnclave(data_dir, synth, url, effects["service_users"])


def provider_rows(enclave: JusticeEnclave) -> pd.DataFrame:
    """The provider's service users as an organisation would list them, with the national
    id (from the truth) as offender id on every third row."""
    sp = enclave.synth / "deliveries" / "service_provider"
    ids = pd.read_csv(sp / "identifiers.csv", dtype=str, keep_default_na=False)
    spells = pd.read_csv(sp / "interventions.csv", dtype=str, keep_default_na=False)
    rows = ids.merge(spells, on="record_key")
    truth = enclave.synth / "truth"
    links = pd.read_csv(truth / "links.csv", dtype=str)
    persons = pd.read_csv(truth / "persons.csv", dtype=str)
    by_key = links.merge(persons[["person_id", "national_id"]], on="person_id")
    national = by_key.set_index("record_key")["national_id"]
    offender = national.reindex(rows["record_key"]).fillna("").to_numpy()
    offender[np.arange(len(rows)) % 3 != 0] = ""
    return pd.DataFrame(
        {
            "Forename": rows["first_name"],
            "Surname": rows["surname"],
            "Date of birth": rows["dob"],
            "Sex": rows["sex"],
            "Intervention start": rows["intervention_start"],
            "End date": rows["intervention_end"],
            "Postcode": rows["postcode"],
            "National offender id": offender,
            "_record_key": rows["record_key"],
        }
    )


def write_cohort(rows: pd.DataFrame, path: Path) -> Path:
    rows.drop(columns=["_record_key"], errors="ignore").to_csv(path, index=False)
    return path


def sentinel_rows() -> pd.DataFrame:
    """Two people the justice records do not hold, with names found nowhere else."""
    return pd.DataFrame(
        {
            "Forename": list(SENTINELS),
            "Surname": ["Ottoline", "Pembury"],
            "Date of birth": ["03/02/1991", "17/09/1985"],
            "Sex": ["F", "M"],
            "Intervention start": ["2021-03-01", "2021-05-02"],
            "End date": ["", ""],
            "Postcode": ["", ""],
            "National offender id": ["", ""],
        }
    )


def test_known_programme_effect_is_recovered(enclave: JusticeEnclave, tmp_path: Path) -> None:
    cohort = check_cohort(write_cohort(provider_rows(enclave), tmp_path / "c.csv"), today=TODAY)
    located = locate(cohort, Zones(enclave.data_dir))
    evaluation = evaluate(
        located.cohort, located.pool, located.covariates, earlier_stages=located.stages
    )
    rate = evaluation.measure("rate").result
    true_pp = enclave.effect["true_att_pp"]
    assert true_pp < -5  # the synthetic effect is large enough to be found
    assert 100 * rate.ci_low <= true_pp <= 100 * rate.ci_high
    assert rate.significant and rate.difference < 0
    assert evaluation.n_treated >= 0.9 * enclave.effect["treated"]
    assert evaluation.publishable
    stages = [s.stage for s in evaluation.attrition]
    assert stages[:3] == ["submitted", "identified", "index sentence located"]
    assert evaluation.attrition[0].count == enclave.effect["treated"]
    assert evaluation.attrition[1].count >= 0.95 * enclave.effect["treated"]


def test_identification_finds_the_right_people(enclave: JusticeEnclave, tmp_path: Path) -> None:
    rows = provider_rows(enclave)
    cohort = check_cohort(write_cohort(rows, tmp_path / "c.csv"), today=TODAY)
    zones = Zones(enclave.data_dir)
    found, by_id = identify(cohort.people, zones)
    # the truth: provider record -> true person -> justice record -> the enclave's person id
    links = pd.read_csv(enclave.synth / "truth" / "links.csv", dtype=str)
    true_person = links.set_index("record_key")["person_id"]
    justice = links[links["source"] == "justice"].set_index("person_id")["record_key"]
    index = pd.read_parquet(zones.person_index)
    enclave_id = index[index["source"] == "justice"].set_index("record_key")["person_id"]
    line_key = dict(zip(range(2, len(rows) + 2), rows["_record_key"], strict=True))
    keys = cohort.people["line"].map(line_key)
    expected = enclave_id.reindex(justice.reindex(true_person.reindex(keys)).to_numpy())
    expected.index = cohort.people.index
    right = (found == expected.reindex(found.index)).sum()
    with_id = int((rows["National offender id"] != "").sum())
    assert 0.25 * with_id < by_id <= with_id  # the justice records hold 40 % of the ids
    assert right >= 0.95 * expected.notna().sum()
    assert len(found) - right <= 2  # wrong people: at most a couple


def test_frames_carry_person_ids_and_pre_index_covariates_only(
    enclave: JusticeEnclave, tmp_path: Path
) -> None:
    rows = provider_rows(enclave)
    cohort = check_cohort(write_cohort(rows, tmp_path / "c.csv"), today=TODAY)
    located = locate(cohort, Zones(enclave.data_dir))
    assert located.covariates == (*COVARIATES, BENEFIT_DAYS)  # human services are linked
    expected = [*located.covariates, *OUTCOME_COLUMNS]
    for frame in (located.cohort, located.pool):
        assert list(frame.columns) == expected
        assert frame.index.name == "person_id" and frame.index.is_unique
    assert not set(located.cohort.index) & set(located.pool.index)
    assert len(located.pool) > 5 * len(located.cohort)
    text = located.cohort.astype(str).to_csv() + located.pool.astype(str).to_csv()
    for column in ("Surname", "Date of birth"):
        leaked = [v for v in rows[column] if v and v in text]
        assert not leaked
    # the treated had more priors (selection), which matching has to correct
    assert located.cohort["prior_convictions"].mean() > located.pool["prior_convictions"].mean()
    assert (located.pool[BENEFIT_DAYS] > 0).mean() > 0.1


def test_client_identifiers_are_not_kept_after_matching(
    enclave: JusticeEnclave, tmp_path: Path
) -> None:
    rows = pd.concat([provider_rows(enclave).head(30), sentinel_rows()], ignore_index=True)
    path = write_cohort(rows, tmp_path / "c.csv")
    cohort = check_cohort(path, today=TODAY)
    ctx = enclave.context()
    try:
        located = locate(cohort, Zones(enclave.data_dir), ctx=ctx, actor=ADMIN)
        events = records(ctx.engine, action=AUDIT_ACTION)
    finally:
        ctx.close()
    assert located.stages[0].count == 32
    assert located.stages[1].count <= 30  # the sentinels are not found
    # attack: look for the client's identifiers in every file the enclave holds
    needles = [s.encode() for s in SENTINELS] + [s.lower().encode() for s in SENTINELS]
    needles += [b"Ottoline", b"ottoline", b"Pembury", b"pembury"]
    for file in enclave.data_dir.rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            assert not [n for n in needles if n in content], file
    assert not list((enclave.data_dir / "linkage" / "work").iterdir())  # scratch removed
    assert events and events[-1].actor == ADMIN
    assert events[-1].detail["people"] == 32
    assert not [n for n in needles if n.decode() in json.dumps(events[-1].detail)]


def test_a_cohort_the_records_lack_gives_empty_frames(
    enclave: JusticeEnclave, tmp_path: Path
) -> None:
    cohort = check_cohort(write_cohort(sentinel_rows(), tmp_path / "c.csv"), today=TODAY)
    located = locate(cohort, Zones(enclave.data_dir))
    assert [s.count for s in located.stages] == [2, 0, 0]
    assert located.cohort.empty and located.pool.empty


def _events() -> dict[str, pd.DataFrame]:
    day = pd.Timestamp
    return {
        "offences": pd.DataFrame(
            {
                "person": ["a", "a", "b", "c"],
                "offence_id": ["o1", "o2", "o3", "o4"],
                "offence_date": [
                    day("2019-01-01"),
                    day("2020-01-01"),
                    day("2020-02-01"),
                    day("2020-03-01"),
                ],
                "offence_group": ["theft", "fraud", "drugs", "theft"],
            }
        ),
        "convictions": pd.DataFrame(
            {
                "person": ["a", "a", "b", "c"],
                "offence_id": ["o1", "o2", "o3", "o4"],
                "conviction_date": [
                    day("2019-03-01"),
                    day("2020-03-01"),
                    day("2020-04-01"),
                    day("2020-05-01"),
                ],
                "disposal": ["fine", "custody", "caution", "custody"],
                "sentence_months": [0, 6, 0, 4],
            }
        ),
        "custody": pd.DataFrame(
            {
                "person": ["a", "c"],
                "reception_date": [day("2020-03-01"), day("2020-05-01")],
                "release_date": [day("2020-06-01"), pd.NaT],  # c is still inside
            }
        ),
    }


def test_the_index_event_is_a_release_or_a_non_custodial_sentence() -> None:
    events = index_events(_events())
    assert events[["person", "disposal"]].values.tolist() == [
        ["a", "fine"],
        ["a", "custody"],
        ["b", "caution"],
    ]
    release = events.loc[events["disposal"] == "custody"].iloc[0]
    assert release["index_date"] == pd.Timestamp("2020-06-01")
    assert release["conviction_date"] == pd.Timestamp("2020-03-01")
    assert release["offence_group"] == "fraud"


def test_a_cohort_members_index_event_is_the_one_nearest_the_intervention() -> None:
    events = index_events(_events())
    starts = pd.Series([pd.Timestamp("2020-05-20"), pd.Timestamp("2021-06-01")], index=["a", "b"])
    chosen = cohort_events(events, starts)
    assert chosen["person"].tolist() == ["a"]  # b's caution is a year before the start
    assert chosen["index_date"].tolist() == [pd.Timestamp("2020-06-01")]
    pool = pool_events(
        events, pd.Index(["a"]), pd.Timestamp("2019-01-01"), pd.Timestamp("2020-12-31")
    )
    assert pool["person"].tolist() == ["b"]


def test_benefit_days_count_only_the_three_years_before_the_index() -> None:
    day = pd.Timestamp
    spells = pd.DataFrame(
        {
            "person": ["a", "a", "a", "b", "c"],
            "start_date": [day("2015-01-01"), day("2019-12-01"), day("2020-02-01"),
                           day("2019-12-22"), day("2018-01-01")],
            "end_date": [day("2017-02-01"), day("2019-12-11"), pd.NaT, pd.NaT,
                         day("2018-01-31")],
        }
    )  # fmt: skip
    index = pd.Series(
        [day("2020-01-01"), day("2020-01-01"), day("2016-01-01")], index=["a", "b", "d"]
    )
    days = benefit_days(index, spells)
    # a: 2017-01-01..2017-02-01 (31) + 10; the spell after the index does not count
    assert days.to_dict() == {"a": 41.0, "b": 10.0, "d": 0.0}
