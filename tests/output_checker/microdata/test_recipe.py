"""Recipes: TOML parsing, the method table, parameter checks and every method run once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checker.microdata.problem import MicrodataProblem, RiskTarget
from output_checker.microdata.recipe import METHODS, Recipe, Step

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "microdata-recipe.toml"
PROBLEM = """
[problem]
keys = ["urbrur", "roof", "walls", "water", "sex", "age"]
numeric = ["expend", "income", "savings"]
weight = "sampling_weight"
"""


def test_example_recipe_loads() -> None:
    recipe = Recipe.load(EXAMPLE)
    assert recipe.problem.keys[0] == "urbrur" and recipe.problem.household == "ori_hid"
    assert recipe.target == RiskTarget(k=3, max_global_risk=0.01)
    assert [s.method for s in recipe.steps] == [
        "global_recode", "group_and_rename", "microaggregation"
    ]  # fmt: skip
    assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_the_method_table_covers_the_documented_methods() -> None:
    assert set(METHODS) == {
        "global_recode", "group_and_rename", "top_bottom_code", "local_suppression", "pram",
        "microaggregation", "add_noise", "rank_swap", "shuffle",
    }  # fmt: skip
    # every random method requires a seed, and only those do
    for name, spec in METHODS.items():
        assert ("seed" in spec.required) == spec.random, name


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ('method = "smudge"', "unknown method 'smudge'"),
        ('method = "pram"\nvariables = ["roof"]', "pram needs a seed"),
        ('method = "pram"\nvariables = ["roof"]\nseed = 1\nspeed = 2',
         "unknown parameter(s) for pram: speed"),
        ('method = "microaggregation"\nvariables = ["income"]\nk = "3"',
         "microaggregation parameter 'k' must be int"),
        ('method = "pram"\nvariables = ["roof"]\nseed = true', "parameter 'seed' must be int"),
        ('method = "global_recode"\nvariable = "agee"\nbreaks = 3',
         "not declared in the problem: agee"),
        ('variable = "age"', "needs a 'method'"),
    ],
)  # fmt: skip
def test_bad_steps_are_named(step: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Recipe.loads(PROBLEM + "\n[[step]]\n" + step + "\n")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[target]\nk = 3\n", "needs a [problem] table"),
        (PROBLEM + "[extra]\na = 1\n", "unknown recipe table(s): extra"),
        (PROBLEM + "[target]\nkk = 1\n", "unknown target setting(s): kk"),
        ("[problem\n", "not valid TOML"),
    ],
)
def test_bad_recipes_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Recipe.loads(text)
    assert message in str(info.value)


def test_missing_recipe_file() -> None:
    with pytest.raises(ValueError, match="cannot read recipe"):
        Recipe.load("/nonexistent/recipe.toml")


STEPS = [
    Step("global_recode", {"variable": "age", "breaks": [-1, 20, 40, 60, 120]}),
    Step("global_recode", {"variable": "age", "breaks": 4}),
    Step("group_and_rename", {"variable": "roof", "groups": [{"to": 4, "from": [4, 5, 9]}]}),
    Step("top_bottom_code", {"variable": "income", "value": 9e7, "replacement": 9e7}),
    Step("local_suppression", {"k": 3, "importance": [6, 5, 4, 3, 1, 2]}),
    Step("pram", {"variables": ["walls"], "seed": 3}),
    Step("microaggregation", {"variables": ["expend", "income"], "k": 3}),
    Step("add_noise", {"variables": ["savings"], "noise": 50, "seed": 1}),
    Step("rank_swap", {"variables": ["income"], "p": 5, "seed": 2}),
    Step("shuffle", {"variables": ["expend"], "predictors": ["income"], "seed": 4}),
]


@pytest.fixture(scope="module")
def testdata(sdcmicro_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sdcmicro_dir / "testdata.csv")


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.method)
def test_every_method_runs_changes_only_its_variables_and_is_reproducible(
    step: Step, testdata: pd.DataFrame
) -> None:
    problem = Recipe.loads(PROBLEM).problem
    before = testdata.copy()
    out = step.run(testdata, problem)
    pd.testing.assert_frame_equal(testdata, before)  # input untouched
    touched = set(step.variables()) or set(problem.keys)
    changed = {c for c in testdata.columns if not out[c].equals(testdata[c])}
    assert changed and changed <= touched
    again = step.run(testdata, problem)
    pd.testing.assert_frame_equal(out, again)


def test_local_suppression_step_gives_k_anonymity_with_importance(testdata: pd.DataFrame) -> None:
    problem = MicrodataProblem(keys=["urbrur", "roof", "walls", "water", "sex"])
    importance = {"urbrur": 5, "roof": 4, "walls": 3, "water": 2, "sex": 1}
    out = Step("local_suppression", {"k": 3, "importance": importance}).run(testdata, problem)
    keys = out[list(problem.keys)]
    # brute force with NA as a wildcard (alpha = 1; no record loses every key here)
    values = keys.to_numpy(dtype=float)
    assert not np.isnan(values).all(axis=1).any()
    patterns, counts = np.unique(np.nan_to_num(values, nan=-1), axis=0, return_counts=True)
    patterns[patterns == -1] = np.nan
    compatible = np.ones((len(patterns), len(patterns)), dtype=bool)
    for j in range(values.shape[1]):
        a, b = patterns[:, j][:, None], patterns[:, j][None, :]
        compatible &= (a == b) | np.isnan(a) | np.isnan(b)
    assert (compatible @ counts).min() >= 3
    # sex has importance 1: suppressed last, and here never
    assert keys["sex"].notna().all()


def test_importance_table_must_rank_every_key(testdata: pd.DataFrame) -> None:
    problem = MicrodataProblem(keys=["urbrur", "roof"])
    with pytest.raises(ValueError, match="every key variable a rank"):
        Step("local_suppression", {"importance": {"urbrur": 1}}).run(testdata, problem)


def test_group_and_rename_entries_are_checked(testdata: pd.DataFrame) -> None:
    problem = MicrodataProblem(keys=["roof"])
    with pytest.raises(ValueError, match="entries must be"):
        Step("group_and_rename", {"variable": "roof", "groups": [[4, [5]]]}).run(testdata, problem)
