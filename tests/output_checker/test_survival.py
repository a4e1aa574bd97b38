"""Kaplan-Meier checking (spec §7, §12.1): the estimate, merging, truncation, ACRO mode."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

from output_checker.errors import InputError, ParameterError
from output_checker.parameters import Parameters
from output_checker.results import SCHEMA_ID, SCHEMA_VERSION
from output_checker.status import Status
from output_checker.survival import check_survival

Step = tuple[float, int, int, int, float]  # time, at risk, events, censored, survival


def reference_km(times: Sequence[float], events: Sequence[int]) -> list[Step]:
    """Kaplan-Meier by the textbook definition, one distinct time at a time."""
    steps: list[Step] = []
    surv = 1.0
    for t in sorted(set(times)):
        at_risk = sum(1 for x in times if x >= t)
        d = sum(1 for x, e in zip(times, events, strict=True) if x == t and e)
        c = sum(1 for x, e in zip(times, events, strict=True) if x == t and not e)
        surv *= 1 - d / at_risk
        steps.append((float(t), at_risk, d, c, surv))
    return steps


def reference_protect(
    steps: list[Step], threshold: int, *, truncate: bool
) -> list[tuple[float, int, int, float]]:
    """Spec §7 applied literally: stop where fewer than T are at risk, then merge each run of
    steps until T units have been removed; publish (end time, at risk at start, events,
    survival at end)."""
    published = []
    start_at_risk, removed, events = None, 0, 0
    for t, at_risk, d, c, surv in steps:
        if truncate and at_risk < threshold:
            break
        start_at_risk = at_risk if start_at_risk is None else start_at_risk
        removed += d + c
        events += d
        if removed >= threshold:
            published.append((t, start_at_risk, events, surv))
            start_at_risk, removed, events = None, 0, 0
    return published


def frame(times: Sequence[float], events: Sequence[int], **extra: Sequence[object]) -> pd.DataFrame:
    return pd.DataFrame(
        {"t": list(times), "e": list(events), **{k: list(v) for k, v in extra.items()}}
    )


def runs(*blocks: tuple[float, int, int]) -> tuple[list[float], list[int]]:
    """Data from (time, events, censored) blocks."""
    times: list[float] = []
    events: list[int] = []
    for t, d, c in blocks:
        times += [t] * (d + c)
        events += [1] * d + [0] * c
    return times, events


# ----- the estimate ------------------------------------------------------------------------------
def test_hand_computed_table() -> None:
    times, events = [1, 2, 2, 3, 4, 4, 5, 6], [1, 0, 1, 1, 0, 1, 1, 0]
    raw = check_survival(frame(times, events), "t", "e").raw_steps
    assert raw["time"].tolist() == [1, 2, 3, 4, 5, 6]
    assert raw["n_at_risk"].tolist() == [8, 7, 5, 4, 2, 1]
    assert raw["n_events"].tolist() == [1, 1, 1, 1, 1, 0]
    assert raw["n_censored"].tolist() == [0, 1, 0, 1, 0, 1]
    expected = [7 / 8, 7 / 8 * 6 / 7, 0.75 * 4 / 5, 0.6 * 3 / 4, 0.45 * 1 / 2, 0.225]
    np.testing.assert_allclose(raw["survival"], expected, rtol=1e-12)


def test_raw_table_matches_statsmodels() -> None:
    rng = np.random.default_rng(7)
    times = rng.integers(0, 40, 300).astype(float)
    events = rng.integers(0, 2, 300)
    raw = check_survival(frame(times, events), "t", "e").raw_steps
    sf = sm.SurvfuncRight(times, events)
    at_events = raw[raw["n_events"] > 0]  # statsmodels lists event times only
    np.testing.assert_allclose(at_events["time"], sf.surv_times)
    np.testing.assert_allclose(at_events["survival"], sf.surv_prob, rtol=1e-12)
    np.testing.assert_array_equal(at_events["n_at_risk"], sf.n_risk)
    np.testing.assert_array_equal(at_events["n_events"], sf.n_events)


def test_boolean_events_and_float_durations() -> None:
    times = [0.5, 0.5, 1.25, 2.0, 3.5]
    events = [True, False, True, True, False]
    raw = check_survival(frame(times, events), "t", "e").raw_steps
    ref = reference_km(times, [int(e) for e in events])
    np.testing.assert_allclose(raw["survival"], [s[4] for s in ref])
    assert raw["n_at_risk"].tolist() == [s[1] for s in ref]


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 12), st.integers(0, 1), st.sampled_from("ab")),
        min_size=1,
        max_size=80,
    ),
    threshold=st.integers(1, 12),
)
def test_matches_reference_per_group(data: list[tuple[int, int, str]], threshold: int) -> None:
    times, events, groups = (list(x) for x in zip(*data, strict=True))
    params = Parameters(threshold=threshold)
    result = check_survival(frame(times, events, g=groups), "t", "e", group="g", parameters=params)
    for g in sorted(set(groups)):
        t_g = [t for t, gg in zip(times, groups, strict=True) if gg == g]
        e_g = [e for e, gg in zip(events, groups, strict=True) if gg == g]
        ref = reference_km(t_g, e_g)
        raw = result.raw_steps[result.raw_steps["group"] == g]
        assert raw["n_at_risk"].tolist() == [s[1] for s in ref]
        assert raw["n_censored"].tolist() == [s[3] for s in ref]
        np.testing.assert_allclose(raw["survival"], [s[4] for s in ref], rtol=1e-12)

        expected = reference_protect(ref, threshold, truncate=True)
        got = result.protected[result.protected["group"] == g]
        assert got["time"].tolist() == [p[0] for p in expected]
        assert got["n_at_risk"].tolist() == [p[1] for p in expected]
        assert got["n_events"].tolist() == [p[2] for p in expected]
        np.testing.assert_allclose(got["survival"], [p[3] for p in expected], rtol=1e-12)
        assert (got["n_at_risk"] >= threshold).all()
    every_group_published = all((result.protected["group"] == g).any() for g in set(groups))
    assert result.status == (Status.PASS if every_group_published else Status.FAIL)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 8), st.integers(0, 1)), min_size=1, max_size=70),
    threshold=st.integers(10, 25),
)
def test_acro_mode_matches_reference(data: list[tuple[int, int]], threshold: int) -> None:
    times, events = (list(x) for x in zip(*data, strict=True))
    params = Parameters.for_conventions("acro").tightened(threshold=threshold)
    result = check_survival(frame(times, events), "t", "e", conventions="acro", parameters=params)
    expected = reference_protect(reference_km(times, events), 10, truncate=False)
    assert result.protected["time"].tolist() == [p[0] for p in expected]
    assert result.protected["n_events"].tolist() == [p[2] for p in expected]
    assert result.status == Status.REVIEW


# ----- merging and truncation --------------------------------------------------------------------
MERGE_DATA = runs((1, 3, 0), (2, 2, 2), (3, 5, 0), (4, 6, 6), (5, 8, 2), (6, 4, 2))


def test_short_steps_merge_into_the_end_of_the_interval() -> None:
    result = check_survival(frame(*MERGE_DATA), "t", "e")
    raw, prot = result.raw_steps, result.protected
    # times 1-3 remove 3, 4 and 5 units: one published step at time 3
    assert prot.loc[0, "time"] == 3
    assert prot.loc[0, "n_at_risk"] == 40
    assert prot.loc[0, "n_events"] == 3 + 2 + 5
    assert prot.loc[0, "survival"] == pytest.approx(37 / 40 * 35 / 37 * 28 / 33)
    assert prot.loc[0, "survival"] == raw.loc[raw["time"] == 3, "survival"].item()
    assert raw["action"].tolist()[:3] == ["merged"] * 3
    assert set(raw.loc[raw["time"] < 3, "rules_failed"]) == {"removed"}
    assert "3 steps merged into 1 so that each rests on 10+ removals" in result.notes


def test_a_safe_step_is_published_unchanged() -> None:
    result = check_survival(frame(*MERGE_DATA), "t", "e")
    raw, prot = result.raw_steps, result.protected
    step = raw[raw["time"] == 4].iloc[0]
    assert step["action"] == "published" and step["status"] == "pass"
    published = prot.iloc[int(step["block"])]
    for column in ("time", "n_at_risk", "n_events", "survival"):
        assert published[column] == step[column]


def test_everything_safe_means_protected_equals_raw() -> None:
    times, events = runs((1, 10, 2), (2, 11, 0), (3, 5, 5), (4, 12, 0))
    result = check_survival(frame(times, events), "t", "e")
    raw = result.raw_steps
    assert (raw["action"] == "published").all() and (raw["status"] == "pass").all()
    pd.testing.assert_frame_equal(
        result.protected, raw[["time", "n_at_risk", "n_events", "survival"]]
    )
    assert result.status == Status.PASS and result.notes == ()


def test_truncated_where_at_risk_drops_below_threshold() -> None:
    result = check_survival(frame(*MERGE_DATA), "t", "e")
    raw, prot = result.raw_steps, result.protected
    # at time 6, 6 units remain at risk: the curve stops after time 5
    assert prot["time"].tolist() == [3, 4, 5]
    last = raw[raw["time"] == 6].iloc[0]
    assert last["action"] == "truncated" and last["block"] == -1
    assert "at_risk" in last["rules_failed"]
    assert any("truncated after time 5" in note for note in result.notes)
    assert result.status == Status.PASS


def test_no_published_time_rests_on_fewer_than_threshold_at_risk() -> None:
    # 14 units, one event per time: a block of 10 removals would end with 5 at risk
    times, events = list(range(1, 15)), [1] * 14
    canonical = check_survival(frame(times, events), "t", "e")
    assert canonical.protected.empty
    assert canonical.status == Status.FAIL
    assert set(canonical.raw_steps["action"]) == {"withheld"}
    acro = check_survival(frame(times, events), "t", "e", conventions="acro")
    assert acro.protected["time"].tolist() == [10]
    assert acro.protected["n_at_risk"].tolist() == [14]


def test_the_censored_count_of_the_tail_is_not_released() -> None:
    result = check_survival(frame(*MERGE_DATA), "t", "e")
    assert "n_censored" not in result.protected.columns
    assert "n_censored" in result.raw_steps.columns


def test_group_of_five_fails() -> None:
    big = runs((1, 6, 6), (2, 12, 0), (3, 10, 2))
    small = runs((1, 2, 1), (4, 2, 0))
    data = frame(big[0] + small[0], big[1] + small[1], g=["a"] * 36 + ["b"] * 5)
    result = check_survival(data, "t", "e", group="g")
    assert result.status == Status.FAIL
    assert "b" not in set(result.protected["group"])
    b_steps = result.raw_steps[result.raw_steps["group"] == "b"]
    assert set(b_steps["action"]) == {"withheld"}
    assert all("group_size" in r for r in b_steps["rules_failed"])
    groups = {g["group"]: g for g in result.to_dict()["groups"]}
    assert groups["b"]["status"] == "fail" and groups["a"]["status"] == "pass"
    assert any("'b'" in note and "fewer than 10 units" in note for note in result.notes)
    # the same group alone, checked separately, gives the same verdict
    alone = check_survival(frame(*small), "t", "e")
    assert alone.status == Status.FAIL and alone.protected.empty


def test_grouped_check_equals_separate_checks() -> None:
    rng = np.random.default_rng(3)
    data = pd.DataFrame(
        {
            "t": rng.integers(0, 30, 400),
            "e": rng.integers(0, 2, 400),
            "g": rng.choice(["x", "y", "z"], 400),
        }
    )
    together = check_survival(data, "t", "e", group="g")
    for g in ("x", "y", "z"):
        alone = check_survival(data[data["g"] == g], "t", "e")
        part = together.protected[together.protected["group"] == g].drop(columns="group")
        pd.testing.assert_frame_equal(part.reset_index(drop=True), alone.protected)


def test_threshold_parameter_is_honoured() -> None:
    strict = Parameters().tightened(threshold=15)
    result = check_survival(frame(*MERGE_DATA), "t", "e", parameters=strict)
    removed = result.raw_steps.groupby("block")["n_removed"].sum().drop(-1, errors="ignore")
    assert (removed >= 15).all()
    assert (result.protected["n_at_risk"] >= 15).all()
    assert result.threshold == 15


# ----- ACRO mode -------------------------------------------------------------------------------
def test_acro_merges_at_ten_whatever_the_parameters_and_is_review() -> None:
    times, events = runs((1, 3, 0), (2, 4, 0), (3, 4, 0), (4, 12, 0), (5, 20, 0))
    params = Parameters.for_conventions("acro").tightened(threshold=30)
    result = check_survival(frame(times, events), "t", "e", conventions="acro", parameters=params)
    assert result.threshold == 10
    assert result.protected["time"].tolist() == [3, 4, 5]
    assert result.status == Status.REVIEW
    assert result.to_dict()["status"] == "review"
    assert any("ACRO mode" in note for note in result.notes)


def test_acro_mode_is_review_even_when_everything_is_safe() -> None:
    times, events = runs((1, 10, 2), (2, 11, 0))
    result = check_survival(frame(times, events), "t", "e", conventions="acro")
    assert (result.raw_steps["action"] == "published").all()
    assert result.status == Status.REVIEW


def test_acro_mode_has_no_group_size_rule() -> None:
    result = check_survival(frame([1, 2, 3], [1, 1, 0]), "t", "e", conventions="acro")
    assert result.status == Status.REVIEW
    assert set(result.raw_steps["rules_failed"]) == {"removed"}


def test_parameters_of_the_other_mode_are_refused() -> None:
    with pytest.raises(ParameterError):
        check_survival(frame(*MERGE_DATA), "t", "e", conventions="acro", parameters=Parameters())


# ----- manifest ---------------------------------------------------------------------------------
def test_manifest_record() -> None:
    data = frame(*MERGE_DATA, g=["a"] * len(MERGE_DATA[0]))
    result = check_survival(data, "t", "e", group="g")
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert record["schema"] == SCHEMA_ID and record["schema_version"] == SCHEMA_VERSION
    assert record["kind"] == "survival" and record["output_type"] == "survival"
    assert record["status"] == "pass" and record["summary"].startswith("pass:")
    assert record["parameters"] == Parameters().to_dict()
    csv = result.protected.to_csv(index=False).encode()
    assert record["output"] == {"format": "csv", "sha256": hashlib.sha256(csv).hexdigest()}
    assert [row["time"] for row in record["protected"]] == [3, 4, 5]
    assert len(record["steps"]) == len(result.raw_steps)
    first = record["steps"][0]
    assert first["rules_failed"] == ["removed"] and first["action"] == "merged"
    assert record["steps"][3]["rules_failed"] == []
    assert record["request"] == {"duration": "t", "event": "e", "group": "g", "entity": None}


def test_changing_the_protected_table_changes_the_hash() -> None:
    one = check_survival(frame(*MERGE_DATA), "t", "e")
    times, events = MERGE_DATA
    two = check_survival(frame([*times[:-1], 7], events), "t", "e")
    three = check_survival(frame([t + 0.5 if t == 3 else t for t in times], events), "t", "e")
    assert one.to_dict()["output"]["sha256"] == two.to_dict()["output"]["sha256"]  # tail only
    assert one.to_dict()["output"]["sha256"] != three.to_dict()["output"]["sha256"]


# ----- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (frame([1, 2], [1, 0]), {"duration": "time"}, "not in the data"),
        (frame([1, 2], [1, 0]), {"group": "g"}, "not in the data"),
        (frame([], []), {}, "no rows"),
        (frame(["a", "b"], [1, 0]), {}, "must be numeric"),
        (frame([True, False], [1, 0]), {}, "must be numeric"),
        (frame([1, -2], [1, 0]), {}, "negative"),
        (frame([1, np.inf], [1, 0]), {}, "infinite"),
        (frame([1, np.nan], [1, 0]), {}, "missing values"),
        (frame([1, 2], [1, 2]), {}, "0/1"),
        (frame([1, 2], ["y", "n"]), {}, "0/1"),
        (frame([1, 2], [1, None]), {}, "missing values"),
        (frame([1, 2], [1, 0], g=["a", None]), {"group": "g"}, "missing values"),
        (frame([1, 2], [1, 0], p=["s1", "s1"]), {"entity": "p"}, "one row per unit"),
    ],
)
def test_bad_input(data: pd.DataFrame, kwargs: dict[str, str], message: str) -> None:
    args = {"duration": "t", "event": "e"} | kwargs
    with pytest.raises(InputError, match=message) as info:
        check_survival(data, args.pop("duration"), args.pop("event"), **args)
    assert "s1" not in str(info.value)  # person-level values stay out of messages


def test_entity_may_repeat_across_groups() -> None:
    times, events = runs((1, 6, 6), (2, 12, 0))
    people = [f"p{i}" for i in range(24)]
    data = frame(times * 2, events * 2, p=people * 2, g=["a"] * 24 + ["b"] * 24)
    result = check_survival(data, "t", "e", group="g", entity="p")
    assert result.status == Status.PASS
    assert result.protected["group"].tolist() == ["a", "a", "b", "b"]


def test_large_input_is_fast_enough() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    data = pd.DataFrame(
        {
            "t": rng.exponential(50.0, n).round(1),
            "e": rng.integers(0, 2, n),
            "g": rng.integers(0, 20, n),
        }
    )
    result = check_survival(data, "t", "e", group="g")
    removed = result.raw_steps.groupby("block")["n_removed"].sum().drop(-1)
    assert (removed >= 10).all()
    assert len(result.protected) > 1000
