"""Proven reoffending outcomes from index dates and offence records (spec 8.9, 8.13).

A proven reoffence is an offence committed within ``follow_up_days`` after the index date
(day 1 to day 365; an offence on the index date itself is taken to belong to the index
event) and proven by a conviction, caution, reprimand or warning no later than
``follow_up_days + waiting_days`` after the index date (the one-year follow-up and a further
six-month waiting period; 182 days is the enclave's reading of six months).

Time to first reoffence is measured over the whole matched cohort, censored at the end of
the follow-up, by a weighted Kaplan-Meier curve and its restricted mean: comparing days to
reoffence among reoffenders only would condition on a post-treatment outcome.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from enclave.datalab.errors import DataLabError

FOLLOW_UP_DAYS = 365
WAITING_DAYS = 182

REOFFENDED = "reoffended"
REOFFENCES = "reoffences"
DAYS_TO_FIRST = "days_to_first_reoffence"
OUTCOME_COLUMNS = (REOFFENDED, REOFFENCES, DAYS_TO_FIRST)


def proven_reoffending(
    index_dates: pd.Series,
    offences: pd.DataFrame,
    *,
    person: str = "person",
    offence_date: str = "offence_date",
    proven_date: str = "proven_date",
    follow_up_days: int = FOLLOW_UP_DAYS,
    waiting_days: int = WAITING_DAYS,
) -> pd.DataFrame:
    """One row per person of ``index_dates`` (a date series indexed by person id): whether
    they committed a proven reoffence (0/1), how many, and the days from the index date to
    the first one (NaN for none). Offence rows of people not in ``index_dates`` are ignored;
    rows without a proven date never count."""
    if not index_dates.index.is_unique:
        raise DataLabError("index dates must have one row per person")
    missing = [c for c in (person, offence_date, proven_date) if c not in offences.columns]
    if missing:
        raise DataLabError(f"offence records lack columns: {', '.join(missing)}")
    if index_dates.isna().any():
        raise DataLabError(f"{int(index_dates.isna().sum())} people have no index date")
    where = index_dates.index.get_indexer(pd.Index(offences[person]))
    known = where >= 0
    start = pd.to_datetime(index_dates).to_numpy(dtype="datetime64[D]")[where[known]]
    committed = pd.to_datetime(offences[offence_date]).to_numpy(dtype="datetime64[D]")[known]
    proven = pd.to_datetime(offences[proven_date]).to_numpy(dtype="datetime64[D]")[known]
    day = (committed - start).astype("float64")
    proven_day = (proven - start).astype("float64")
    with np.errstate(invalid="ignore"):
        counts = (
            ~np.isnat(committed)
            & ~np.isnat(proven)
            & (day >= 1)
            & (day <= follow_up_days)
            & (proven_day <= follow_up_days + waiting_days)
            & (proven >= committed)
        )
    who = where[known][counts]
    n = len(index_dates)
    reoffences = np.bincount(who, minlength=n)
    first = np.full(n, np.inf)
    np.minimum.at(first, who, day[counts])
    first[np.isinf(first)] = np.nan
    return pd.DataFrame(
        {
            REOFFENDED: (reoffences > 0).astype("int64"),
            REOFFENCES: reoffences,
            DAYS_TO_FIRST: first,
        },
        index=index_dates.index,
    )


def time_to_event(
    days_to_first: np.ndarray, horizon: int = FOLLOW_UP_DAYS
) -> tuple[np.ndarray, np.ndarray]:
    """Follow-up time and event flag: the day of the first reoffence, or ``horizon``
    (censored) for people without one."""
    days = np.asarray(days_to_first, dtype="float64")
    event = np.isfinite(days) & (days <= horizon)
    return np.where(event, days, float(horizon)), event


def kaplan_meier(time: np.ndarray, event: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
    """Weighted Kaplan-Meier estimate of the probability of no reoffence yet, one row per
    distinct event time: weighted number at risk, weighted events and survival after it."""
    t = np.asarray(time, dtype="float64")
    e = np.asarray(event, dtype=bool)
    w = np.asarray(weights, dtype="float64")
    if not (t.shape == e.shape == w.shape):
        raise DataLabError("times, events and weights differ in length")
    if (w < 0).any() or not np.isfinite(t).all():
        raise DataLabError("times must be finite and weights non-negative")
    distinct, slot = np.unique(t, return_inverse=True)
    leaving = np.bincount(slot, w, len(distinct))
    events = np.bincount(slot, w * e, len(distinct))
    at_risk = np.cumsum(leaving[::-1])[::-1]
    keep = events > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, events / at_risk, 0.0)
    survival = np.cumprod(1.0 - hazard[keep])
    return pd.DataFrame(
        {
            "time": distinct[keep],
            "at_risk": at_risk[keep],
            "events": events[keep],
            "survival": survival,
        }
    )


def restricted_mean(curve: pd.DataFrame, horizon: float = FOLLOW_UP_DAYS) -> float:
    """Area under a Kaplan-Meier curve from 0 to ``horizon``: the mean days without a
    proven reoffence within the follow-up."""
    inside = curve[curve["time"] <= horizon]
    edges = np.concatenate([[0.0], inside["time"].to_numpy(), [float(horizon)]])
    levels = np.concatenate([[1.0], inside["survival"].to_numpy()])
    return float(np.sum(levels * np.diff(edges)))


def restricted_mean_days(
    days_to_first: np.ndarray, weights: np.ndarray, horizon: int = FOLLOW_UP_DAYS
) -> float:
    """Weighted Kaplan-Meier restricted mean days to a first proven reoffence, everyone
    without one censored at ``horizon``."""
    time, event = time_to_event(days_to_first, horizon)
    return restricted_mean(kaplan_meier(time, event, weights), horizon)
