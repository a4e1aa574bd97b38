"""One impact evaluation end to end (spec 8.2-8.13): propensity model, common support,
caliper matching, ATT weights, balance, the three headline measures and their wording.

The cohort (treated people, index event located) and the pool (untreated comparison people)
are frames with the covariates and the outcome columns of ``outcomes.proven_reoffending``.
The caller keeps the cohort out of the pool. Sub-analyses are further calls on a subset of
the cohort, so the minimum-size gate applies to each of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from enclave.datalab import wording
from enclave.datalab.balance import ACCEPTABLE, GOOD, Balance, balance
from enclave.datalab.errors import DataLabError, TooFewMatched
from enclave.datalab.inference import ALPHA, Comparison, weighted_welch
from enclave.datalab.matching import (
    CALIPER_SD,
    Matching,
    Mode,
    caliper_width,
    check_mode,
    match,
)
from enclave.datalab.outcomes import (
    DAYS_TO_FIRST,
    FOLLOW_UP_DAYS,
    OUTCOME_COLUMNS,
    REOFFENCES,
    REOFFENDED,
    WAITING_DAYS,
    time_to_event,
)
from enclave.datalab.propensity import encode, fit_propensity

MINIMUM_MATCHED = 60

ENCLAVE_CHOICES = {
    "caliper": f"{CALIPER_SD} x pooled SD of logit(PS) (Austin 2011)",
    "common_support": "treated people outside the comparison pool's min-max PS are dropped",
    "smd_bands": f"good < {GOOD}, acceptable {GOOD}-{ACCEPTABLE}, poor > {ACCEPTABLE}; "
    f"publication blocked if any |SMD| after matching > {ACCEPTABLE}",
    "waiting_period": f"{WAITING_DAYS} days after the {FOLLOW_UP_DAYS}-day follow-up",
    "time_to_reoffence": f"weighted Kaplan-Meier restricted mean over the whole matched "
    f"cohort, censored at {FOLLOW_UP_DAYS} days",
}
"""Parameters the public JDL record does not fix; reports must label them as the enclave's."""


@dataclass(frozen=True)
class Stage:
    """One line of the attrition annex."""

    stage: str
    count: int
    reason: str


@dataclass(frozen=True)
class MeasureResult:
    """One headline measure: its test, the headline and the finding sentences."""

    measure: wording.Measure
    unit: str
    result: Comparison
    headline: str
    finding: str
    can_say: str
    cannot_say: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "name": wording.MEASURE_NAMES[self.measure],
            "unit": self.unit,
            **self.result.to_dict(),
            "headline": self.headline,
            "finding": self.finding,
            "can_say": self.can_say,
            "cannot_say": self.cannot_say,
        }


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Everything the report needs; aggregates only (no person-level values)."""

    mode: Mode
    k: int
    caliper: float
    attrition: tuple[Stage, ...]
    n_treated: int
    n_comparison: int
    effective_n: float
    propensity: pd.DataFrame
    balance: Balance
    measures: tuple[MeasureResult, ...]

    @property
    def publishable(self) -> bool:
        """Balance allows publication (every |SMD| after matching <= 0.10)."""
        return self.balance.publishable

    def measure(self, name: wording.Measure) -> MeasureResult:
        return next(m for m in self.measures if m.measure == name)

    def to_json(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict (NaN and infinities as None)."""
        balance_rows = self.balance.table.reset_index().to_dict(orient="records")
        propensity_rows = self.propensity.reset_index().to_dict(orient="records")
        plain: dict[str, Any] = _plain(
            {
                "matching": {"mode": self.mode, "k": self.k, "caliper": self.caliper},
                "enclave_choices": ENCLAVE_CHOICES,
                "attrition": [vars(s) for s in self.attrition],
                "n_treated": self.n_treated,
                "n_comparison": self.n_comparison,
                "effective_n": self.effective_n,
                "balance": {
                    "max_abs_smd_before": self.balance.max_abs_before,
                    "max_abs_smd_after": self.balance.max_abs_after,
                    "publishable": self.publishable,
                    "blocking_covariates": self.balance.poor_after,
                    "covariates": balance_rows,
                },
                "propensity_model": propensity_rows,
                "measures": [m.to_dict() for m in self.measures],
            }
        )
        return plain


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _complete(frame: pd.DataFrame, columns: Sequence[str], what: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataLabError(f"the {what} lacks columns: {', '.join(missing)}")
    needed = [c for c in columns if c != DAYS_TO_FIRST]
    return frame.loc[frame[needed].notna().all(axis=1)]


def _measures(
    cohort: pd.DataFrame,
    pool: pd.DataFrame,
    matching: Matching,
    programme: str,
    alpha: float,
) -> tuple[MeasureResult, ...]:
    matched = matching.treated_matched
    w = matching.comparison_weights
    rate = weighted_welch(
        cohort[REOFFENDED].to_numpy()[matched], pool[REOFFENDED].to_numpy(), w, alpha=alpha
    )
    frequency = weighted_welch(
        cohort[REOFFENCES].to_numpy()[matched], pool[REOFFENCES].to_numpy(), w, alpha=alpha
    )
    # Over the whole matched cohort everyone is followed for the full year, so the
    # Kaplan-Meier restricted mean equals the weighted mean of min(T, 365): the t-test on the
    # capped times tests the restricted-mean difference.
    time_t, _ = time_to_event(cohort[DAYS_TO_FIRST].to_numpy()[matched])
    time_c, _ = time_to_event(pool[DAYS_TO_FIRST].to_numpy())
    time = weighted_welch(time_t, time_c, w, alpha=alpha)
    rows: tuple[tuple[wording.Measure, str, Comparison, Callable[[float, float], str]], ...] = (
        ("rate", "proportion", rate, wording.headline_rate),
        ("frequency", "offences per person", frequency, wording.headline_frequency),
        ("time", f"days (restricted mean to {FOLLOW_UP_DAYS})", time, wording.headline_time),
    )
    return tuple(
        MeasureResult(
            measure=measure,
            unit=unit,
            result=result,
            headline=headline(result.mean_treated, result.mean_comparison),
            finding=wording.finding(measure, result, programme),
            can_say=wording.can_say(measure, result, programme),
            cannot_say=wording.cannot_say(measure, result, programme),
        )
        for measure, unit, result, headline in rows
    )


def evaluate(
    cohort: pd.DataFrame,
    pool: pd.DataFrame,
    covariates: Sequence[str],
    *,
    mode: Mode = "radius",
    k: int = 1,
    caliper_sd: float = CALIPER_SD,
    minimum: int = MINIMUM_MATCHED,
    alpha: float = ALPHA,
    programme: str = "the programme",
    earlier_stages: Sequence[Stage] = (),
) -> Evaluation:
    """Match the cohort to the pool and compare their outcomes.

    ``earlier_stages`` (submitted, identified, index sentence located) are prepended to the
    attrition annex. Raises ``TooFewMatched`` when fewer than ``minimum`` treated people are
    matched (or complete), and ``DataLabError`` for unusable input. ``minimum`` can only
    raise the gate above the service's 60.
    """
    if minimum < MINIMUM_MATCHED:
        raise DataLabError(f"the minimum cannot be below {MINIMUM_MATCHED}, got {minimum}")
    check_mode(mode, k)
    columns = [*covariates, *OUTCOME_COLUMNS]
    treated = _complete(cohort, columns, "cohort")
    comparison = _complete(pool, columns, "comparison pool")
    stages = [
        *earlier_stages,
        Stage("cohort", len(cohort), "index event located"),
        Stage(
            "complete covariates",
            len(treated),
            f"{len(cohort) - len(treated)} lack a covariate or outcome",
        ),
    ]
    if len(treated) < minimum:
        raise TooFewMatched(len(treated), len(cohort), minimum, "people with complete covariates")
    both = pd.concat([treated[list(covariates)], comparison[list(covariates)]], ignore_index=True)
    encoded = encode(both, covariates)
    is_treated = np.arange(len(both)) < len(treated)
    propensity = fit_propensity(encoded.design, is_treated)
    caliper = caliper_width(propensity.logit_treated, propensity.logit_comparison, caliper_sd)
    matching = match(
        propensity.logit_treated, propensity.logit_comparison, caliper=caliper, mode=mode, k=k
    )
    stages += [
        Stage(
            "on common support",
            len(treated) - matching.off_support,
            f"{matching.off_support} outside the comparison pool's propensity range",
        ),
        Stage(
            "matched",
            matching.matched,
            f"{matching.unmatched} with no comparison person inside the caliper",
        ),
    ]
    if matching.matched < minimum:
        raise TooFewMatched(matching.matched, len(cohort), minimum)
    stages.append(Stage("analysed", matching.matched, "all matched people are analysed"))
    checked = balance(
        encoded.levels.iloc[: len(treated)],
        encoded.levels.iloc[len(treated) :],
        matching.treated_matched,
        matching.comparison_weights,
    )
    return Evaluation(
        mode=mode,
        k=matching.k,
        caliper=caliper,
        attrition=tuple(stages),
        n_treated=matching.matched,
        n_comparison=matching.comparison_used,
        effective_n=matching.effective_comparison,
        propensity=propensity.table(),
        balance=checked,
        measures=_measures(treated, comparison, matching, programme, alpha),
    )
