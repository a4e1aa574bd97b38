"""Health, education and human-services records of the true population, with the FASD-like
cohort's known outcome gaps built in.

Each generator returns who is on the ministry's register (indices into ``persons``) and its
content tables keyed by ``_person`` (the index); the delivery step swaps that for the
custodian's record keys. Every rate and gap is a module constant, so the truth is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from enclave.synth.ministries.population import WINDOW_END, WINDOW_START
from enclave.synth.ministries.timing import add_years, age_on, between, day

IntArray = npt.NDArray[np.int64]

HEALTH_COVERAGE = 0.97
VISITS_PER_YEAR = 0.6
ADMISSIONS_PER_YEAR = 0.04
DIAGNOSES = (
    "routine",
    "respiratory",
    "musculoskeletal",
    "mental_health",
    "injury",
    "infection",
    "cardiovascular",
)
_DIAGNOSIS_P = (0.3, 0.18, 0.14, 0.12, 0.1, 0.1, 0.06)
EDUCATION_COVERAGE = 0.95
# The FASD-like cohort's gaps, in the units of each outcome (the generating truth).
FASD_SCORE_GAP_SD = 0.6  # standardised assessment score, in standard deviations
FASD_SPECIAL_NEEDS = (0.5, 0.06)  # probability with and without
FASD_DISABILITY_SERVICES = (0.55, 0.025)
FASD_COMPLETION_LOGIT = -1.2  # effect on the logit of completing high school
SCORE_MEAN, SCORE_SD = 500.0, 100.0
SUPPORT_PROGRAMMES = ("basic", "employment_support", "disability_allowance")
DISABILITY_SERVICES = ("respite", "therapy", "aids_and_equipment", "supported_living")


def _logistic(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-x))
    return out


@dataclass(frozen=True)
class Register:
    """A ministry's register (person indices) and its content tables keyed by ``_person``."""

    people: IntArray
    tables: dict[str, pd.DataFrame]


def health(persons: pd.DataFrame, rng: np.random.Generator) -> Register:
    """Physician visits and hospitalisations, 2016-2025; FASD diagnosed at a visit."""
    n = len(persons)
    dob = persons["date_of_birth"].to_numpy().astype("datetime64[D]")
    risk = persons["risk"].to_numpy()
    fasd = persons["fasd"].to_numpy()
    registered = np.flatnonzero(rng.random(n) < HEALTH_COVERAGE)
    start = np.maximum(dob[registered], day(WINDOW_START))
    years = (day(WINDOW_END) - start).astype(np.int64) / 365.25
    rate = VISITS_PER_YEAR * np.exp(0.25 * risk[registered]) + 0.8 * fasd[registered]
    count = rng.poisson(np.maximum(rate * years, 0.0))
    who = np.repeat(registered, count)
    when = between(rng, np.repeat(start, count), np.full(who.size, day(WINDOW_END)))
    diagnosis = np.array(DIAGNOSES, dtype=object)[
        rng.choice(len(DIAGNOSES), who.size, p=_DIAGNOSIS_P)
    ]
    # the cohort's diagnosis: one visit between ages 3 and 8 (or at the window start)
    diagnosed = registered[fasd[registered]]
    first = np.maximum(add_years(dob[diagnosed], 3), day(WINDOW_START))
    at = between(rng, first, np.minimum(add_years(dob[diagnosed], 8), day(WINDOW_END)))
    at = np.minimum(np.maximum(at, first), day(WINDOW_END))
    visits = pd.DataFrame(
        {
            "_person": np.concatenate([who, diagnosed]),
            "visit_date": np.concatenate([when, at]),
            "diagnosis_group": np.concatenate(
                [diagnosis, np.full(diagnosed.size, "fasd", dtype=object)]
            ),
            "provider_type": np.where(
                rng.random(who.size + diagnosed.size) < 0.8, "gp", "specialist"
            ).astype(object),
        }
    )
    adm_rate = ADMISSIONS_PER_YEAR * np.exp(0.4 * risk[registered]) + 0.03 * fasd[registered]
    adm_count = rng.poisson(np.maximum(adm_rate * years, 0.0))
    adm_who = np.repeat(registered, adm_count)
    admitted = between(rng, np.repeat(start, adm_count), np.full(adm_who.size, day(WINDOW_END)))
    stay = rng.geometric(0.3, adm_who.size) - 1
    hospital = pd.DataFrame(
        {
            "_person": adm_who,
            "admission_date": admitted,
            "discharge_date": admitted + stay.astype("timedelta64[D]"),
            "diagnosis_group": np.array(DIAGNOSES, dtype=object)[
                rng.choice(len(DIAGNOSES), adm_who.size, p=_DIAGNOSIS_P)
            ],
        }
    )
    return Register(
        registered, {"physician_visits": _by_date(visits), "hospitalisations": _by_date(hospital)}
    )


def education(
    persons: pd.DataFrame, rng: np.random.Generator
) -> tuple[Register, npt.NDArray[np.float64]]:
    """Enrolment per school year (grades 0-12) and attainment (assessments in grades 3, 6 and
    9, the diploma in grade 12) for people of school age in 2016-2025; also returns each
    person's latent ability (standardised), from which the FASD score gap is known."""
    n = len(persons)
    dob = persons["date_of_birth"].to_numpy().astype("datetime64[D]")
    risk = persons["risk"].to_numpy()
    fasd = persons["fasd"].to_numpy()
    ability = rng.normal(0.0, 0.8, n) - 0.3 * risk - FASD_SCORE_GAP_SD * fasd
    school_age = (dob > day(date(1998, 9, 1))) & (dob <= day(date(2020, 9, 1)))
    registered = np.flatnonzero(school_age & (rng.random(n) < EDUCATION_COVERAGE))
    special = rng.random(n) < np.where(fasd, *FASD_SPECIAL_NEEDS)
    completes = rng.random(n) < _logistic(2.0 + 1.0 * ability + FASD_COMPLETION_LOGIT * fasd)
    region = persons["postcode"].str.extract(r"^([A-Z]+)")[0].to_numpy()
    rows: list[pd.DataFrame] = []
    marks: list[pd.DataFrame] = []
    for year in range(WINDOW_START.year, WINDOW_END.year + 1):
        grade = age_on(dob[registered], day(date(year, 9, 1))) - 5
        in_school = (grade >= 0) & (grade <= 12)
        # those who will not complete leave after grade 10 half of the time
        left = (grade > 10) & ~completes[registered] & (rng.random(registered.size) < 0.5)
        keep = in_school & ~left
        who = registered[keep]
        rows.append(
            pd.DataFrame(
                {
                    "_person": who,
                    "school_year": year,
                    "grade": grade[keep],
                    "school_region": region[who],
                    "special_needs": np.where(special[who], "Y", "N").astype(object),
                }
            )
        )
        tested = keep & np.isin(grade, (3, 6, 9))
        graduating = keep & (grade == 12)
        t, g = registered[tested], registered[graduating]
        noise = rng.normal(0.0, 0.6, t.size)
        marks.append(
            pd.DataFrame(
                {
                    "_person": np.concatenate([t, g]),
                    "school_year": year,
                    "grade": np.concatenate([grade[tested], grade[graduating]]),
                    "assessment_score": np.concatenate(
                        [
                            np.round(SCORE_MEAN + SCORE_SD * (ability[t] + noise)),
                            np.full(g.size, np.nan),
                        ]
                    ),
                    "diploma": np.concatenate(
                        [
                            np.full(t.size, None, dtype=object),
                            np.where(completes[g], "Y", "N").astype(object),
                        ]
                    ),
                }
            )
        )
    enrolments = pd.concat(rows, ignore_index=True)
    attainment = pd.concat(marks, ignore_index=True)
    attainment["assessment_score"] = attainment["assessment_score"].astype("Int64")
    return Register(registered, {"enrolments": enrolments, "attainment": attainment}), ability


def human_services(persons: pd.DataFrame, rng: np.random.Generator) -> Register:
    """Income support spells (adults), child-support dependents (children of supported
    adults, with their guardian) and disability services (far more often for FASD)."""
    n = len(persons)
    dob = persons["date_of_birth"].to_numpy().astype("datetime64[D]")
    risk = persons["risk"].to_numpy()
    fasd = persons["fasd"].to_numpy()
    household = persons["household_id"].to_numpy()
    adult_from = np.maximum(add_years(dob, 18), day(WINDOW_START))
    can_claim = adult_from <= day(WINDOW_END)
    claims = can_claim & (rng.random(n) < _logistic(-2.2 + 1.0 * risk + 0.8 * fasd))
    claimant = np.flatnonzero(claims)
    spells = rng.integers(1, 4, claimant.size)
    who = np.repeat(claimant, spells)
    started = between(rng, adult_from[who], np.full(who.size, day(WINDOW_END)))
    length = rng.geometric(1 / 240, who.size)
    ended = started + length.astype("timedelta64[D]")
    ended[ended > day(WINDOW_END)] = np.datetime64("NaT")  # still open
    support = pd.DataFrame(
        {
            "_person": who,
            "start_date": started,
            "end_date": ended,
            "programme": np.array(SUPPORT_PROGRAMMES, dtype=object)[
                rng.choice(3, who.size, p=(0.6, 0.3, 0.1))
            ],
            "monthly_amount": np.round(rng.lognormal(6.6, 0.25, who.size), 2),
        }
    )
    support = support.sort_values(["_person", "start_date"], kind="stable")
    first_claim = support.drop_duplicates("_person")
    by_household = first_claim.assign(
        household=household[first_claim["_person"].to_numpy()]
    ).drop_duplicates("household")
    by_household = by_household.set_index("household")
    guardian_of_household = by_household["_person"]
    case_start = by_household["start_date"]
    is_child = ~persons["is_adult"].to_numpy()
    children = np.flatnonzero(is_child & np.isin(household, guardian_of_household.index))
    begins = np.maximum(case_start.reindex(household[children]).to_numpy(), dob[children])
    minor = begins < add_years(dob[children], 18)
    children, begins = children[minor], begins[minor]
    case_end = add_years(dob[children], 18)
    case_end[case_end > day(WINDOW_END)] = np.datetime64("NaT")
    dependents = pd.DataFrame(
        {
            "_person": children,
            "_guardian": guardian_of_household.reindex(household[children]).to_numpy(),
            "case_start": begins,
            "case_end": case_end,
        }
    )
    uses = rng.random(n) < np.where(fasd, *FASD_DISABILITY_SERVICES) * np.exp(0.2 * risk)
    users = np.flatnonzero(uses & (dob <= day(WINDOW_END)))
    from_day = np.maximum(dob[users], day(WINDOW_START))
    service_start = between(rng, from_day, np.full(users.size, day(WINDOW_END)))
    service_end = service_start + rng.integers(30, 1500, users.size).astype("timedelta64[D]")
    service_end[service_end > day(WINDOW_END)] = np.datetime64("NaT")
    disability = pd.DataFrame(
        {
            "_person": users,
            "service_type": np.array(DISABILITY_SERVICES, dtype=object)[
                rng.integers(0, len(DISABILITY_SERVICES), users.size)
            ],
            "start_date": service_start,
            "end_date": service_end,
        }
    )
    registered = np.unique(np.concatenate([claimant, children, users]))
    return Register(
        registered,
        {
            "income_support": support.reset_index(drop=True),
            "child_support_dependents": dependents,
            "disability_services": disability,
        },
    )


def fasd_effects(
    persons: pd.DataFrame, ability: npt.NDArray[np.float64], regs: dict[str, Register]
) -> dict[str, float | int | str]:
    """The FASD-like cohort's generating gaps and the gaps realised in this population."""
    fasd = persons["fasd"].to_numpy()
    marks = regs["education"].tables["attainment"]
    scored = marks.dropna(subset=["assessment_score"])
    flag = fasd[scored["_person"].to_numpy()]
    scores = scored["assessment_score"].to_numpy(dtype=np.float64)
    diplomas = marks[marks["diploma"].notna()]
    dflag = fasd[diplomas["_person"].to_numpy()]
    done = (diplomas["diploma"] == "Y").to_numpy()
    users = np.zeros(len(persons), dtype=bool)
    users[regs["human_services"].tables["disability_services"]["_person"].to_numpy()] = True
    eligible = (
        persons["date_of_birth"]
        .between(np.datetime64("1995-01-01"), np.datetime64("2018-12-31"))
        .to_numpy()
    )
    return {
        "description": "FASD-like cohort: diagnosed at a health visit (diagnosis_group 'fasd')",
        "cohort_size": int(fasd.sum()),
        "prevalence_born_1995_2018": float(fasd[eligible].mean()) if eligible.any() else 0.0,
        "generating_score_gap_sd": FASD_SCORE_GAP_SD,
        "generating_completion_logit": FASD_COMPLETION_LOGIT,
        "realised_score_gap_points": _gap(scores, flag),
        "realised_diploma_gap_pp": 100 * _gap(done.astype(np.float64), dflag),
        "realised_disability_services_gap_pp": 100
        * _gap(users[eligible].astype(np.float64), fasd[eligible]),
        "ability_gap_sd": _gap(ability[eligible], fasd[eligible]),
    }


def _gap(values: npt.NDArray[np.float64], flag: npt.NDArray[np.bool_]) -> float:
    if not flag.any() or flag.all():
        return float("nan")
    return float(values[flag].mean() - values[~flag].mean())


def _by_date(frame: pd.DataFrame) -> pd.DataFrame:
    date_column = next(c for c in frame.columns if c.endswith("_date"))
    return frame.sort_values([date_column, "_person"], kind="stable").reset_index(drop=True)
