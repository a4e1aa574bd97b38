"""A Monte Carlo simulator for validating the evaluation (spec 8.14).

A population of offenders is drawn with demographics, criminal history and employment. The
people selected into treatment are older, employed more and have shorter records, and the
same variables drive reoffending, so the naive treated-versus-pool difference is strongly
biased. Selection depends only on recorded covariates, so matching on them can recover the
effect. The treatment lowers the log-odds of reoffending by ``effect``; the true ATT is the
mean, over the treated, of their reoffending probability with minus without treatment.

Outcomes are produced as offence records (offence and proven dates around each person's
index date, including offences after the follow-up and offences proven too late), so that
``outcomes.proven_reoffending`` is exercised on the way to the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from enclave.datalab.outcomes import (
    DAYS_TO_FIRST,
    FOLLOW_UP_DAYS,
    REOFFENCES,
    REOFFENDED,
    WAITING_DAYS,
    proven_reoffending,
)

COVARIATES = (
    "sex",
    "age",
    "ethnicity",
    "index_offence",
    "disposal",
    "previous_offences",
    "age_first_contact",
    "copas_rate",
    "months_employed",
)
ETHNICITY = (("Asian", 0.08), ("Black", 0.08), ("Mixed", 0.04), ("Other", 0.03), ("White", 0.77))
OFFENCE = (
    ("drugs", 0.15),
    ("motoring", 0.10),
    ("other", 0.20),
    ("theft", 0.30),
    ("violence", 0.25),
)
DISPOSAL = (("community", 0.45), ("custody", 0.35), ("suspended", 0.20))
_FIRST_INDEX_DAY = np.datetime64("2019-01-01")
_INDEX_SPAN_DAYS = 3 * 365


@dataclass(frozen=True, eq=False)
class Simulated:
    """One simulated request: the treated cohort, the untreated pool, everyone's offence
    records and the truth (``person`` ids are unique across cohort and pool)."""

    cohort: pd.DataFrame
    pool: pd.DataFrame
    offences: pd.DataFrame
    truth: pd.DataFrame
    true_att: float
    covariates: tuple[str, ...] = COVARIATES


def _choice(rng: np.random.Generator, levels: tuple[tuple[str, float], ...], n: int) -> np.ndarray:
    names = np.array([name for name, _ in levels])
    return names[rng.choice(len(levels), size=n, p=[p for _, p in levels])]


def _intercept_for(scores: np.ndarray, expected: float) -> float:
    """The intercept a with sum expit(a + scores) = expected (Newton's method)."""
    a = float(np.log(expected / len(scores)))
    for _ in range(50):
        p = expit(a + scores)
        step = (p.sum() - expected) / max(float((p * (1 - p)).sum()), 1e-12)
        a -= step
        if abs(step) < 1e-10:
            break
    return a


def _people(rng: np.random.Generator, n: int) -> pd.DataFrame:
    risk = rng.normal(size=n)
    age = np.minimum(18 + rng.gamma(2.5, 6.0, n), 75.0).round(1)
    first = 10 + (age - 10) * rng.beta(np.exp(-0.5 * risk), 2.5, n)
    previous = rng.poisson(np.exp(1.2 + 0.6 * risk + 0.02 * (age - 30)))
    employed = rng.binomial(24, expit(-0.2 - 0.9 * risk + 0.02 * (age - 30)))
    return pd.DataFrame(
        {
            "sex": np.where(rng.random(n) < 0.85, "M", "F"),
            "age": age,
            "ethnicity": _choice(rng, ETHNICITY, n),
            "index_offence": _choice(rng, OFFENCE, n),
            "disposal": _choice(rng, DISPOSAL, n),
            "previous_offences": previous,
            "age_first_contact": first.round(1),
            "copas_rate": np.log((previous + 1) / (age - first + 10)),
            "months_employed": employed,
            "_risk": risk,
        }
    )


def _selection_score(people: pd.DataFrame) -> np.ndarray:
    return np.asarray(
        0.19 * people["months_employed"]
        - 1.09 * np.log1p(people["previous_offences"])
        + 0.05 * (people["age"] - 33)
        + 0.58 * (people["sex"] == "F")
        + 0.72 * (people["index_offence"] == "drugs")
        - 0.58 * (people["disposal"] == "custody")
    )


def _outcome_score(people: pd.DataFrame) -> np.ndarray:
    return np.asarray(
        -1.2
        + 0.45 * np.log1p(people["previous_offences"])
        + 0.6 * (people["copas_rate"] + 2)
        - 0.03 * (people["age"] - 33)
        - 0.05 * people["months_employed"]
        + 0.3 * (people["index_offence"] == "theft")
        + 0.25 * people["_risk"]
    )


def _offence_records(
    rng: np.random.Generator,
    person: np.ndarray,
    index_day: np.ndarray,
    reoffends: np.ndarray,
    hazard: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Offence records with a proven reoffence exactly for ``reoffends``, and the truth."""
    n = len(person)
    deadline = FOLLOW_UP_DAYS + WAITING_DAYS
    first_day = 1 + np.floor(364 * rng.beta(0.7 + 0.6 * (1 - hazard), 1.4, n)).astype("int64")
    count = np.where(reoffends, 1 + rng.poisson(0.4 + 1.2 * hazard), 0)
    owner = np.repeat(np.arange(n), count)
    is_first = np.r_[True, owner[1:] != owner[:-1]] if owner.size else np.zeros(0, bool)
    low = first_day[owner]
    later = low + np.floor(rng.random(owner.size) * (FOLLOW_UP_DAYS + 1 - low)).astype("int64")
    day = np.where(is_first, low, later)
    lag = np.minimum(rng.geometric(1 / 45, owner.size), deadline - day)
    # Offences that never count: after the follow-up, and within it but proven too late.
    after = rng.poisson(0.3, n)
    late = rng.poisson(0.15, n)
    after_owner, late_owner = np.repeat(np.arange(n), after), np.repeat(np.arange(n), late)
    after_day = rng.integers(FOLLOW_UP_DAYS + 1, 900, after_owner.size)
    late_day = rng.integers(1, FOLLOW_UP_DAYS + 1, late_owner.size)
    owners = np.concatenate([owner, after_owner, late_owner])
    offence_day = np.concatenate([day, after_day, late_day])
    proven_day = np.concatenate(
        [
            day + lag,
            after_day + rng.geometric(1 / 45, after_owner.size),
            rng.integers(deadline + 1, deadline + 300, late_owner.size),
        ]
    )
    start = _FIRST_INDEX_DAY + index_day[owners].astype("timedelta64[D]")
    offences = pd.DataFrame(
        {
            "person": person[owners],
            "offence_date": start + offence_day.astype("timedelta64[D]"),
            "proven_date": start + proven_day.astype("timedelta64[D]"),
        }
    )
    truth = pd.DataFrame(
        {
            REOFFENDED: reoffends.astype("int64"),
            REOFFENCES: count,
            DAYS_TO_FIRST: np.where(reoffends, first_day, np.nan),
        },
        index=pd.Index(person, name="person"),
    )
    return offences.sample(frac=1.0, random_state=rng).reset_index(drop=True), truth


def simulate(
    pool_size: int = 200_000,
    expected_treated: float = 550.0,
    *,
    effect: float = -0.36,
    seed: int | np.random.Generator = 0,
) -> Simulated:
    """Draw ``pool_size + expected_treated`` people, select about ``expected_treated`` into
    treatment and give the treated a log-odds ``effect`` on reoffending."""
    if pool_size < 1 or not 0 < expected_treated < pool_size:
        raise ValueError("need 0 < expected_treated < pool_size")
    rng = np.random.default_rng(seed)
    n = pool_size + round(expected_treated)
    people = _people(rng, n)
    selection = _selection_score(people)
    treated = rng.random(n) < expit(_intercept_for(selection, expected_treated) + selection)
    baseline = _outcome_score(people)
    untreated_p = expit(baseline)
    treated_p = expit(baseline + effect)
    reoffends = rng.random(n) < np.where(treated, treated_p, untreated_p)
    true_att = float((treated_p - untreated_p)[treated].mean())
    person = np.arange(n)
    index_day = rng.integers(0, _INDEX_SPAN_DAYS, n)
    offences, truth = _offence_records(rng, person, index_day, reoffends, untreated_p)
    people = people.drop(columns="_risk")
    people.insert(0, "person", person)
    people["index_date"] = _FIRST_INDEX_DAY + index_day.astype("timedelta64[D]")
    return Simulated(
        cohort=people[treated].reset_index(drop=True),
        pool=people[~treated].reset_index(drop=True),
        offences=offences,
        truth=truth,
        true_att=true_att,
    )


def with_outcomes(sim: Simulated) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cohort and pool with the outcome columns derived from the offence records."""
    frames = []
    for frame in (sim.cohort, sim.pool):
        dates = pd.Series(frame["index_date"].to_numpy(), index=frame["person"])
        found = proven_reoffending(dates, sim.offences)
        frames.append(frame.join(found, on="person"))
    return frames[0], frames[1]
