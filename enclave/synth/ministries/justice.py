"""Justice records (offences, convictions, custody) and a service-user cohort with a known
reduction in proven reoffending, shaped like a Justice Data Lab request.

Offenders are chosen on sex, age, the latent risk and the FASD flag. Each has prior offences,
an index conviction in 2019-2023 (the index date is the release from custody, or the
conviction for other disposals) and a one-year proven-reoffending outcome. A service referred
some offenders to a programme, preferring those with more priors (so a naive comparison is
biased); the programme multiplies the probability of reoffending by ``1 - RELATIVE_REDUCTION``.
Both potential outcomes are drawn from one uniform number per person, so the true effect on
the treated is known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from enclave.synth.ministries.population import WINDOW_END
from enclave.synth.ministries.services import Register
from enclave.synth.ministries.timing import add_years, age_on, between, day

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

RELATIVE_REDUCTION = 0.25
OFFENCE_GROUPS = (
    "theft",
    "violence",
    "drugs",
    "criminal_damage",
    "public_order",
    "motoring",
    "fraud",
)
_OFFENCE_P = (0.28, 0.2, 0.15, 0.12, 0.1, 0.1, 0.05)
DISPOSALS = ("custody", "community_order", "fine", "caution")
_DISPOSAL_P = (0.25, 0.45, 0.2, 0.1)
INDEX_FROM, INDEX_TO = date(2019, 1, 1), date(2023, 6, 30)
PRIORS_FROM = date(2010, 1, 1)
PROGRAMME = "mentoring"


def _logistic(x: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return out


@dataclass(frozen=True)
class Justice:
    """The justice register, the service provider's cohort and the known effect."""

    register: Register
    treated: IntArray  # person indices of the programme's service users
    index_date: pd.Series  # per offender (indexed by person index)
    effect: dict[str, float | int | str]


def justice(persons: pd.DataFrame, rng: np.random.Generator) -> Justice:
    """Offenders, their records, the programme's service users and the true effect."""
    n = len(persons)
    dob = persons["date_of_birth"].to_numpy().astype("datetime64[D]")
    male = (persons["sex"] == "M").to_numpy()
    risk = persons["risk"].to_numpy()
    fasd = persons["fasd"].to_numpy()
    age_2020 = age_on(dob, day(date(2020, 1, 1)))
    adult_enough = (age_2020 >= 17) & (age_2020 <= 70)
    score = -3.4 + 1.0 * male + 0.8 * risk + 1.1 * fasd - 0.03 * np.maximum(age_2020 - 30, 0)
    offender = np.flatnonzero(adult_enough & (rng.random(n) < _logistic(score)))
    m = offender.size
    priors = np.minimum(rng.poisson(1.2 * np.exp(0.3 * risk[offender])), 15)
    convicted = between(rng, np.full(m, day(INDEX_FROM)), np.full(m, day(INDEX_TO)))
    index_offence = convicted - rng.integers(20, 180, m).astype("timedelta64[D]")
    disposal = rng.choice(len(DISPOSALS), m, p=_DISPOSAL_P)
    sentence = np.where(disposal == 0, rng.integers(3, 25, m), 0)
    released = convicted + (sentence * 15).astype("timedelta64[D]")  # half the term served
    index_date = np.where(disposal == 0, released, convicted)
    age_at_index = age_on(dob[offender], day(date(2021, 1, 1)))
    # referral to the programme favours the young and those with more priors
    referral = _logistic(
        -2.4 + 0.3 * np.minimum(priors, 8) - 0.03 * (age_at_index - 25) + 0.3 * risk[offender]
    )
    treated = rng.random(m) < referral
    p0 = _logistic(
        -1.0
        + 0.25 * np.minimum(priors, 8)
        + 0.5 * risk[offender]
        - 0.025 * (age_at_index - 25)
        + 0.3 * male[offender]
        + 0.4 * fasd[offender]
    )
    p1 = p0 * (1.0 - RELATIVE_REDUCTION)
    u = rng.random(m)
    y0, y1 = u < p0, u < p1
    reoffends = np.where(treated, y1, y0)
    offences, convictions = _records(
        rng, offender, dob, priors, index_offence, convicted, disposal, sentence
    )
    later, later_conv = _outcomes(rng, offender, index_date, reoffends)
    offences = pd.concat([offences, later], ignore_index=True)
    convictions = pd.concat([convictions, later_conv], ignore_index=True)
    end = day(WINDOW_END)
    offences = offences[offences["offence_date"] <= end]
    convictions = convictions[convictions["conviction_date"] <= end]
    convictions = convictions[convictions["offence_id"].isin(offences["offence_id"])]
    custody_rows = convictions[convictions["disposal"] == "custody"]
    custody = pd.DataFrame(
        {
            "_person": custody_rows["_person"].to_numpy(),
            "reception_date": custody_rows["conviction_date"].to_numpy(),
            "release_date": (
                custody_rows["conviction_date"].to_numpy()
                + (custody_rows["sentence_months"].to_numpy() * 15).astype("timedelta64[D]")
            ),
        }
    )
    register = Register(
        offender,
        {
            "offences": offences.sort_values(["offence_date", "offence_id"]).reset_index(drop=True),
            "convictions": convictions.sort_values(["conviction_date", "offence_id"]).reset_index(
                drop=True
            ),
            "custody": custody.sort_values("reception_date", kind="stable").reset_index(drop=True),
        },
    )
    t = treated
    effect: dict[str, float | int | str] = {
        "description": (
            f"service users of a '{PROGRAMME}' programme: one-year proven reoffending "
            f"probability multiplied by {1 - RELATIVE_REDUCTION:g}"
        ),
        "relative_reduction": RELATIVE_REDUCTION,
        "treated": int(t.sum()),
        "offenders": int(m),
        "true_att_pp": float(100 * (p1[t] - p0[t]).mean()) if t.any() else float("nan"),
        "realised_att_pp": float(100 * (y1[t].mean() - y0[t].mean())) if t.any() else 0.0,
        "naive_difference_pp": (
            float(100 * (reoffends[t].mean() - reoffends[~t].mean()))
            if t.any() and (~t).any()
            else float("nan")
        ),
        "treated_reoffending_rate": float(reoffends[t].mean()) if t.any() else float("nan"),
    }
    return Justice(register, offender[t], pd.Series(index_date, index=offender), effect)


def _records(
    rng: np.random.Generator,
    offender: IntArray,
    dob: npt.NDArray[np.datetime64],
    priors: IntArray,
    index_offence: npt.NDArray[np.datetime64],
    convicted: npt.NDArray[np.datetime64],
    disposal: IntArray,
    sentence: IntArray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prior offences (convicted before the index offence) and the index offence itself."""
    who = np.repeat(np.arange(offender.size), priors)
    earliest = np.maximum(add_years(dob[offender[who]], 12), day(PRIORS_FROM))
    latest = index_offence[who] - np.timedelta64(200, "D")
    keep = earliest <= latest
    who, earliest, latest = who[keep], earliest[keep], latest[keep]
    prior_date = between(rng, earliest, latest)
    prior_conv = prior_date + rng.integers(20, 180, who.size).astype("timedelta64[D]")
    prior_disposal = rng.choice(len(DISPOSALS), who.size, p=(0.15, 0.4, 0.3, 0.15))
    prior_sentence = np.where(prior_disposal == 0, rng.integers(1, 13, who.size), 0)
    all_who = np.concatenate([who, np.arange(offender.size)])
    ids = np.array([f"OF{i:09d}" for i in rng.permutation(all_who.size)], dtype=object)
    groups = np.array(OFFENCE_GROUPS, dtype=object)[
        rng.choice(len(OFFENCE_GROUPS), all_who.size, p=_OFFENCE_P)
    ]
    offences = pd.DataFrame(
        {
            "_person": offender[all_who],
            "offence_id": ids,
            "offence_date": np.concatenate([prior_date, index_offence]),
            "offence_group": groups,
        }
    )
    convictions = pd.DataFrame(
        {
            "_person": offender[all_who],
            "offence_id": ids,
            "conviction_date": np.concatenate([prior_conv, convicted]),
            "disposal": np.array(DISPOSALS, dtype=object)[
                np.concatenate([prior_disposal, disposal])
            ],
            "sentence_months": np.concatenate([prior_sentence, sentence]),
        }
    )
    return offences, convictions


def _outcomes(
    rng: np.random.Generator,
    offender: IntArray,
    index_date: npt.NDArray[np.datetime64],
    reoffends: npt.NDArray[np.bool_],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A proven reoffence within a year for reoffenders (convicted within the six-month
    waiting period), and for a third of the others an offence only after the year."""
    m = offender.size
    late = ~reoffends & (rng.random(m) < 0.35)
    when = np.where(
        reoffends,
        index_date + rng.integers(1, 366, m).astype("timedelta64[D]"),
        index_date + rng.integers(366, 1200, m).astype("timedelta64[D]"),
    )
    has = reoffends | late
    sel = np.flatnonzero(has)
    conv = when[sel] + rng.integers(14, 170, sel.size).astype("timedelta64[D]")
    ids = np.array([f"OR{i:09d}" for i in range(sel.size)], dtype=object)
    groups = np.array(OFFENCE_GROUPS, dtype=object)[
        rng.choice(len(OFFENCE_GROUPS), sel.size, p=_OFFENCE_P)
    ]
    disposal = rng.choice(len(DISPOSALS), sel.size, p=_DISPOSAL_P)
    offences = pd.DataFrame(
        {
            "_person": offender[sel],
            "offence_id": ids,
            "offence_date": when[sel],
            "offence_group": groups,
        }
    )
    convictions = pd.DataFrame(
        {
            "_person": offender[sel],
            "offence_id": ids,
            "conviction_date": conv,
            "disposal": np.array(DISPOSALS, dtype=object)[disposal],
            "sentence_months": np.where(disposal == 0, rng.integers(3, 25, sel.size), 0),
        }
    )
    return offences, convictions


def service_users(result: Justice, rng: np.random.Generator) -> pd.DataFrame:
    """The provider's list of its service users: when each started and ended the programme
    (starting around the index date), keyed by ``_person``."""
    who = result.treated
    index = result.index_date.reindex(who).to_numpy()
    start = index + rng.integers(-30, 60, who.size).astype("timedelta64[D]")
    end = start + rng.integers(60, 300, who.size).astype("timedelta64[D]")
    end[end > day(WINDOW_END)] = np.datetime64("NaT")
    return pd.DataFrame(
        {
            "_person": who,
            "programme": PROGRAMME,
            "intervention_start": start,
            "intervention_end": end,
        }
    )
