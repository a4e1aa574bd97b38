"""Histogram checking (spec §8, §12.1): bins, entities, fixed edges, ACRO mode and parity."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from output_checker.errors import InputError, ParameterError
from output_checker.histogram import DATA_EDGES_REASON, check_histogram
from output_checker.parameters import Parameters
from output_checker.results import SCHEMA_ID, SCHEMA_VERSION
from output_checker.status import Status

EDGES = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def values_per_bin(counts: Sequence[int], edges: Sequence[float] = EDGES) -> list[float]:
    """Values at the bin midpoints, ``counts[i]`` of them in bin i."""
    mids = [(lo + hi) / 2 for lo, hi in itertools.pairwise(edges)]
    return [m for m, c in zip(mids, counts, strict=True) for _ in range(c)]


def frame(values: Sequence[float], **extra: Sequence[object]) -> pd.DataFrame:
    return pd.DataFrame({"x": list(values), **{k: list(v) for k, v in extra.items()}})


# ----- the threshold rule ------------------------------------------------------------------------
def test_a_bin_of_three_fails() -> None:
    result = check_histogram(frame(values_per_bin([12, 3, 15, 10, 20])), "x", EDGES)
    assert result.counts.tolist() == [12, 3, 15, 10, 20]
    assert result.bin_status.tolist() == [0, 2, 0, 0, 0]
    assert result.status == Status.FAIL
    record = result.to_dict()
    assert record["bins"][1]["rules_failed"] == ["threshold"]
    assert record["bins"][1]["status"] == "fail"
    assert record["bins"][0]["rules_failed"] == [] and record["bins"][0]["status"] == "pass"


def test_all_bins_at_threshold_pass() -> None:
    result = check_histogram(frame(values_per_bin([10, 10, 11, 10, 25])), "x", EDGES)
    assert result.status == Status.PASS
    assert result.summary() == "pass: all 5 bins pass"


def test_empty_interior_bin_passes_canonically_but_fails_in_acro_mode() -> None:
    data = frame(values_per_bin([12, 11, 0, 15, 10]))
    canonical = check_histogram(data, "x", EDGES)
    assert canonical.counts[2] == 0
    assert canonical.status == Status.PASS
    acro = check_histogram(data, "x", EDGES, conventions="acro")
    assert acro.bin_status.tolist() == [0, 0, 2, 0, 0]
    assert acro.status == Status.FAIL
    assert any("ACRO mode" in note for note in acro.notes)


def test_threshold_parameter_is_honoured() -> None:
    data = frame(values_per_bin([12, 11, 14, 15, 10]))
    strict = Parameters().tightened(threshold=12)
    result = check_histogram(data, "x", EDGES, parameters=strict)
    assert result.bin_status.tolist() == [0, 2, 0, 0, 2]


def test_parameters_of_the_other_mode_are_refused() -> None:
    with pytest.raises(ParameterError):
        check_histogram(frame([1.0]), "x", EDGES, conventions="acro", parameters=Parameters())


# ----- bin edges ---------------------------------------------------------------------------------
def test_integer_bins_fail_because_edges_reveal_the_extremes() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(50, 10, 2000)
    result = check_histogram(frame(x), "x", 4)
    np.testing.assert_allclose(result.edges, np.histogram_bin_edges(x, 4))
    assert result.edges[0] == x.min() and result.edges[-1] == x.max()  # the leak itself
    np.testing.assert_array_equal(result.counts, np.histogram(x, 4)[0])
    assert (result.counts >= 10).all()  # every bin is fine, yet the output fails
    assert result.status == Status.FAIL
    assert DATA_EDGES_REASON in result.notes
    assert DATA_EDGES_REASON in result.summary()
    record = result.to_dict()
    assert record["rules"]["fixed_edges"]["status"] == "fail"
    assert record["request"]["bins"] == 4
    # the same data on a fixed grid passes
    assert check_histogram(frame(x), "x", [-100, 40, 50, 60, 200]).status == Status.PASS


def test_values_on_edges_follow_numpy() -> None:
    x = [0.0] * 10 + [1.0] * 10 + [2.0] * 10 + [5.0] * 10  # 5.0 is the closing edge
    result = check_histogram(frame(x), "x", EDGES)
    np.testing.assert_array_equal(result.counts, np.histogram(x, EDGES)[0])
    assert result.counts.tolist() == [10, 10, 10, 0, 10]


def test_values_outside_the_edges_are_noted_not_drawn() -> None:
    x = [*values_per_bin([12, 11, 14, 15, 10]), -7.0, -0.001, 5.0001, 99.0, 1e9]
    result = check_histogram(frame(x), "x", EDGES)
    assert result.counts.tolist() == [12, 11, 14, 15, 10]
    assert result.evidence["n_below"] == 2 and result.evidence["n_above"] == 3
    assert any("outside the bin edges" in note for note in result.notes)
    assert result.status == Status.PASS


def test_infinite_values_lie_outside() -> None:
    x = [*values_per_bin([12, 11, 14, 15, 10]), np.inf, -np.inf]
    result = check_histogram(frame(x), "x", EDGES)
    assert result.counts.sum() == 62
    assert result.evidence["n_below"] == 1 and result.evidence["n_above"] == 1


@settings(max_examples=60, deadline=None)
@given(
    x=st.lists(st.integers(-5, 25).map(lambda v: v / 2), min_size=0, max_size=60),
    edges=st.lists(st.integers(-4, 24), min_size=2, max_size=8, unique=True).map(sorted),
)
def test_counts_match_numpy(x: list[float], edges: list[int]) -> None:
    result = check_histogram(pd.DataFrame({"x": np.asarray(x, dtype=float)}), "x", edges)
    expected, _ = np.histogram(x, [float(e) for e in edges])
    np.testing.assert_array_equal(result.counts, expected)
    inside = sum(edges[0] <= v <= edges[-1] for v in x)
    assert result.evidence["n_below"] + result.evidence["n_above"] == len(x) - inside
    unsafe = (expected > 0) & (expected < 10)
    assert result.status == (Status.FAIL if unsafe.any() else Status.PASS)


# ----- entities and missing values ---------------------------------------------------------------
def test_one_person_with_twelve_rows_counts_once() -> None:
    x = values_per_bin([12, 11, 14, 15, 10])
    people = [f"p{i}" for i in range(len(x))]
    people[:12] = ["same"] * 12  # the whole first bin is one person
    by_rows = check_histogram(frame(x, person=people), "x", EDGES)
    assert by_rows.counts[0] == 12 and by_rows.status == Status.PASS
    by_person = check_histogram(frame(x, person=people), "x", EDGES, entity="person")
    assert by_person.counts[0] == 1
    assert by_person.n_rows[0] == 12
    assert by_person.bin_status[0] == Status.FAIL and by_person.status == Status.FAIL
    record = by_person.to_dict()
    assert record["bins"][0]["evidence"] == {"n_rows": 12, "n_entities": 1}


def test_a_person_in_two_bins_counts_in_each() -> None:
    x = values_per_bin([10, 10, 0, 0, 0])
    people = [f"p{i}" for i in range(10)] * 2
    result = check_histogram(frame(x, person=people), "x", EDGES, entity="person")
    assert result.counts.tolist() == [10, 10, 0, 0, 0]


def test_missing_values_are_not_counted() -> None:
    x = values_per_bin([12, 11, 14, 15, 10]) + [np.nan] * 4
    people = [f"p{i}" for i in range(len(x))]
    result = check_histogram(frame(x, person=people), "x", EDGES, entity="person")
    assert result.counts.sum() == 62
    assert result.evidence["n_missing"] == 4
    assert result.to_dict()["evidence"]["n_missing"] == 4


def test_nullable_integer_column() -> None:
    x = pd.array([0, 0, 1, None, 4] * 10, dtype="Int64")
    result = check_histogram(pd.DataFrame({"x": x}), "x", EDGES)
    assert result.counts.tolist() == [20, 10, 0, 0, 10]
    assert result.evidence["n_missing"] == 10


# ----- manifest ----------------------------------------------------------------------------------
def test_manifest_record() -> None:
    result = check_histogram(frame(values_per_bin([12, 3, 15, 10, 20])), "x", EDGES)
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert record["schema"] == SCHEMA_ID and record["schema_version"] == SCHEMA_VERSION
    assert record["kind"] == "histogram" and record["output_type"] == "histogram"
    assert record["status"] == "fail" and record["summary"].startswith("fail: 1 of 5 bins")
    assert record["parameters"] == Parameters().to_dict()
    assert record["edges"] == EDGES
    assert [(b["left"], b["right"], b["count"]) for b in record["bins"]] == [
        (0.0, 1.0, 12), (1.0, 2.0, 3), (2.0, 3.0, 15), (3.0, 4.0, 10), (4.0, 5.0, 20),
    ]  # fmt: skip
    table_csv = "left,right,count\n0.0,1.0,12\n1.0,2.0,3\n2.0,3.0,15\n3.0,4.0,10\n4.0,5.0,20\n"
    assert record["output"] == {
        "format": "csv",
        "sha256": hashlib.sha256(table_csv.encode()).hexdigest(),
    }
    assert record["rules"]["threshold"]["fail"] == 1


# ----- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "column", "bins", "entity", "message"),
    [
        (frame([1.0]), "y", EDGES, None, "not in the data"),
        (frame([1.0]), "x", EDGES, "person", "not in the data"),
        (frame(["a", "b"]), "x", EDGES, None, "must be numeric"),
        (frame([True, False]), "x", EDGES, None, "must be numeric"),
        (frame([1.0]), "x", [3, 2, 1], None, "strictly increasing"),
        (frame([1.0]), "x", [1, 1, 2], None, "strictly increasing"),
        (frame([1.0]), "x", [1], None, "at least two"),
        (frame([1.0]), "x", [[0, 1], [2, 3]], None, "flat sequence"),
        (frame([1.0]), "x", [0, np.nan, 2], None, "finite"),
        (frame([1.0]), "x", [0, np.inf], None, "finite"),
        (frame([1.0]), "x", ["a", "b"], None, "numbers"),
        (frame([1.0]), "x", "auto", None, "number of bins"),
        (frame([1.0]), "x", True, None, "number of bins"),
        (frame([1.0]), "x", 0, None, "at least 1"),
        (frame([np.nan]), "x", 5, None, "no values"),
        (frame([1.0, 2.0], person=["s1", None]), "x", EDGES, "person", "missing values"),
    ],
)
def test_bad_input(
    data: pd.DataFrame, column: str, bins: object, entity: str | None, message: str
) -> None:
    with pytest.raises(InputError, match=message) as info:
        check_histogram(data, column, bins, entity=entity)  # type: ignore[arg-type]
    assert "s1" not in str(info.value)


def test_all_missing_with_explicit_edges_draws_nothing() -> None:
    result = check_histogram(frame([np.nan, np.nan]), "x", EDGES)
    assert result.counts.sum() == 0 and result.status == Status.PASS
    assert check_histogram(frame([np.nan]), "x", EDGES, conventions="acro").status == Status.FAIL


# ----- parity with ACRO 1.0.2 --------------------------------------------------------------------
@pytest.mark.parity
def test_bin_verdicts_match_acro(
    acro: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    edges = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    # distinct counts, so ACRO's cell positions (in value_counts order) name the bins
    counts = [12, 3, 0, 15, 10, 9, 20]
    data = frame(values_per_bin(counts, edges))
    session = acro.ACRO(suppress=False)
    session.hist(data, "x", bins=edges)
    plt.close("all")
    [record] = session.results.results.values()
    flagged = [pos for pos, _ in record.sdc["cells"]["MinimumThresholdCheck"]]
    by_count_desc = sorted(range(len(counts)), key=lambda i: -counts[i])
    acro_failing = sorted(by_count_desc[pos] for pos in flagged)

    ours = check_histogram(data, "x", edges, conventions="acro")
    assert ours.counts.tolist() == counts
    assert np.flatnonzero(ours.bin_status == Status.FAIL).tolist() == acro_failing == [1, 2, 5]
    assert ours.status.label == record.status == "fail"
