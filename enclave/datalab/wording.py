"""The report's standard plain-language sentences (spec 8.11), as pure functions of the
estimates. Rates are proportions (0.32), frequencies offences per person, times days."""

from __future__ import annotations

from typing import Literal

from enclave.datalab.inference import Comparison

Measure = Literal["rate", "frequency", "time"]

MEASURE_NAMES: dict[Measure, str] = {
    "rate": "one-year proven reoffending rate",
    "frequency": "number of proven reoffences per person",
    "time": "time to first proven reoffence",
}
_EFFECT_ON: dict[Measure, str] = {
    "rate": "reoffending",
    "frequency": "the frequency of reoffending",
    "time": "the time to reoffending",
}


def _whole(x: float) -> str:
    return f"{x:.0f}"


def _between(a: float, b: float) -> str:
    """'between 2 and 14' from the two CI bounds' sizes; one decimal where whole numbers
    would blur the interval (both the same, or the smaller rounding to 0)."""
    low, high = sorted((abs(a), abs(b)))
    digits = 0 if round(low) != round(high) and round(low) > 0 else 1
    return f"between {low:.{digits}f} and {high:.{digits}f}"


def headline_rate(rate_treated: float, rate_comparison: float) -> str:
    t, c = _whole(100 * rate_treated), _whole(100 * rate_comparison)
    return (
        f"For any 100 typical people in the treatment group, {t} committed a proven reoffence "
        f"within a one-year period (a rate of {t}%), compared with {c} for any 100 typical "
        "people in the comparison group."
    )


def headline_frequency(per_person_treated: float, per_person_comparison: float) -> str:
    t, c = _whole(100 * per_person_treated), _whole(100 * per_person_comparison)
    return (
        f"For any 100 typical people in the treatment group, {t} proven reoffences were "
        f"committed during a one-year period (a frequency of {per_person_treated:.2f} per "
        f"person), compared with {c} for any 100 typical people in the comparison group."
    )


def headline_time(days_treated: float, days_comparison: float) -> str:
    return (
        "Over a one-year period, typical people in the treatment group spent on average "
        f"{_whole(days_treated)} days before a first proven reoffence (counting those who did "
        f"not reoffend as the whole year), compared with {_whole(days_comparison)} days for "
        "typical people in the comparison group."
    )


def _significant(measure: Measure, result: Comparison, programme: str) -> str:
    who = f"Those who took part in {programme}"
    lower = result.difference < 0
    if measure == "rate":
        span = _between(100 * result.ci_low, 100 * result.ci_high)
        return (
            f"{who} were {'less' if lower else 'more'} likely to reoffend than similar people "
            f"who did not: their one-year proven reoffending rate was {span} percentage "
            f"points {'lower' if lower else 'higher'}."
        )
    if measure == "frequency":
        span = _between(100 * result.ci_low, 100 * result.ci_high)
        return (
            f"{who} reoffended {'less' if lower else 'more'} frequently than similar people "
            f"who did not: {span} {'fewer' if lower else 'more'} proven reoffences per 100 "
            "people over a one-year period."
        )
    span = _between(result.ci_low, result.ci_high)
    return (
        f"{who} took {'less time' if lower else 'longer'} to reoffend than similar people who "
        f"did not: on average {span} days {'fewer' if lower else 'more'} before a first "
        "proven reoffence within a one-year period."
    )


def finding(measure: Measure, result: Comparison, programme: str = "the programme") -> str:
    """The sentence for one measure: the direction and CI when significant, otherwise the
    standard statement that more people would need to be analysed."""
    if result.significant:
        return _significant(measure, result, programme)
    return (
        f"The analysis found no statistically significant difference in the "
        f"{MEASURE_NAMES[measure]} between those who took part in {programme} and similar "
        f"people who did not. More people would need to be analysed to determine "
        f"{programme}'s effect on {_EFFECT_ON[measure]}; this should not be taken to mean "
        "that it has no effect."
    )


def can_say(measure: Measure, result: Comparison, programme: str = "the programme") -> str:
    """The 'what you can say' box for one measure."""
    if not result.significant:
        return (
            f"This analysis does not provide clear evidence that {programme} changes "
            f"{_EFFECT_ON[measure]}; a larger sample might."
        )
    better = (result.difference > 0) if measure == "time" else (result.difference < 0)
    change = "improves" if better else "worsens"
    return (
        f"This analysis provides evidence that {programme} {change} the "
        f"{MEASURE_NAMES[measure]} of those who take part, compared with similar people."
    )


def cannot_say(measure: Measure, result: Comparison, programme: str = "the programme") -> str:
    """The 'what you cannot say' box for one measure."""
    if not result.significant:
        return (
            f"This analysis shows that {programme} has no effect on {_EFFECT_ON[measure]}, "
            "or that it increases or reduces it."
        )
    return (
        f"This analysis shows that {programme} would have the same effect on people unlike "
        "those analysed, or that the size of the effect is exactly the estimate."
    )
