"""MicrodataProblem (roles, JSON settings, validation) and RiskTarget (criterion, failures)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checker.microdata.problem import MicrodataProblem, RiskTarget
from output_checker.microdata.risk.individual import measure_risk

FRANC_KEYS = ["Key1", "Key2", "Key3", "Key4"]


def test_lists_become_tuples_and_json_round_trips() -> None:
    problem = MicrodataProblem(
        keys=["a", "b"], numeric=["x"], weight="w", household="h", strata="s",
        sensitive=["d"], alpha=0.5,
    )  # fmt: skip
    assert problem.keys == ("a", "b") and problem.numeric == ("x",)
    assert problem.columns == ("a", "b", "x", "d", "w", "h", "s")
    again = MicrodataProblem.from_json(problem.to_json())
    assert again == problem
    assert hash(again) == hash(problem)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"keys": []}, "at least one key"),
        ({"keys": ["a", "a"]}, "more than once: a"),
        ({"keys": ["a"], "numeric": ["a"]}, "'a' is both keys and numeric"),
        ({"keys": ["a"], "weight": "a"}, "'a' is both keys and weight"),
        ({"keys": ["a"], "alpha": 1.5}, "alpha must be in [0, 1]"),
        ({"keys": ["a"], "alpha": True}, "alpha must be a number"),
        ({"keys": ["a", ""]}, "non-empty names"),
        ({"keys": ["a"], "colour": "red"}, "unknown problem setting(s): colour"),
        ({"weight": "w"}, "key variables"),
    ],
)
def test_bad_settings_are_named(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        MicrodataProblem.from_dict(settings)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_from_json_rejects_bad_json() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        MicrodataProblem.from_json("{keys: [")


def test_validate_names_every_missing_column() -> None:
    data = pd.DataFrame({"a": [1, 2], "x": [1.0, 2.0]})
    problem = MicrodataProblem(keys=["a", "b"], numeric=["x"], weight="w")
    with pytest.raises(ValueError, match="variables not in the data: b, w"):
        problem.validate(data)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("w", [1.0, 0.0], "positive and finite"),
        ("w", [1.0, np.nan], "positive and finite"),
        ("w", ["a", "b"], "is not numeric"),
        ("x", ["a", "b"], "numeric variable 'x' is not numeric"),
        ("h", [1, None], "missing ids"),
    ],
)
def test_validate_rejects_unusable_columns(column: str, values: list[object], message: str) -> None:
    data = pd.DataFrame({"a": [1, 2], "x": [1.0, 2.0], "w": [1.0, 2.0], "h": [1, 1]})
    data[column] = values
    problem = MicrodataProblem(keys=["a"], numeric=["x"], weight="w", household="h")
    with pytest.raises(ValueError, match=message):
        problem.validate(data)


@pytest.mark.parametrize(
    "settings",
    [
        {"k": 0},
        {"k": 2.5},
        {"k": True},
        {"max_global_risk": 0.0},
        {"max_global_risk": 1.0},
        {"max_household_risk": -0.1},
        {"kk": 3},
    ],
)
def test_target_validation(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RiskTarget.from_dict(settings)


def test_target_default_is_one_in_ten_thousand() -> None:
    target = RiskTarget()
    assert (target.k, target.max_global_risk) == (5, 1e-4)


def _brute_fk(keys: pd.DataFrame) -> np.ndarray:
    """fk without missing values: the size of each record's group of equal key values."""
    return keys.groupby(list(keys.columns)).transform("size").to_numpy()


def test_check_lists_failures_as_computed_by_brute_force(sdcmicro_dir: Path) -> None:
    data = pd.read_csv(sdcmicro_dir / "francdat.csv")
    keys = data[FRANC_KEYS]
    measures = measure_risk(keys)
    fk = _brute_fk(keys)
    patterns = len(keys.drop_duplicates())
    # unweighted, no missing values: global risk = number of patterns / n (spec §2.4)
    assert measures.global_risk == pytest.approx(patterns / len(keys))
    failures = RiskTarget(k=2, max_global_risk=0.5).check(measures)
    violating = int((fk < 2).sum())
    assert violating > 0
    assert failures[0] == f"{violating} record(s) violate 2-anonymity (fk < 2)"
    assert len(failures) == (2 if patterns / len(keys) > 0.5 else 1)
    assert "global risk" in failures[-1] and "exceeds the target 0.5" in failures[-1]
    # a target the file meets: no failure
    assert RiskTarget(k=1, max_global_risk=0.99).check(measures) == []


def test_check_household_bound(sdcmicro_dir: Path) -> None:
    data = pd.read_csv(sdcmicro_dir / "testdata.csv")
    keys = data[["urbrur", "roof", "walls", "water", "sex"]]
    with_hh = measure_risk(keys, data["sampling_weight"].to_numpy(), household=data["ori_hid"])
    assert with_hh.household_global_risk is not None
    loose = RiskTarget(k=1, max_global_risk=0.5, max_household_risk=0.5)
    assert loose.check(with_hh) == []
    tight = RiskTarget(k=1, max_global_risk=0.5, max_household_risk=1e-6)
    (failure,) = tight.check(with_hh)
    assert failure.startswith("household global risk")
    without = measure_risk(keys, data["sampling_weight"].to_numpy())
    assert "names no household" in tight.check(without)[0]
    assert not math.isnan(with_hh.household_global_risk)
