"""Proven reoffending from offence records, and time to first reoffence by a weighted
Kaplan-Meier curve over the whole cohort, censored at 365 days."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enclave.datalab.errors import DataLabError
from enclave.datalab.outcomes import (
    DAYS_TO_FIRST,
    REOFFENCES,
    REOFFENDED,
    kaplan_meier,
    proven_reoffending,
    restricted_mean,
    time_to_event,
)
from enclave.datalab.simulate import simulate

INDEX = pd.Timestamp("2020-03-01")


def _offence(person: str, offence_day: int, proven_day: int | None) -> dict[str, object]:
    proven = INDEX + pd.Timedelta(days=proven_day) if proven_day is not None else pd.NaT
    return {
        "person": person,
        "offence_date": INDEX + pd.Timedelta(days=offence_day),
        "proven_date": proven,
    }


def test_the_one_year_window_and_the_six_month_wait() -> None:
    people = pd.Series([INDEX] * 5, index=["day0", "edges", "late", "none", "before"])
    offences = pd.DataFrame(
        [
            _offence("day0", 0, 20),  # the index event itself
            _offence("edges", 1, 30),  # first day of follow-up
            _offence("edges", 365, 365 + 182),  # last day, proven on the last day of waiting
            _offence("edges", 366, 400),  # after the follow-up
            _offence("late", 100, 365 + 183),  # proven a day too late
            _offence("late", 200, None),  # never proven
            _offence("before", -10, 5),  # before the index date
            _offence("stranger", 10, 20),  # someone not in the cohort
        ]
    )
    found = proven_reoffending(people, offences)
    assert found[REOFFENDED].tolist() == [0, 1, 0, 0, 0]
    assert found[REOFFENCES].tolist() == [0, 2, 0, 0, 0]
    assert found.loc["edges", DAYS_TO_FIRST] == 1
    assert found[DAYS_TO_FIRST].isna().sum() == 4


def test_frequency_counts_every_proven_offence() -> None:
    people = pd.Series([INDEX, INDEX], index=["a", "b"])
    offences = pd.DataFrame([_offence("a", d, d + 10) for d in (50, 20, 20, 300)])
    found = proven_reoffending(people, offences)
    assert found.loc["a", REOFFENCES] == 4
    assert found.loc["a", DAYS_TO_FIRST] == 20
    assert found.loc["b", REOFFENCES] == 0


def test_bad_input_is_refused() -> None:
    with pytest.raises(DataLabError, match="lack columns: proven_date"):
        proven_reoffending(
            pd.Series([INDEX], index=["a"]), pd.DataFrame(columns=["person", "offence_date"])
        )
    with pytest.raises(DataLabError, match="one row per person"):
        proven_reoffending(
            pd.Series([INDEX, INDEX], index=["a", "a"]), pd.DataFrame([_offence("a", 1, 2)])
        )
    with pytest.raises(DataLabError, match="1 people have no index date"):
        proven_reoffending(
            pd.Series([INDEX, pd.NaT], index=["a", "b"]), pd.DataFrame([_offence("a", 1, 2)])
        )


def test_outcomes_from_the_simulated_records_equal_the_simulated_truth() -> None:
    sim = simulate(20_000, 200, seed=3)
    everyone = pd.concat([sim.cohort, sim.pool])
    dates = pd.Series(everyone["index_date"].to_numpy(), index=everyone["person"])
    found = proven_reoffending(dates, sim.offences)
    truth = sim.truth.loc[found.index]
    assert (found[REOFFENDED].to_numpy() == truth[REOFFENDED].to_numpy()).all()
    assert (found[REOFFENCES].to_numpy() == truth[REOFFENCES].to_numpy()).all()
    np.testing.assert_array_equal(found[DAYS_TO_FIRST].to_numpy(), truth[DAYS_TO_FIRST].to_numpy())
    # the records hold offences that must not count
    assert len(sim.offences) > found[REOFFENCES].sum()


def test_people_without_a_reoffence_are_censored_at_365_days() -> None:
    time, event = time_to_event(np.array([12.0, np.nan, 365.0, 400.0]))
    np.testing.assert_array_equal(time, [12, 365, 365, 365])
    np.testing.assert_array_equal(event, [True, False, True, False])


def test_kaplan_meier_by_hand_with_weights_and_censoring() -> None:
    time = np.array([2.0, 3.0, 3.0, 5.0, 8.0])
    event = np.array([True, False, True, True, False])
    weights = np.array([1.0, 2.0, 1.0, 0.5, 1.0])
    curve = kaplan_meier(time, event, weights)
    # at risk 5.5 at t=2 (1 event), 4.5 at t=3 (1 event), 1.5 at t=5 (0.5 event)
    expected = np.cumprod([1 - 1 / 5.5, 1 - 1 / 4.5, 1 - 0.5 / 1.5])
    np.testing.assert_allclose(curve["survival"], expected)
    np.testing.assert_allclose(curve["time"], [2, 3, 5])
    np.testing.assert_allclose(curve["at_risk"], [5.5, 4.5, 1.5])
    area = 2 * 1 + 1 * expected[0] + 2 * expected[1] + 5 * expected[2]
    assert restricted_mean(curve, horizon=10) == pytest.approx(area)


def test_integer_weights_equal_repeated_people() -> None:
    rng = np.random.default_rng(2)
    days = np.where(rng.random(300) < 0.4, rng.integers(1, 366, 300), np.nan)
    weights = rng.integers(1, 4, 300).astype(float)
    time, event = time_to_event(days)
    weighted = kaplan_meier(time, event, weights)
    repeated = kaplan_meier(
        np.repeat(time, weights.astype(int)),
        np.repeat(event, weights.astype(int)),
        np.ones(int(weights.sum())),
    )
    np.testing.assert_allclose(weighted["survival"], repeated["survival"])


def test_restricted_mean_over_the_whole_cohort_is_the_mean_capped_time() -> None:
    rng = np.random.default_rng(8)
    days = np.where(rng.random(1_000) < 0.3, rng.integers(1, 366, 1_000), np.nan)
    weights = rng.exponential(1.0, 1_000)
    time, event = time_to_event(days)
    area = restricted_mean(kaplan_meier(time, event, weights))
    assert area == pytest.approx(np.average(time, weights=weights))
    assert 0 < area < 365
