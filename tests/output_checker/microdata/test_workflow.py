"""Workflow: apply/undo, risk and utility of the current data, treat_until's verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checker.microdata.problem import MicrodataProblem, RiskTarget
from output_checker.microdata.recipe import Recipe, Step
from output_checker.microdata.risk.individual import measure_risk
from output_checker.microdata.risk.numeric import d_risk
from output_checker.microdata.utility import il1s
from output_checker.microdata.workflow import Workflow

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "microdata-recipe.toml"
KEYS = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


def brute_fk(keys: pd.DataFrame) -> np.ndarray:
    """fk with missing values as wildcards, alpha = 1 (spec §2.2), pattern by pattern: the
    records compatible with a record's pattern, except that all-missing records never count
    for complete patterns and themselves get fk = n."""
    values = keys.apply(lambda c: pd.factorize(c)[0]).to_numpy()  # missing -> -1
    patterns, inverse, counts = np.unique(values, axis=0, return_inverse=True, return_counts=True)
    missing = patterns < 0
    compatible = np.ones((len(patterns), len(patterns)), dtype=bool)
    for j in range(values.shape[1]):
        a, b = patterns[:, j][:, None], patterns[:, j][None, :]
        compatible &= (a == b) | (a < 0) | (b < 0)
    all_missing = missing.all(axis=1)
    complete = ~missing.any(axis=1)
    compatible[np.ix_(complete, all_missing)] = False
    fk = (compatible @ counts).astype(float)
    fk[all_missing] = len(values)
    return fk[inverse.ravel()]


@pytest.fixture(scope="module")
def testdata(sdcmicro_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sdcmicro_dir / "testdata.csv")


def weighted_problem() -> MicrodataProblem:
    return MicrodataProblem(
        keys=KEYS, numeric=["expend", "income", "savings"], weight="sampling_weight",
        household="ori_hid",
    )  # fmt: skip


STEPS = [
    Step("group_and_rename", {"variable": "roof", "groups": [{"to": 4, "from": [4, 5, 9]}]}),
    Step("microaggregation", {"variables": ["expend", "income", "savings"], "k": 3}),
    Step("local_suppression", {"k": 3}),
]


def test_apply_then_undo_restores_exactly(testdata: pd.DataFrame) -> None:
    given = testdata.copy()
    workflow = Workflow(testdata, weighted_problem())
    snapshots = [workflow.data]
    for step in STEPS:
        assert workflow.apply(step) is workflow
        snapshots.append(workflow.data)
    assert workflow.history == tuple(STEPS)
    assert not snapshots[-1].equals(snapshots[0])
    for expected in reversed(snapshots[:-1]):
        workflow.undo()
        pd.testing.assert_frame_equal(workflow.data, expected, check_exact=True)
    assert workflow.history == ()
    pd.testing.assert_frame_equal(workflow.data, given, check_exact=True)
    pd.testing.assert_frame_equal(testdata, given)  # the caller's frame never changes
    with pytest.raises(ValueError, match="nothing to undo"):
        workflow.undo()


def test_undo_stack_is_bounded(testdata: pd.DataFrame) -> None:
    workflow = Workflow(testdata, weighted_problem(), max_undo=1)
    workflow.apply(STEPS[0]).apply(STEPS[1])
    workflow.undo()
    assert workflow.history == (STEPS[0],)
    with pytest.raises(ValueError, match="nothing to undo"):
        workflow.undo()


def test_apply_accepts_a_table_and_checks_it(testdata: pd.DataFrame) -> None:
    workflow = Workflow(testdata, weighted_problem())
    workflow.apply({"method": "local_suppression", "k": 2})
    assert workflow.history[0].method == "local_suppression"
    with pytest.raises(ValueError, match="not declared in the problem: age"):
        workflow.apply({"method": "global_recode", "variable": "age", "breaks": 3})
    assert len(workflow.history) == 1


def test_workflow_rejects_data_missing_a_variable(testdata: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="variables not in the data: nope"):
        Workflow(testdata, MicrodataProblem(keys=["urbrur", "nope"]))


def test_risk_is_measure_risk_with_the_problem_settings(testdata: pd.DataFrame) -> None:
    workflow = Workflow(testdata, weighted_problem())
    risk = workflow.risk()
    ref = measure_risk(testdata[KEYS], testdata["sampling_weight"].to_numpy(), testdata["ori_hid"])
    assert risk.global_risk == ref.global_risk
    assert risk.household_global_risk == ref.household_global_risk
    fk = brute_fk(testdata[KEYS])
    assert risk.kanon == {k: int((fk < k).sum()) for k in (2, 3, 5)}
    assert risk.d_risk is None  # numeric variables unchanged
    workflow.apply(STEPS[1])
    after = workflow.risk()
    cols = ["expend", "income", "savings"]
    assert after.d_risk == d_risk(testdata[cols], workflow.data[cols])
    assert 0 < after.d_risk < 1


def test_kanon_within_strata_by_default_and_whole_file_when_compatible(
    testdata: pd.DataFrame,
) -> None:
    keys = ["roof", "walls", "water", "electcon", "relat", "sex"]
    problem = MicrodataProblem(keys=keys, strata="urbrur")
    default = Workflow(testdata, problem)
    compatible = Workflow(testdata, problem, sdcmicro_compatible=True)
    fk_within = np.zeros(len(testdata))
    for _, rows in testdata.groupby("urbrur").groups.items():
        fk_within[testdata.index.get_indexer(rows)] = brute_fk(testdata.loc[rows, keys])
    fk_whole = brute_fk(testdata[keys])
    for k in (2, 3, 5):
        assert default.risk().kanon_violations(k) == int((fk_within < k).sum())
        assert compatible.risk().kanon_violations(k) == int((fk_whole < k).sum())
    assert default.risk().kanon_violations(3) > compatible.risk().kanon_violations(3)
    # local suppression works within strata, so afterwards both counts are zero
    default.apply(Step("local_suppression", {"k": 3}))
    assert default.risk().kanon_violations(3) == 0
    assert int((brute_fk(default.data[keys]) < 3).sum()) == 0


def test_ldiversity_summary(testdata: pd.DataFrame) -> None:
    problem = MicrodataProblem(keys=["urbrur", "roof", "walls"], sensitive=["hhcivil"])
    summary = Workflow(testdata, problem).risk().ldiversity
    assert summary is not None
    distinct = testdata.groupby(["urbrur", "roof", "walls"])["hhcivil"].transform("nunique")
    assert summary["hhcivil"]["min_distinct"] == distinct.min()
    assert summary["hhcivil"]["records_distinct_below_2"] == (distinct < 2).sum()


def test_utility_counts_suppressions_and_numeric_loss(testdata: pd.DataFrame) -> None:
    workflow = Workflow(testdata, weighted_problem())
    for step in STEPS:
        workflow.apply(step)
    utility = workflow.utility()
    current = workflow.data
    expected = (testdata[KEYS].notna() & current[KEYS].isna()).sum()
    assert utility.keys["suppressions"].tolist() == expected.tolist()
    assert utility.total_suppressions == int(expected.sum()) > 0
    assert utility.keys.loc["roof", "categories_after"] == 3  # 5 types, three merged into one
    cols = ["expend", "income", "savings"]
    assert utility.numeric is not None
    assert utility.numeric.il1s == il1s(testdata[cols], current[cols]) > 0


def test_treat_until_reaches_the_example_target(testdata: pd.DataFrame) -> None:
    recipe = Recipe.load(EXAMPLE)
    workflow = Workflow(testdata, recipe.problem)
    result = workflow.treat_until(recipe.target, recipe)
    assert result.met, result.message
    assert result.message == f"target met after {len(result.steps)} step(s)"
    keys = workflow.data[list(recipe.problem.keys)]
    assert brute_fk(keys).min() >= recipe.target.k  # independently k-anonymous
    weights = testdata["sampling_weight"].to_numpy()
    assert measure_risk(keys, weights).global_risk <= recipe.target.max_global_risk
    assert [s.method for s in result.steps][-1] == "local_suppression"


def test_treat_until_reports_an_unreachable_target_and_stops(testdata: pd.DataFrame) -> None:
    # sample data (weights): no record's risk comes near 1e-9, whatever is suppressed
    problem = weighted_problem()
    workflow = Workflow(testdata, problem)
    target = RiskTarget(k=3, max_global_risk=1e-9)
    result = workflow.treat_until(target, Recipe(problem, target))
    assert not result.met
    assert [s.method for s in result.steps] == ["local_suppression"]  # one attempt, no loop
    (failure,) = result.failures  # k-anonymity was reached, the global risk was not
    risk = result.risk.global_risk
    assert risk > 1e-9
    assert failure == (
        f"global risk {risk:.3g} ({result.risk.expected_reidentifications:.3g} expected "
        "re-identifications) exceeds the target 1e-09"
    )
    assert result.message == "target not met: " + failure
    assert "\n" not in result.message


def test_treat_until_needs_the_same_problem(testdata: pd.DataFrame) -> None:
    workflow = Workflow(testdata, weighted_problem())
    other = Recipe(MicrodataProblem(keys=KEYS))
    with pytest.raises(ValueError, match="differs from the workflow's problem"):
        workflow.treat_until(RiskTarget(), other)


def test_the_global_risk_target_binds_sample_data_only(testdata: pd.DataFrame) -> None:
    """Without weights the file is its own population: risk 1/fk, global risk = patterns / n,
    which k-anonymity bounds; the per-10,000 target is reported, not enforced."""
    problem = MicrodataProblem(keys=KEYS)
    target = RiskTarget(k=3, max_global_risk=1e-4)
    result = Workflow(testdata, problem).treat_until(target, Recipe(problem, target))
    assert result.met and result.risk.global_risk > 1e-4
    assert result.risk.kanon_violations(3) == 0
