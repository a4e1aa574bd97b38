"""The report's standard sentences."""

from __future__ import annotations

import pytest

from enclave.datalab import wording
from enclave.datalab.inference import Comparison


def _result(difference: float, low: float, high: float, p: float) -> Comparison:
    return Comparison(
        mean_treated=0.3,
        mean_comparison=0.3 - difference,
        treated_ci=(0.2, 0.4),
        comparison_ci=(0.2, 0.4),
        difference=difference,
        ci_low=low,
        ci_high=high,
        p_value=p,
        statistic=0.0,
        degrees_of_freedom=100.0,
        n_treated=100,
        n_comparison=1_000,
        effective_n=800.0,
        alpha=0.05,
    )


def test_headline_rate() -> None:
    assert wording.headline_rate(0.318, 0.402) == (
        "For any 100 typical people in the treatment group, 32 committed a proven reoffence "
        "within a one-year period (a rate of 32%), compared with 40 for any 100 typical "
        "people in the comparison group."
    )


def test_headline_frequency_and_time() -> None:
    assert "95 proven reoffences" in wording.headline_frequency(0.95, 1.3)
    assert "compared with 130 for any 100 typical" in wording.headline_frequency(0.95, 1.3)
    assert "290 days" in wording.headline_time(290.2, 271.0)


def test_significant_reduction_in_the_rate_gives_the_interval_in_points() -> None:
    sentence = wording.finding("rate", _result(-0.08, -0.14, -0.02, 0.004), "Project X")
    assert sentence.startswith("Those who took part in Project X were less likely to reoffend")
    assert "between 2 and 14 percentage points lower" in sentence


def test_significant_frequency_and_time() -> None:
    fewer = wording.finding("frequency", _result(-0.3, -0.5, -0.1, 0.01))
    assert "reoffended less frequently" in fewer
    assert "between 10 and 50 fewer proven reoffences per 100 people" in fewer
    longer = wording.finding("time", _result(12.0, 3.0, 21.0, 0.01))
    assert "took longer to reoffend" in longer
    assert "between 3 and 21 days more" in longer


def test_significant_increase_is_said_plainly() -> None:
    sentence = wording.finding("rate", _result(0.06, 0.01, 0.11, 0.02))
    assert "more likely to reoffend" in sentence
    assert "between 1 and 11 percentage points higher" in sentence


def test_small_intervals_keep_a_decimal() -> None:
    sentence = wording.finding("rate", _result(-0.01, -0.016, -0.004, 0.03))
    assert "between 0.4 and 1.6 percentage points" in sentence


@pytest.mark.parametrize("measure", ["rate", "frequency", "time"])
def test_not_significant_wording(measure: wording.Measure) -> None:
    sentence = wording.finding(measure, _result(-0.02, -0.06, 0.02, 0.3))
    assert "no statistically significant difference" in sentence
    assert "More people would need to be analysed" in sentence
    assert "should not be taken to mean that it has no effect" in sentence
    assert "has no effect" in wording.cannot_say(measure, _result(-0.02, -0.06, 0.02, 0.3))


def test_can_say_follows_the_direction_of_benefit() -> None:
    assert "improves" in wording.can_say("rate", _result(-0.08, -0.14, -0.02, 0.004))
    assert "improves" in wording.can_say("time", _result(12.0, 3.0, 21.0, 0.01))
    assert "worsens" in wording.can_say("rate", _result(0.06, 0.01, 0.11, 0.02))
