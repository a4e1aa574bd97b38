"""The synthetic cohort study behind the examples: matched sets, five years, seeded."""

from __future__ import annotations

import pandas as pd
import pytest

from enclave.synth.cohort import FOLLOW_UP_YEARS, generate_cohort


def test_matched_sets_share_sex_birth_year_and_region() -> None:
    study = generate_cohort(50, controls_per_case=3, seed=1)
    persons = study.persons
    assert len(persons) == 200 and persons.person_id.is_unique
    sets = persons.groupby("match_id")
    assert (sets.size() == 4).all()
    assert (sets["group"].apply(lambda g: (g == "cohort").sum()) == 1).all()
    for column in ("sex", "birth_year", "region"):
        assert (sets[column].nunique() == 1).all()
    assert len(study.outcomes) == 200 * FOLLOW_UP_YEARS
    assert set(study.outcomes.year) == set(range(1, FOLLOW_UP_YEARS + 1))


def test_deterministic_and_the_cohort_fares_worse() -> None:
    a, b = generate_cohort(300, seed=5), generate_cohort(300, seed=5)
    pd.testing.assert_frame_equal(a.outcomes, b.outcomes)
    means = a.outcomes.groupby("group")[["benefit_months", "offence", "school_enrolled"]].mean()
    assert means.loc["cohort", "benefit_months"] > means.loc["control", "benefit_months"]
    assert means.loc["cohort", "offence"] > means.loc["control", "offence"]
    assert means.loc["cohort", "school_enrolled"] < means.loc["control", "school_enrolled"]


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_cohort(0)
