"""A synthetic linked cohort study: a cohort, its matched controls, five years of outcomes.

Shaped like a Child-and-Youth-Data-Lab study: young people in a cohort (for example, those who
were ever in care) are compared with controls matched exactly on sex, birth year and region,
on outcomes from linked health, education, social-assistance and justice records in each of
the five years after entry. Everything is drawn from one seeded generator over whole arrays,
so the frames are deterministic and fast; no real person is represented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

REGIONS = ("north", "south", "east", "west", "islands")
_REGION_WEIGHTS = (0.34, 0.28, 0.2, 0.15, 0.03)  # a small region makes small cells happen
BIRTH_YEARS = (2000, 2001, 2002, 2003, 2004)
FOLLOW_UP_YEARS = 5


@dataclass(frozen=True)
class CohortStudy:
    """``persons``: one row per young person; ``outcomes``: one row per person and follow-up
    year (1 to 5)."""

    persons: pd.DataFrame
    outcomes: pd.DataFrame


def generate_cohort(
    n_cohort: int = 1200, *, controls_per_case: int = 2, seed: int = 0
) -> CohortStudy:
    """A deterministic synthetic cohort study for ``seed``.

    ``persons`` columns: ``person_id`` (a pseudonym), ``group`` ("cohort" or "control"),
    ``match_id`` (the matched set), ``sex``, ``birth_year``, ``region``, ``first_offence_year``
    (years from entry to a first proven offence, continuous) and ``offended`` (1 if it happened
    within the five years, else 0: censored at 5).
    ``outcomes`` columns: ``person_id``, ``group``, ``sex``, ``region``, ``year``,
    ``ed_visits`` and ``hospital_admission`` (health), ``school_enrolled`` and ``suspensions``
    (education), ``benefit_months`` and ``benefit_amount`` (social assistance), ``offence``
    and ``custody`` (justice).

    Raises:
        ValueError: ``n_cohort`` below 1 or ``controls_per_case`` below 1.
    """
    if n_cohort < 1 or controls_per_case < 1:
        raise ValueError("n_cohort and controls_per_case must be at least 1")
    rng = np.random.default_rng(seed)
    per_set = 1 + controls_per_case
    n = n_cohort * per_set
    match_id = np.repeat(np.arange(n_cohort), per_set)
    is_case = np.tile(np.r_[True, np.zeros(controls_per_case, dtype=bool)], n_cohort)
    # exact matching: every member of a matched set shares sex, birth year and region
    sex = np.repeat(rng.choice(np.array(["F", "M"]), n_cohort), per_set)
    birth_year = np.repeat(rng.choice(np.array(BIRTH_YEARS), n_cohort), per_set)
    region = np.repeat(rng.choice(np.array(REGIONS), n_cohort, p=_REGION_WEIGHTS), per_set)
    order = rng.permutation(n)  # pseudonyms carry no order of the matched sets
    person_id = np.array([f"p{i:06d}" for i in order])
    # a person-level frailty makes outcomes of one person correlate across years and domains
    frailty = rng.normal(0.0, 0.5, n) + np.where(is_case, 0.8, 0.0)
    offence_rate = 0.04 * np.exp(frailty + np.where(sex == "M", 0.5, 0.0))
    first_offence = rng.exponential(1.0 / offence_rate)
    offended = (first_offence <= FOLLOW_UP_YEARS).astype(np.int64)
    persons = pd.DataFrame(
        {
            "person_id": person_id,
            "group": np.where(is_case, "cohort", "control"),
            "match_id": match_id,
            "sex": sex,
            "birth_year": birth_year,
            "region": region,
            "first_offence_year": np.round(np.minimum(first_offence, FOLLOW_UP_YEARS), 2),
            "offended": offended,
        }
    )
    return CohortStudy(persons, _outcomes(rng, persons, frailty, first_offence))


def _outcomes(
    rng: np.random.Generator,
    persons: pd.DataFrame,
    frailty: npt.NDArray[np.float64],
    first_offence: npt.NDArray[np.float64],
) -> pd.DataFrame:
    """One row per person and follow-up year, outcomes drawn from the person's frailty."""
    n = len(persons)
    year = np.tile(np.arange(1, FOLLOW_UP_YEARS + 1), n)
    rep = np.repeat(np.arange(n), FOLLOW_UP_YEARS)
    f = frailty[rep]
    age = (year + 14 + (2004 - persons["birth_year"].to_numpy()[rep])).astype(np.float64)
    ed_visits = rng.poisson(0.4 * np.exp(0.6 * f))
    admission = (rng.random(rep.size) < 0.05 * np.exp(0.7 * f)).astype(np.int64)
    enrol_p = 1.0 / (1.0 + np.exp(-(4.0 - 0.35 * (age - 14.0) - 1.2 * f)))
    enrolled = (rng.random(rep.size) < enrol_p).astype(np.int64)
    suspensions = rng.poisson(0.15 * np.exp(f)) * enrolled
    on_benefit = rng.random(rep.size) < 0.12 * np.exp(0.9 * f) * (age >= 16)
    benefit_months = np.where(on_benefit, rng.integers(1, 13, rep.size), 0)
    benefit_amount = np.round(benefit_months * rng.lognormal(6.3, 0.25, rep.size), 2)
    offence = ((first_offence[rep] < year) & (rng.random(rep.size) < 0.45)).astype(np.int64)
    offence[(first_offence[rep] >= year - 1) & (first_offence[rep] < year)] = 1
    custody = (offence == 1) & (rng.random(rep.size) < 0.06 * np.exp(0.5 * f))
    return pd.DataFrame(
        {
            "person_id": persons["person_id"].to_numpy()[rep],
            "group": persons["group"].to_numpy()[rep],
            "sex": persons["sex"].to_numpy()[rep],
            "region": persons["region"].to_numpy()[rep],
            "year": year,
            "ed_visits": ed_visits.astype(np.int64),
            "hospital_admission": admission,
            "school_enrolled": enrolled,
            "suspensions": suspensions.astype(np.int64),
            "benefit_months": benefit_months.astype(np.int64),
            "benefit_amount": benefit_amount,
            "offence": offence,
            "custody": custody.astype(np.int64),
        }
    )
