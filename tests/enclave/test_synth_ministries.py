"""The four ministries' synthetic deliveries: deterministic, split like real deliveries,
with realistic identifier errors, the truth kept apart, and the known effects built in."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from enclave.synth.ministries import MINISTRIES, SOURCES, MinistryData, generate_ministries
from enclave.synth.ministries.deliveries import STYLES

TRUTH_ONLY = {"person_id", "household_id", "fasd", "risk", "is_adult", "service_user", "moved_on"}


@cache
def data(seed: int = 11) -> MinistryData:
    return generate_ministries(20_000, seed=seed)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b = generate_ministries(2_000, seed=3), generate_ministries(2_000, seed=3)
    for source in SOURCES:
        pd.testing.assert_frame_equal(
            a.deliveries[source].identifiers, b.deliveries[source].identifiers
        )
    other = generate_ministries(2_000, seed=4)
    assert not a.deliveries["health"].identifiers.equals(other.deliveries["health"].identifiers)
    with pytest.raises(ValueError, match="at least one person"):
        generate_ministries(0)


def test_deliveries_carry_no_truth_and_are_keyed_by_random_record_keys() -> None:
    d = data()
    assert set(d.deliveries) == set(SOURCES) and len(MINISTRIES) == 4
    for source, delivery in d.deliveries.items():
        ident = delivery.identifiers
        assert list(ident.columns) == ["record_key", *STYLES[source].columns.values()]
        assert ident["record_key"].is_unique
        assert ident["record_key"].str.fullmatch(r"[0-9a-f]{16}").all()
        keys = set(ident["record_key"])
        for name, table in delivery.tables.items():
            assert not TRUTH_ONLY & set(table.columns), (source, name)
            assert set(table["record_key"]) <= keys, (source, name)
            # content never repeats an identifier column
            assert not set(STYLES[source].columns.values()) & set(table.columns) - {"record_key"}
        assert not TRUTH_ONLY & set(ident.columns)


def test_truth_links_every_record_once_and_each_person_once_per_source() -> None:
    d = data()
    links = d.truth_links
    delivered = sum(len(x.identifiers) for x in d.deliveries.values())
    assert len(links) == delivered and not links.duplicated(["source", "record_key"]).any()
    assert not links.duplicated(["source", "person_id"]).any()
    assert set(links["person_id"]) <= set(d.truth_persons["person_id"])
    assert links.groupby("person_id").size().max() >= 4  # some people are known everywhere


def delivered_vs_true(d: MinistryData, source: str) -> pd.DataFrame:
    style = STYLES[source]
    ident = d.deliveries[source].identifiers.rename(
        columns={v: k for k, v in style.columns.items()}
    )
    joined = ident.merge(d.truth_links[d.truth_links["source"] == source], on="record_key")
    return joined.merge(d.truth_persons, on="person_id", suffixes=("", "_true"))


def test_identifier_errors_are_realistic_and_worse_in_justice() -> None:
    d = data()
    rates = {}
    for source in ("health", "justice"):
        j = delivered_vs_true(d, source)
        given = j["given_name"].str.lower()
        rates[source] = {
            "given": float((given != j["given_name_true"]).mean()),
            "swapped": float((given == j["surname_true"]).mean()),
            "no_postcode": float(j["postcode"].isna().mean()),
            "moved": float((j["postcode"].notna() & (j["postcode"] != j["postcode_true"])).mean()),
        }
        fmt = STYLES[source].date_format
        dob = pd.to_datetime(j["date_of_birth"], format=fmt, errors="coerce").dt.strftime(
            "%Y-%m-%d"
        )
        rates[source]["dob"] = float((dob != j["date_of_birth_true"]).mean())
    health, justice = rates["health"], rates["justice"]
    assert 0.02 < health["given"] < 0.12 and justice["given"] > health["given"]
    assert justice["swapped"] > health["swapped"] > 0
    assert 0.2 < justice["no_postcode"] < 0.3 and health["no_postcode"] < 0.04
    assert 0.05 < health["moved"] < 0.3  # records taken before a household moved
    assert 0.005 < health["dob"] < 0.05


def test_service_user_effect_is_known_and_confounded() -> None:
    effect = data().effects["service_users"]
    assert effect["treated"] >= 60  # enough for a Justice-Data-Lab analysis
    assert effect["true_att_pp"] < -3
    # referral favours people likelier to reoffend: the naive comparison hides the benefit
    assert effect["naive_difference_pp"] > effect["true_att_pp"]
    users = data().deliveries["service_provider"].tables["interventions"]
    assert len(users) == effect["treated"]


def test_fasd_cohort_has_known_gaps_and_a_recorded_diagnosis() -> None:
    d = data()
    effect = d.effects["fasd"]
    assert effect["cohort_size"] > 50
    assert effect["realised_score_gap_points"] < -40
    assert effect["realised_diploma_gap_pp"] < 0
    assert effect["realised_disability_services_gap_pp"] > 30
    visits = d.deliveries["health"].tables["physician_visits"]
    diagnosed = visits[visits["diagnosis_group"] == "fasd"].merge(d.truth_links, on="record_key")
    flagged = set(d.truth_persons.loc[d.truth_persons["fasd"], "person_id"])
    assert set(diagnosed["person_id"]) <= flagged
    assert len(set(diagnosed["person_id"])) > 0.9 * len(flagged)


def test_households_make_linkage_hard() -> None:
    persons = data().truth_persons
    shared = persons.groupby("household_id")["surname"].nunique()
    assert (persons.groupby("household_id").size() > 1).mean() > 0.3
    assert (shared == 1).mean() > 0.6
    twins = persons.duplicated(["household_id", "date_of_birth"], keep=False) & ~persons["is_adult"]
    assert twins.any()
    assert np.isin(persons["sex"], ["F", "M"]).all()


def test_two_file_generator_for_scale() -> None:
    from enclave.synth.ministries.twofile import generate_two_files

    files = generate_two_files(2_000, seed=1)
    assert len(files.a) == len(files.b) == 1_000
    truth = files.truth
    shared = truth.groupby("entity")["source"].nunique()
    assert (shared == 2).sum() == 800  # B holds copies of 80 % of A
    b = files.b.merge(truth[truth["source"] == "b"], on="record_key")
    a = files.a.merge(truth[truth["source"] == "a"], on="record_key")
    both = a.merge(b, on="entity", suffixes=("_a", "_b"))
    changed = (both["given_name_a"] != both["given_name_b"]).mean()
    assert 0.05 < changed < 0.25
    assert files.b["postcode"].isna().mean() > 0.01
    with pytest.raises(ValueError, match="at least 4"):
        generate_two_files(3)


def test_a_mistyped_year_of_birth_never_lands_after_the_extraction_date() -> None:
    from enclave.synth.ministries.corrupt import ErrorRates, dob_errors

    rng = np.random.default_rng(5)
    latest = np.datetime64("2025-12-31")
    dob = latest - rng.integers(0, 365 * 12, 50_000).astype("timedelta64[D]")  # many children
    rates = ErrorRates(dob_typo=0.5)
    out = dob_errors(dob, rates, np.random.default_rng(6), latest=latest)
    assert (out[~np.isnat(out)] <= latest).all()
    assert ((out - dob).astype("timedelta64[D]").astype(np.int64) < -3000).any()  # -10 years
    unbounded = dob_errors(dob, rates, np.random.default_rng(6))
    assert (unbounded[~np.isnat(unbounded)] > latest).any()  # the bound is what prevents it
