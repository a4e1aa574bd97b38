"""Mitigations of differencing findings: what each changes, what it costs, and whether the
changed output passes the ledger's checks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from output_checker.errors import InputError
from output_checker.ledger import (
    Aggregates,
    IndexedRows,
    TableDefinition,
    differencing_findings,
    index_rows,
    stack,
)
from output_checker.ledger.mitigations import Mitigation, MitigationKind, mitigations

from .helpers import clients, crosstab, table

T = 10


def _offer(
    released: Aggregates | IndexedRows,
    output: str,
    frame: pd.DataFrame,
    index: Sequence[str],
    columns: Sequence[str] = (),
    *,
    n: int | None = None,
    values: str | None = None,
    **options: Any,
) -> tuple[Mitigation, ...]:
    """The mitigations of the findings of a crosstab (with margins) of ``frame``, over ``n``
    entities (default: those of ``frame``); the table must have findings."""
    n = len(frame) if n is None else n
    new = table(output, frame, index, columns, n_entities=n, margins=True, values=values)
    findings = differencing_findings(released, new, T)
    assert findings, "the attack must be caught before it is mitigated"
    definition, codes = crosstab(output, frame, index, columns, margins=True)
    return mitigations(
        released,
        definition,
        frame["id"].to_numpy(),
        codes,
        n,
        findings,
        T,
        values=None if values is None else frame[values].to_numpy(dtype=np.float64),
        measure=values,
        **options,
    )


def _kind(offers: tuple[Mitigation, ...], kind: MitigationKind) -> list[Mitigation]:
    return [m for m in offers if m.kind is kind]


def _round(offers: tuple[Mitigation, ...], base: int) -> Mitigation:
    (offer,) = [m for m in _kind(offers, MitigationKind.ROUND) if m.base == base]
    return offer


def _subpopulation() -> pd.DataFrame:
    """60 clients in three regions; the only 16-year-old lives in the north."""
    regions = ["north"] * 25 + ["south"] * 20 + ["east"] * 15
    ages = [30] * 60
    ages[3] = 16
    return clients(ages, regions)


def test_subpopulation_attack_is_resolved_by_dropping_or_by_rounding_to_ten() -> None:
    frame = _subpopulation()
    released = table("by-region", frame, ["region"], n_entities=len(frame), margins=True)
    rest = frame[frame.age != 16]
    offers = _offer(released, "not-16", rest, ["region"], n=len(frame))

    (drop,) = _kind(offers, MitigationKind.DROP)
    assert drop.resolves and drop.unresolved == ()
    # the two cells that lost the 16-year-old; the margin relation alone does not give them
    # back (north = All - south - east with both unknown)
    assert {(c.key, c.primary) for c in drop.suppressed} == {(("north",), True), (("All",), True)}
    assert drop.cost.cells_suppressed == 2
    assert drop.description == "suppress 2 cells (2 primary, 0 secondary)"

    assert _round(offers, 10).resolves
    five = _round(offers, 5)
    assert not five.resolves
    assert "does not resolve" in five.description and "minimum base is 10" in five.description
    assert "below the minimum base 10" in five.unresolved[0]
    # no merge of regions hides the grand total, which lost the 16-year-old too
    assert _kind(offers, MitigationKind.MERGE) == []
    # a ledger indexed once gives the same offers
    assert _offer(index_rows(released), "not-16", rest, ["region"], n=len(frame)) == offers


def test_subpopulation_attack_on_a_sum_needs_a_base_above_twice_its_protection_level() -> None:
    frame = _subpopulation()
    n = len(frame)
    released = table("income", frame, ["region"], n_entities=n, margins=True, values="income")
    rest = frame[frame.age != 16]
    offers = _offer(
        released, "income-not-16", rest, ["region"], n=n, values="income", protection_level=100.0
    )
    (drop,) = _kind(offers, MitigationKind.DROP)
    assert drop.resolves
    assert {c.key for c in drop.suppressed if c.primary} == {("north",), ("All",)}
    assert [(m.base, m.resolves) for m in _kind(offers, MitigationKind.ROUND)] == [
        (5, False),
        (10, False),
    ]
    assert "minimum base 200" in _round(offers, 10).unresolved[0]


@pytest.mark.parametrize(("level", "resolving"), [(1.0, {10, 15}), (7.0, {15}), (8.0, set())])
def test_minimum_base_is_the_larger_of_t_and_twice_the_protection_level(
    level: float, resolving: set[int]
) -> None:
    frame = _subpopulation()
    released = table("by-region", frame, ["region"], n_entities=len(frame), margins=True)
    offers = _offer(
        released,
        "not-16",
        frame[frame.age != 16],
        ["region"],
        n=len(frame),
        protection_level=level,
        bases=(5, 10, 15),
    )
    assert {m.base for m in _kind(offers, MitigationKind.ROUND) if m.resolves} == resolving


def _bands() -> pd.DataFrame:
    """30 clients aged 10–12, 20 aged 13–15, one aged 16 and 12 aged 17–20, with the bands
    of two releases that differ only in where the 16-year-old falls."""
    ages = [10 + i % 3 for i in range(30)] + [13 + i % 3 for i in range(20)]
    ages += [16] + [17 + i % 4 for i in range(12)]
    frame = clients(ages)
    frame["a"] = pd.cut(frame.age, [9, 12, 15, 20], labels=["10-12", "13-15", "16-20"])
    frame["b"] = pd.cut(frame.age, [9, 12, 16, 20], labels=["10-12", "13-16", "17-20"])
    frame[["a", "b"]] = frame[["a", "b"]].astype(str)
    return frame


def test_overlapping_bands_are_resolved_by_merging_the_overlapping_band() -> None:
    frame = _bands()
    n = len(frame)
    released = table("bands-a", frame, ["a"], n_entities=n, margins=True)
    offers = _offer(released, "bands-b", frame, ["b"])
    merges = _kind(offers, MitigationKind.MERGE)
    assert merges and all(m.resolves for m in merges)
    best = merges[0]
    # 13-16 joins 17-20 (12 clients) rather than 10-12 (30): one level fewer
    assert best.description == "merge b levels 13-16 and 17-20"
    assert best.cost.levels_merged == 1
    assert [(m.variable, m.levels, m.label) for m in best.merges] == [
        ("b", ("13-16", "17-20"), "13-16+17-20")
    ]
    # published that way, nothing differs from bands-a by fewer than T clients...
    merged = frame.assign(b=frame.b.replace({"13-16": "13-20", "17-20": "13-20"}))
    again = table("bands-b", merged, ["b"], n_entities=n, margins=True)
    assert differencing_findings(released, again, T) == ()
    # ...whereas the other neighbour leaves 17-20 one client short of 16-20
    other = frame.assign(b=frame.b.replace({"10-12": "10-16", "13-16": "10-16"}))
    wrong = table("bands-b", other, ["b"], n_entities=n, margins=True)
    assert differencing_findings(released, wrong, T) != ()


def test_when_no_one_variable_resolves_two_are_merged() -> None:
    """The new table's margin (all bands, north) is two people away from a released count of
    the north without two of its 70-year-olds, and its margin (00-16, all regions) two away
    from a released count of the 0-16s without two of the east's. Merging bands never
    changes the first margin, merging regions never the second: only both together resolve,
    and that merge is offered once, with both variables' levels."""
    people = []
    for region in ("north", "south", "east"):
        people += [(region, 10)] * 20 + [(region, 40)] * 30 + [(region, 70)] * 20
    people += [("east", 40)] * 20  # the east is the largest: north joins the south
    frame = clients([age for _, age in people], [region for region, _ in people])
    frame["band"] = pd.cut(frame.age, [-1, 16, 64, 200], labels=["00-16", "17-64", "65+"])
    frame["band"] = frame["band"].astype(str)
    n = len(frame)
    north_70 = frame.index[(frame.region == "north") & (frame.age == 70)][:2]
    east_10 = frame.index[(frame.region == "east") & (frame.age == 10)][:2]
    released = stack(
        [
            table("north", frame[frame.region == "north"].drop(north_70), ["everyone"],
                  n_entities=n),
            table("young", frame[frame.age <= 16].drop(east_10), ["everyone"], n_entities=n),
        ]
    )  # fmt: skip
    offers = _offer(released, "by-band-region", frame, ["band"], ["region"])
    (merge,) = _kind(offers, MitigationKind.MERGE)
    assert merge.resolves and merge.cost.levels_merged == 2
    assert {(m.variable, m.levels) for m in merge.merges} == {
        ("band", ("00-16", "17-64")),
        ("region", ("north", "south")),
    }
    assert "band levels 00-16 and 17-64" in merge.description
    assert "region levels north and south" in merge.description
    # the merged table really passes: rebuilt by hand and checked again
    merged = frame.assign(
        band=frame.band.replace({"00-16": "00-64", "17-64": "00-64"}),
        region=frame.region.replace({"north": "north+south", "south": "north+south"}),
    )
    again = table("merged", merged, ["band"], ["region"], n_entities=n, margins=True)
    assert differencing_findings(released, again, T) == ()


def test_single_ages_merge_into_the_released_band() -> None:
    ages = [a for a in range(10, 16) for _ in range(12)] + [16] * 20 + [17] * 3
    ages += [a for a in range(18, 21) for _ in range(12)]
    frame = clients(ages)
    frame["band"] = pd.cut(frame.age, [9, 15, 17, 20], labels=["10-15", "16-17", "18-20"])
    frame["band"] = frame["band"].astype(str)
    released = table("bands", frame, ["band"], n_entities=len(frame), margins=True)
    offers = _offer(released, "ages", frame, ["age"])
    best = _kind(offers, MitigationKind.MERGE)[0]
    # 16 (20 clients) differs from the released 16-17 by the three 17-year-olds; 17 is the
    # neighbour with fewer clients (15 has 12)
    assert best.description == "merge age levels 16 and 17"
    assert best.merges[0].levels == (16, 17) and best.resolves
    record = json.loads(json.dumps([m.to_dict() for m in offers]))
    assert record[0]["merges"] == [{"variable": "age", "levels": [16, 17], "label": "16+17"}]
    assert record[0]["kind"] == "merge" and record[0]["cost"]["levels_merged"] == 1


def _region_by_sex() -> pd.DataFrame:
    """35 clients:       F   M   All
    north              12   2    14
    south              10  11    21
    All                22  13    35"""
    regions = ["north"] * 14 + ["south"] * 21
    frame = clients([30] * 35, regions)
    frame["sex"] = ["F"] * 12 + ["M"] * 2 + ["F"] * 10 + ["M"] * 11
    return frame


def test_costs_on_a_table_checked_by_hand() -> None:
    frame = _region_by_sex()
    shown = pd.crosstab(frame.region, frame.sex, margins=True)
    assert shown.to_numpy().tolist() == [[12, 2, 14], [10, 11, 21], [22, 13, 35]]
    released = table("by-region", frame, ["region"], n_entities=len(frame), margins=True)
    offers = _offer(released, "by-region-sex", frame, ["region"], ["sex"])

    # north/F is north less its 2 men (released north is 14), and within the table south/M
    # is All/M less the same 2: both are primaries, and the only inner rectangle through them
    # protects them
    (drop,) = _kind(offers, MitigationKind.DROP)
    assert drop.resolves
    assert {(c.key, c.primary) for c in drop.suppressed} == {
        (("north", "F"), True),
        (("south", "M"), True),
        (("north", "M"), False),
        (("south", "F"), False),
    }
    assert drop.description == "suppress 4 cells (2 primary, 2 secondary)"
    assert (drop.cost.cells_suppressed, drop.cost.text) == (4, "4 of 9 cells suppressed")

    # base 5: 12→10, 2→0, 14→15, 10, 11→10, 21→20, 22→20, 13→15, 35: changes 2+2+1+0+1+1+2+2+0
    five = _round(offers, 5)
    assert five.cost.mean_abs_change == pytest.approx(11 / 9)
    assert five.cost.max_abs_change == 2.0
    # base 10 (halves up): 12→10, 2→0, 14→10, 10, 11→10, 21→20, 22→20, 13→10, 35→40
    ten = _round(offers, 10)
    assert ten.cost.mean_abs_change == pytest.approx(20 / 9)
    assert ten.cost.max_abs_change == 5.0
    assert (five.resolves, ten.resolves) == (False, True)

    # either variable merged into one level resolves; each costs one level, 3 of 9 cells
    merges = _kind(offers, MitigationKind.MERGE)
    assert {m.description for m in merges} == {
        "merge region levels north and south",
        "merge sex levels F and M",
    }
    assert all(m.resolves and m.cost.levels_merged == 1 for m in merges)
    assert all("shows 6 cells instead of 9" in m.cost.text for m in merges)
    fewer = _offer(released, "by-region-sex", frame, ["region"], ["sex"], max_merges=1)
    assert len(_kind(fewer, MitigationKind.MERGE)) == 1


def test_drop_does_not_suppress_a_cell_released_already() -> None:
    frame = _region_by_sex()
    n = len(frame)
    south = frame[frame.region == "south"]
    released = stack(
        [
            table("by-region", frame, ["region"], n_entities=n, margins=True),
            table("south-by-sex", south, ["sex"], n_entities=n, margins=True),
        ]
    )
    offers = _offer(released, "by-region-sex", frame, ["region"], ["sex"])
    (drop,) = _kind(offers, MitigationKind.DROP)
    # south/M is south-by-sex's M: hiding it hides nothing, so All/M (which differs from it
    # by the two northern men) is hidden instead
    assert {c.key for c in drop.suppressed if c.primary} == {("north", "F"), ("All", "M")}
    assert drop.resolves


def test_re_releasing_a_leaky_table_cannot_be_mended_by_suppression() -> None:
    frame = _subpopulation()
    n = len(frame)
    rest = frame[frame.age != 16]
    released = stack(
        [
            table("by-region", frame, ["region"], n_entities=n, margins=True),
            table("not-16", rest, ["region"], n_entities=n, margins=True),  # the leak, out
        ]
    )
    offers = _offer(released, "not-16-again", rest, ["region"], n=n)
    (drop,) = _kind(offers, MitigationKind.DROP)
    assert not drop.resolves and drop.suppressed == ()
    assert "released already" in drop.unresolved[0]


def test_a_non_additive_count_table_cannot_be_protected_by_suppression() -> None:
    frame = _subpopulation()
    n = len(frame)
    # client 0 also has a record in the south: counted once in All, once in each region
    frame = pd.concat([frame, frame.iloc[[0]].assign(region="south")], ignore_index=True)
    released = table("by-region", frame, ["region"], n_entities=n, margins=True)
    offers = _offer(released, "not-16", frame[frame.age != 16], ["region"], n=n)
    (drop,) = _kind(offers, MitigationKind.DROP)
    assert not drop.resolves and "not additive" in drop.unresolved[0]
    assert _round(offers, 10).resolves


def test_nothing_to_mitigate_without_findings_of_the_table() -> None:
    frame = _subpopulation()
    n = len(frame)
    released = table("by-region", frame, ["region"], n_entities=n, margins=True)
    rest = frame[frame.age != 16]
    findings = differencing_findings(released, table("x", rest, ["region"], n_entities=n), T)
    assert findings
    codes, levels = pd.factorize(rest.region, sort=True)
    definition = TableDefinition("y", ("region",), (tuple(levels),), 1, margins=True)
    args = (released, definition, rest["id"].to_numpy(), [codes], n)
    assert mitigations(*args, findings, T) == ()
    assert mitigations(*args, (), T) == ()


@pytest.mark.parametrize(
    "options",
    [
        {"protection_level": 0.0},
        {"protection_level": float("nan")},
        {"bases": (0,)},
        {"bases": (True,)},
        {"bases": (2.5,)},
        {"max_merges": -1},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    frame = _subpopulation()
    released = table("by-region", frame, ["region"], n_entities=len(frame), margins=True)
    with pytest.raises(InputError):
        _offer(released, "not-16", frame[frame.age != 16], ["region"], n=len(frame), **options)
