"""The exact differencing check, by attempting the attacks of issue 11 on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from output_checker.columns import ALL
from output_checker.errors import InputError
from output_checker.ledger import (
    COUNT,
    DifferencingFinding,
    Kind,
    TableDefinition,
    differencing,
    differencing_findings,
    index_rows,
    stack,
    table_aggregates,
)
from output_checker.ledger.differencing import bucket_counts

from .helpers import clients, table

T = 10


def _ages() -> list[int]:
    """60 clients aged 10–20; exactly two are 17 and one is 16."""
    ages = [10 + i % 6 for i in range(55)] + [17, 17, 16, 19, 20]
    return ages


def _pairs(findings: tuple[DifferencingFinding, ...]) -> set[tuple[object, ...]]:
    return {(f.new.output, f.new.key, f.other.output, f.other.key, f.isolated) for f in findings}


def test_subpopulation_differencing_is_caught_for_counts_and_sums() -> None:
    frame = clients(_ages())
    n = len(frame)
    everyone = table("all-clients", frame, ["everyone"], n_entities=n)
    everyone_sum = table("all-income", frame, ["everyone"], n_entities=n, values="income")
    rest = frame[frame.age != 17]
    new = stack(
        [
            table("not-17", rest, ["everyone"], n_entities=n),
            table("not-17-income", rest, ["everyone"], n_entities=n, values="income"),
        ]
    )
    findings = differencing_findings(stack([everyone, everyone_sum]), new, T)
    assert _pairs(findings) == {
        ("not-17", ("all",), "all-clients", ("all",), 2),
        ("not-17-income", ("all",), "all-income", ("all",), 2),
    }
    for finding in findings:
        assert finding.nested and finding.new_only == 0 and finding.other_only == 2
        assert not finding.other_is_new
    # what the attacker computes from the two sums is the two 17-year-olds' total income
    sums = [f for f in findings if f.new.quantity.kind is Kind.SUM]
    assert sums[0].new.quantity.measure == "income"
    leaked = frame["income"].sum() - rest["income"].sum()
    assert leaked == frame.loc[frame.age == 17, "income"].sum()


def test_overlapping_age_bands_are_caught() -> None:
    frame = clients(_ages())
    n = len(frame)
    frame["band15"] = np.where(frame.age <= 15, "0-15", "16+")
    frame["band16"] = np.where(frame.age <= 16, "0-16", "17+")
    released = table("bands-15", frame, ["band15"], n_entities=n, margins=True)
    new = table("bands-16", frame, ["band16"], n_entities=n, margins=True)
    findings = differencing_findings(released, new, T)
    assert ("bands-16", ("0-16",), "bands-15", ("0-15",), 1) in _pairs(findings)
    # 16+ (5 people) against 17+ (4): the same person, isolated from the other side
    assert ("bands-16", ("17+",), "bands-15", ("16+",), 1) in _pairs(findings)
    assert not any(f.new.key == (ALL,) and f.other.key == (ALL,) for f in findings)


def test_a_re_release_with_a_category_merged_differently_is_caught() -> None:
    regions = ["north"] * 30 + ["south"] * 25 + ["east"] * 20 + ["west"] * 3
    frame = clients([30] * len(regions), regions)
    n = len(frame)
    frame["first"] = frame.region.replace({"east": "east+west", "west": "east+west"})
    frame["second"] = frame.region.replace({"south": "south+west", "west": "south+west"})
    released = table("first", frame, ["first"], n_entities=n, margins=True)
    new = table("second", frame, ["second"], n_entities=n, margins=True)
    pairs = _pairs(differencing_findings(released, new, T))
    assert pairs == {
        ("second", ("east",), "first", ("east+west",), 3),
        ("second", ("south+west",), "first", ("south",), 3),
    }


def test_cells_within_the_new_output_are_checked_once_per_pair() -> None:
    frame = clients([20] * 40 + [30] * 4)
    frame["band"] = np.where(frame.age < 25, "young", "old")
    n = len(frame)
    new = table("one", frame[frame.age < 25], ["everyone"], n_entities=n)
    new = stack([new, table("two", frame, ["everyone"], n_entities=n)])
    findings = differencing_findings(None, new, T)
    assert len(findings) == 1
    assert findings[0].other_is_new and findings[0].isolated == 4


def test_disjoint_populations_and_large_differences_are_not_flagged() -> None:
    frame = clients(list(range(18, 78)))
    n = len(frame)
    young = table("young", frame[frame.age < 40], ["everyone"], n_entities=n)
    old = table("old", frame[frame.age >= 50], ["everyone"], n_entities=n)
    assert differencing_findings(young, old, T) == ()
    under_50 = table("under-50", frame[frame.age < 50], ["everyone"], n_entities=n)
    assert differencing_findings(young, under_50, T) == ()  # differ by exactly T entities
    # the same population published twice isolates nobody
    assert differencing_findings(young, young, T) == ()


def test_only_rows_of_one_quantity_are_subtracted() -> None:
    frame = clients(list(range(20, 50)))
    frame["debt"] = 5.0
    n = len(frame)
    rest = frame[frame.age != 20]
    released = stack(
        [
            table("count-all", frame, ["everyone"], n_entities=n),
            table("debt-all", frame, ["everyone"], n_entities=n, values="debt"),
        ]
    )
    new = table("income-rest", rest, ["everyone"], n_entities=n, values="income")
    assert differencing_findings(released, new, T) == ()
    new = table("count-rest", rest, ["everyone"], n_entities=n)
    (finding,) = differencing_findings(released, new, T)
    assert finding.other.output == "count-all" and finding.other.quantity == COUNT


def test_an_entity_contributing_zero_to_a_sum_still_counts() -> None:
    definition = TableDefinition("zeros", ("g",), (("a",),), 1)
    everyone = table_aggregates(
        definition,
        np.arange(12),
        [np.zeros(12, int)],
        12,
        values=np.r_[np.zeros(2), np.ones(10)],
        measure="x",
    )
    tail = TableDefinition("tail", ("g",), (("a",),), 1)
    rest = table_aggregates(
        tail,
        np.arange(1, 12),
        [np.zeros(11, int)],
        12,
        values=np.r_[np.zeros(1), np.ones(10)],
        measure="x",
    )
    (finding,) = differencing_findings(everyone, rest, T)
    assert finding.isolated == 1


def test_small_pair_budget_gives_the_same_findings() -> None:
    frame = clients(_ages())
    frame["band16"] = np.where(frame.age <= 16, "0-16", "17+")
    frame["band15"] = np.where(frame.age <= 15, "0-15", "16+")
    n = len(frame)
    released = table("r", frame, ["band15"], ["everyone"], n_entities=n, margins=True)
    new = table("n", frame, ["band16"], ["everyone"], n_entities=n, margins=True)
    assert differencing_findings(released, new, T, pair_budget=1) == differencing_findings(
        released, new, T
    )


@pytest.mark.parametrize("threshold", [0, -3, 2.5, True])
def test_a_bad_threshold_is_refused(threshold: object) -> None:
    frame = pd.DataFrame({"id": [0], "everyone": ["all"]})
    cells = table("x", frame, ["everyone"], n_entities=1)
    with pytest.raises(InputError, match="threshold"):
        differencing_findings(cells, cells, threshold)  # type: ignore[arg-type]


def test_an_indexed_ledger_and_new_entities_give_the_same_findings() -> None:
    frame = clients(_ages())
    n = len(frame)
    early = frame[frame.id < 50]  # the ledger predates the last ten entities
    released = table("early", early, ["everyone"], n_entities=50)
    new = stack(
        [
            table("later", frame[frame.id < 53], ["everyone"], n_entities=n),
            table("fresh", frame[frame.id >= 50], ["everyone"], n_entities=n),
        ]
    )
    plain = differencing_findings(released, new, T)
    assert plain == differencing_findings(index_rows(released), new, T)
    assert _pairs(plain) == {("later", ("all",), "early", ("all",), 3)}
    # the other way round, the new output knows fewer entities than the ledger
    (reverse,) = differencing_findings(index_rows(new), released, T)
    assert (reverse.other.output, reverse.new_only, reverse.other_only) == ("later", 0, 3)


def test_bucket_counts_add_up_each_rows_entities_however_the_rows_are_chunked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    matrix = sparse.random(300, 5000, density=0.05, format="csr", random_state=1)
    whole = bucket_counts(matrix)
    assert (whole.sum(axis=1) == np.diff(matrix.indptr)).all()
    # a row's counts depend on its entities only: the same row elsewhere counts the same
    assert (bucket_counts(matrix[[7, 7]]) == whole[[7, 7]]).all()
    monkeypatch.setattr(differencing, "_ENTRIES_AT_ONCE", 100)  # many small chunks
    assert (bucket_counts(matrix) == whole).all()
