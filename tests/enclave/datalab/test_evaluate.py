"""The whole evaluation on simulated requests whose true effect is known (spec 8.14)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from enclave.datalab.errors import DataLabError, TooFewMatched
from enclave.datalab.evaluate import Evaluation, Stage, evaluate
from enclave.datalab.outcomes import restricted_mean_days
from enclave.datalab.simulate import COVARIATES, Simulated, simulate, with_outcomes


@pytest.fixture(scope="module")
def request_200k() -> tuple[Simulated, pd.DataFrame, pd.DataFrame]:
    sim = simulate(200_000, 554, seed=1)
    cohort, pool = with_outcomes(sim)
    return sim, cohort, pool


@pytest.fixture(scope="module")
def radius(request_200k: tuple[Simulated, pd.DataFrame, pd.DataFrame]) -> Evaluation:
    _, cohort, pool = request_200k
    return evaluate(cohort, pool, COVARIATES)


def test_the_simulated_request_is_strongly_confounded(
    request_200k: tuple[Simulated, pd.DataFrame, pd.DataFrame], radius: Evaluation
) -> None:
    sim, cohort, pool = request_200k
    naive = cohort["reoffended"].mean() - pool["reoffended"].mean()
    # spec: naive -24.4 pp against a true ATT of -3.07 pp, max |SMD| before 1.32
    assert naive < -0.18
    assert -0.04 < sim.true_att < -0.02
    assert radius.balance.max_abs_before > 1.0
    assert 500 < len(cohort) < 610


def test_radius_matching_recovers_the_true_att(
    request_200k: tuple[Simulated, pd.DataFrame, pd.DataFrame], radius: Evaluation
) -> None:
    sim, cohort, _ = request_200k
    rate = radius.measure("rate").result
    assert rate.ci_low < sim.true_att < rate.ci_high
    assert radius.balance.max_abs_after < 0.10
    assert radius.publishable
    assert 0.25 < radius.caliper < 0.37  # spec: 0.31 logit units
    assert radius.n_treated == len(cohort)  # all on support, all matched
    assert radius.n_comparison > 100_000
    assert 10_000 < radius.effective_n < radius.n_comparison


@pytest.mark.parametrize("k", [1, 5])
def test_nearest_neighbour_within_the_caliper(
    request_200k: tuple[Simulated, pd.DataFrame, pd.DataFrame], k: int
) -> None:
    sim, cohort, pool = request_200k
    result = evaluate(cohort, pool, COVARIATES, mode="nearest", k=k)
    rate = result.measure("rate").result
    assert result.n_comparison <= k * result.n_treated
    assert result.n_comparison > 0.9 * k * result.n_treated
    assert rate.ci_low < sim.true_att < rate.ci_high
    assert result.balance.max_abs_after < 0.12


def test_attrition_counts_each_stage(radius: Evaluation) -> None:
    stages = [s.stage for s in radius.attrition]
    assert stages == ["cohort", "complete covariates", "on common support", "matched", "analysed"]
    assert radius.attrition[-1].count == radius.n_treated


def test_time_to_reoffence_is_the_restricted_mean_over_everyone(
    request_200k: tuple[Simulated, pd.DataFrame, pd.DataFrame], radius: Evaluation
) -> None:
    _, cohort, _ = request_200k
    time = radius.measure("time").result
    assert time.mean_treated == pytest.approx(
        restricted_mean_days(cohort["days_to_first_reoffence"].to_numpy(), np.ones(len(cohort)))
    )
    assert 300 < time.mean_treated <= 365


def test_the_report_is_plain_json(radius: Evaluation) -> None:
    report = json.loads(json.dumps(radius.to_json()))
    assert report["n_treated"] == radius.n_treated
    assert report["balance"]["publishable"] is True
    assert {m["measure"] for m in report["measures"]} == {"rate", "frequency", "time"}
    assert report["measures"][0]["headline"].startswith("For any 100 typical people")
    assert "caliper" in report["enclave_choices"]
    assert len(report["balance"]["covariates"]) == len(radius.balance.table)


def test_a_cohort_of_82_is_analysed_and_one_of_36_refused(
    request_200k: tuple[Simulated, pd.DataFrame, pd.DataFrame],
) -> None:
    _, cohort, pool = request_200k
    small = evaluate(cohort.sample(82, random_state=2), pool, COVARIATES)
    assert small.n_treated == 82
    rate = small.measure("rate")
    assert not rate.result.significant
    assert "More people would need to be analysed" in rate.finding
    with pytest.raises(TooFewMatched, match="fewer than 60") as refused:
        evaluate(cohort.sample(36, random_state=3), pool, COVARIATES)
    assert "36 people with complete covariates (of 36 in the cohort)" in str(refused.value)


def test_the_gate_counts_matched_people_not_the_cohort(
    request_200k: tuple[Simulated, pd.DataFrame, pd.DataFrame],
) -> None:
    """70 people, but 20 so unlike the pool that they fall off common support."""
    _, cohort, pool = request_200k
    pool = pool.sample(20_000, random_state=4)
    small = cohort.sample(70, random_state=5).copy()
    small.loc[small.index[:20], "months_employed"] = 200
    with pytest.raises(TooFewMatched, match=r"^refused: 50 matched treated people \(of 70"):
        evaluate(small, pool, COVARIATES)


def test_the_gate_cannot_be_lowered_and_bad_modes_fail_fast(
    request_200k: tuple[Simulated, pd.DataFrame, pd.DataFrame],
) -> None:
    _, cohort, pool = request_200k
    with pytest.raises(DataLabError, match="minimum cannot be below 60"):
        evaluate(cohort.head(36), pool, COVARIATES, minimum=30)
    with pytest.raises(DataLabError, match="matching mode"):
        evaluate(cohort, pool, COVARIATES, mode="kernel")  # type: ignore[arg-type]
    with pytest.raises(DataLabError, match="k >= 1"):
        evaluate(cohort, pool, COVARIATES, mode="nearest", k=0)


def test_earlier_stages_lead_the_attrition_annex(
    request_200k: tuple[Simulated, pd.DataFrame, pd.DataFrame],
) -> None:
    _, cohort, pool = request_200k
    result = evaluate(
        cohort.head(100),
        pool.head(20_000),
        COVARIATES,
        earlier_stages=[Stage("submitted", 203, ""), Stage("identified", 150, "53 not found")],
    )
    assert [s.count for s in result.attrition[:2]] == [203, 150]


def test_a_rank_deficient_covariate_list_is_refused(
    request_200k: tuple[Simulated, pd.DataFrame, pd.DataFrame],
) -> None:
    _, cohort, pool = request_200k
    cohort = cohort.assign(age_in_days=cohort["age"] * 365)
    pool = pool.head(20_000).assign(age_in_days=pool["age"].head(20_000) * 365)
    with pytest.raises(DataLabError, match=r"rank-deficient.*age_in_days"):
        evaluate(cohort, pool, [*COVARIATES, "age_in_days"])


def test_missing_columns_and_incomplete_rows(
    request_200k: tuple[Simulated, pd.DataFrame, pd.DataFrame],
) -> None:
    _, cohort, pool = request_200k
    with pytest.raises(DataLabError, match="the comparison pool lacks columns: reoffended"):
        evaluate(cohort, pool.drop(columns="reoffended"), COVARIATES)
    gappy = cohort.head(100).copy()
    gappy.loc[gappy.index[:5], "age"] = np.nan
    result = evaluate(gappy, pool.head(20_000), COVARIATES)
    assert result.attrition[1].count == 95
    assert result.attrition[1].reason == "5 lack a covariate or outcome"


def test_a_small_fixed_seed_monte_carlo_is_unbiased_with_its_nominal_coverage() -> None:
    """The benchmark's validation (200 replicates) in small: 30 requests with a known effect,
    each evaluated as a client's would be. The estimates centre on the truth and the 95 %
    intervals cover it about 95 % of the time (27 to 30 of 30 for a true 0.95)."""
    errors, covered = [], 0
    for seed in range(30):
        sim = simulate(20_000, 400, seed=1_000 + seed)
        cohort, pool = with_outcomes(sim)
        rate = evaluate(cohort, pool, COVARIATES).measure("rate").result
        errors.append(rate.difference - sim.true_att)
        covered += rate.ci_low < sim.true_att < rate.ci_high
    assert abs(np.mean(errors)) < 0.015  # within 1.5 pp on average over 30
    assert covered >= 26
