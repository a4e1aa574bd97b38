"""Table layout, totals, statistics and rules on realistic small tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from output_checker import InputError, Status, check_table


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 4000
    return pd.DataFrame(
        {
            "region": rng.choice(["N", "S"], n),
            "district": rng.choice(["d1", "d2", "d3"], n),
            "sex": rng.choice(["F", "M"], n),
            "income": rng.lognormal(9, 1, n),
            "person": rng.integers(0, 2500, n),
        }
    )


def cells(result: object) -> dict[tuple[tuple[object, ...], tuple[object, ...]], dict[str, object]]:
    return {(tuple(c["index"]), tuple(c["columns"])): c for c in result.to_dict()["cells"]}  # type: ignore[attr-defined]


def test_margins_are_true_totals_per_entity(frame: pd.DataFrame) -> None:
    result = check_table(
        frame, "region", "sex", values="income", aggfunc="sum", entity="person", margins=True
    )
    by = cells(result)
    assert by[(("All",), ("All",))]["value"] == pytest.approx(frame["income"].sum())
    # the total counts distinct people, not the sum of the cells' counts
    assert by[(("All",), ("All",))]["evidence"]["n_entities"] == frame["person"].nunique()
    per_cell = sum(by[((r,), (s,))]["evidence"]["n_entities"] for r in "NS" for s in "FM")
    assert per_cell > frame["person"].nunique()


def test_hierarchical_subtotals(frame: pd.DataFrame) -> None:
    result = check_table(frame, ["region", "district"], "sex", hierarchical=True)
    table = result.to_frame()
    assert table.loc[("N", "All"), "F"] == ((frame.region == "N") & (frame.sex == "F")).sum()
    assert table.loc[("All", "All"), "All"] == len(frame)
    # subtotal rows follow their children, as tau-Argus lays them out
    assert list(table.index[:4]) == [("N", "d1"), ("N", "d2"), ("N", "d3"), ("N", "All")]


def test_entity_ids_int_or_string_give_the_same_evidence(frame: pd.DataFrame) -> None:
    as_int = check_table(frame, "region", values="income", aggfunc="mean", entity="person")
    text = frame.assign(person="p" + frame["person"].astype(str))
    as_str = check_table(text, "region", values="income", aggfunc="mean", entity="person")
    sparse = frame.assign(person=frame["person"] * 10**12)
    as_sparse = check_table(sparse, "region", values="income", aggfunc="mean", entity="person")
    reference = [c["evidence"] for c in as_int.to_dict()["cells"]]
    for other in (as_str, as_sparse):
        for got, want in zip(
            (c["evidence"] for c in other.to_dict()["cells"]), reference, strict=True
        ):
            assert got["n_entities"] == want["n_entities"] and got["top"] == want["top"]
            assert got["total"] == pytest.approx(want["total"], rel=1e-12)  # summation order


def test_structural_zero_passes_but_other_zeros_are_reviewed() -> None:
    frame = pd.DataFrame(
        {
            "sex": ["F"] * 30 + ["M"] * 30,
            "diagnosis": ["pregnancy"] * 12 + ["flu"] * 18 + ["flu"] * 30,
        }
    )
    frame["diagnosis"] = pd.Categorical(frame["diagnosis"], ["flu", "pregnancy", "measles"])
    plain = check_table(frame, "sex", "diagnosis")
    declared = check_table(frame, "sex", "diagnosis", structural_zeros=[("M", "pregnancy")])
    assert cells(plain)[(("M",), ("pregnancy",))]["status"] != "pass"
    assert "zero" not in cells(declared)[(("M",), ("pregnancy",))]["rules_failed"]
    assert cells(declared)[(("M",), ("measles",))]["checks"]["zero"]["status"] == "review"
    with pytest.raises(InputError, match="not in the data"):
        check_table(frame, "sex", "diagnosis", structural_zeros=[("X", "flu")])


def test_weights_must_be_constant_within_an_entity() -> None:
    frame = pd.DataFrame(
        {"g": ["a"] * 4, "v": [1.0, 2, 3, 4], "w": [1.0, 2, 1, 1], "id": [1, 1, 2, 3]}
    )
    with pytest.raises(InputError, match="vary within an entity"):
        check_table(frame, "g", values="v", aggfunc="sum", entity="id", weights="w")


def test_weighted_statistics(frame: pd.DataFrame) -> None:
    weighted = frame.assign(w=np.where(frame["sex"] == "F", 2.0, 1.0))
    result = check_table(weighted, "region", values="income", aggfunc="mean", weights="w")
    north = weighted[weighted.region == "N"]
    expected = np.average(north["income"], weights=north["w"])
    assert result.to_frame().loc["N", "mean"] == pytest.approx(expected)
    counts = check_table(weighted, "region", weights="w").to_frame()
    assert counts.loc["N", "count"] == pytest.approx(north["w"].sum())


def test_missing_values_are_not_contributors() -> None:
    frame = pd.DataFrame({"g": ["a"] * 20, "v": [np.nan] * 17 + [5.0, 6.0, 7.0]})
    result = check_table(frame, "g", values="v", aggfunc="mean")
    [cell] = result.to_dict()["cells"]
    assert cell["evidence"]["n_rows"] == 20 and cell["evidence"]["n_entities"] == 3
    assert "threshold" in cell["rules_failed"]
    assert cell["checks"]["missing"]["n_missing"] == 17


def test_quantile_and_extremes(frame: pd.DataFrame) -> None:
    rounded = frame.assign(band=(frame["income"] // 5000) * 5000)
    raw_max = check_table(frame, "region", values="income", aggfunc="max")
    assert raw_max.status == Status.FAIL and raw_max.failing_counts()["extreme"]["fail"] == 2
    # a top-coded maximum shared by many units may be published
    capped = rounded.assign(band=rounded["band"].clip(upper=20000))
    assert check_table(capped, "region", values="band", aggfunc="max").status == Status.PASS
    p99 = check_table(frame, "region", values="income", aggfunc="quantile(0.999)")
    assert p99.failing_counts()["quantile"]["fail"] == 2  # fewer than 10 units above it
    median = check_table(rounded, "region", values="band", aggfunc="median")
    assert median.status == Status.PASS  # shared by many tied units


def test_mode_has_threshold_and_modal_share(frame: pd.DataFrame) -> None:
    frame = frame.assign(score=np.where(frame["region"] == "N", 1.0, frame["person"] % 3))
    result = check_table(frame, "region", values="score", aggfunc="mode")
    by = cells(result)
    assert "class_disclosure" in by[(("N",), ())]["rules_failed"]
    assert by[(("S",), ())]["status"] == "pass"


def test_acro_mode_misses_what_canonical_catches(frame: pd.DataFrame) -> None:
    tiny = pd.concat(
        [
            frame,
            pd.DataFrame(
                {"region": ["W"] * 3, "district": "d1", "sex": "F", "income": 1.0, "person": 1}
            ),
        ]
    )
    canonical = check_table(tiny, "region", values="income", aggfunc="mode")
    acro = check_table(tiny, "region", values="income", aggfunc="mode", conventions="acro")
    assert canonical.status == Status.FAIL
    assert acro.status == Status.PASS  # ACRO runs no threshold on mode (spec §6)


def test_rule_that_cannot_be_evaluated_reviews(
    frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from output_checker import rules

    def broken(table: object, params: object) -> object:
        raise ZeroDivisionError

    monkeypatch.setitem(rules.RULES, "nk", broken)
    result = check_table(frame, "region", values="income", aggfunc="sum")
    assert result.status == Status.REVIEW
    assert any("nk could not be evaluated" in note for note in result.notes)


def test_class_disclosure_needs_a_total_over_two_or_more_categories() -> None:
    """A one-category table (e.g. an ungrouped count) holds all of its total by definition:
    nothing is disclosed. A column total over two row categories still counts."""
    everyone = pd.DataFrame({"a": ["x"] * 30, "b": list("pq") * 15})
    alone = check_table(everyone, "a")
    assert alone.status == Status.PASS
    assert alone.rules["class_disclosure"].status.max() == Status.PASS
    lopsided = pd.DataFrame({"a": ["x"] * 29 + ["y"], "b": ["p"] * 30})
    crossed = check_table(lopsided, "a", "b")
    assert crossed.rules["class_disclosure"].status.max() == Status.FAIL  # 29 of 30 p are x
