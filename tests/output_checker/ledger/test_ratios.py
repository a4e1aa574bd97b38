"""Means and percentages in the ledger, by attempting the attacks of issue 11 on them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from output_checker.errors import InputError
from output_checker.ledger import (
    COUNT,
    Aggregates,
    DifferencingFinding,
    Kind,
    Quantity,
    TableDefinition,
    differencing_findings,
    index_rows,
    lp_findings,
    percentage_aggregates,
    resolve_ratios,
    stack,
    table_aggregates,
    weighted_count,
)

from .helpers import clients, table

T = 10
MEAN_INCOME = Quantity(Kind.MEAN, "income")
SUM_INCOME = Quantity(Kind.SUM, "income")
PERCENT = Quantity(Kind.PERCENT)


def _definition(
    output: str, frame: pd.DataFrame, variables: Sequence[str], margins: bool
) -> tuple[TableDefinition, list[np.ndarray]]:
    codes, levels = [], []
    for name in variables:
        code, uniques = pd.factorize(frame[name], sort=True)
        codes.append(code)
        levels.append(tuple(uniques.tolist()))
    definition = TableDefinition(output, tuple(variables), tuple(levels), 1, margins=margins)
    return definition, codes


def mean_table(
    output: str, frame: pd.DataFrame, by: Sequence[str], n: int, with_count: bool = False
) -> Aggregates:
    """Mean income per cell of ``by`` (one index variable, the rest on the columns)."""
    definition, codes = _definition(output, frame, by, margins=False)
    return table_aggregates(
        definition,
        frame["id"].to_numpy(),
        codes,
        n,
        values=frame["income"].to_numpy(dtype=np.float64),
        measure="income",
        aggregation="mean",
        with_count=with_count,
    )


def percent_table(
    output: str,
    frame: pd.DataFrame,
    by: Sequence[str],
    n: int,
    per: Sequence[str],
    margins: bool = False,
) -> Aggregates:
    definition, codes = _definition(output, frame, by, margins)
    return percentage_aggregates(definition, frame["id"].to_numpy(), codes, n, per=per)


def _region_clients() -> pd.DataFrame:
    """40 clients in north, 35 in south; three 16-year-olds in north, two in south. Four
    north clients (the three 16-year-olds among them) and 30 south clients (both
    16-year-olds among them) have condition X."""
    regions = ["north"] * 40 + ["south"] * 35
    ages = [30] * 37 + [16] * 3 + [40] * 33 + [16] * 2
    frame = clients(ages, regions)
    frame["x"] = np.where(frame.id.between(36, 39) | (frame.id >= 45), "yes", "no")
    return frame


def _pairs(findings: tuple[DifferencingFinding, ...]) -> set[tuple[object, ...]]:
    return {
        (f.new.output, f.new.key, f.new.quantity, f.other.output, f.other.key, f.isolated, f.ratio)
        for f in findings
    }


def test_a_mean_and_a_count_reveal_a_sum_that_a_subpopulation_sum_differences() -> None:
    frame = _region_clients()
    n = len(frame)
    counts = table("count-by-region", frame, ["region"], n_entities=n)
    means = mean_table("mean-by-region", frame, ["region"], n)
    rest = frame[frame.age != 16]
    new = table("income-not-16", rest, ["region"], n_entities=n, values="income")
    findings = differencing_findings(stack([counts, means]), new, T)
    assert _pairs(findings) == {
        ("income-not-16", ("north",), SUM_INCOME, "mean-by-region", ("north",), 3, False),
        ("income-not-16", ("south",), SUM_INCOME, "mean-by-region", ("south",), 2, False),
    }
    assert {f.other.quantity.label for f in findings} == {"mean of income"}
    # what the attacker computes: mean × count minus the new sum is the 16-year-olds' income
    north = frame[frame.region == "north"]
    revealed = north.income.mean() * north.id.nunique() - rest[rest.region == "north"].income.sum()
    assert revealed == pytest.approx(north[north.age == 16].income.sum())
    # without the count table the mean's denominator is unknown: nothing to subtract
    assert differencing_findings(means, new, T) == ()


def test_a_new_count_that_resolves_an_earlier_mean_is_caught() -> None:
    frame = _region_clients()
    n = len(frame)
    released = stack(
        [
            mean_table("mean-by-region", frame, ["region"], n),
            table(
                "income-not-16", frame[frame.age != 16], ["region"], n_entities=n, values="income"
            ),
        ]
    )
    new = table("count-by-region", frame, ["region"], n_entities=n)
    for ledger in (released, index_rows(released)):
        findings = differencing_findings(ledger, new, T)
        assert _pairs(findings) == {
            ("mean-by-region", ("north",), MEAN_INCOME, "income-not-16", ("north",), 3, False),
            ("mean-by-region", ("south",), MEAN_INCOME, "income-not-16", ("south",), 2, False),
        }
        assert not any(f.other_is_new for f in findings)


def test_a_mean_shown_with_its_n_is_a_sum() -> None:
    frame = _region_clients()
    n = len(frame)
    released = mean_table("mean-and-n", frame, ["region"], n, with_count=True)
    assert {released.ref(r).quantity for r in range(released.n_rows)} == {MEAN_INCOME, COUNT}
    new = table("income-not-16", frame[frame.age != 16], ["region"], n_entities=n, values="income")
    assert len(differencing_findings(released, new, T)) == 2
    assert differencing_findings(mean_table("mean", frame, ["region"], n), new, T) == ()


def _weighted(output: str, frame: pd.DataFrame, n: int, aggregation: str) -> Aggregates:
    """By region, weighted by ``w``: the weighted count (the sum of w), or the weighted sum
    or mean of income (w·income over the sum of w)."""
    definition, codes = _definition(output, frame, ["region"], margins=False)
    w = frame["w"].to_numpy(dtype=np.float64)
    if aggregation == "count":
        return table_aggregates(
            definition, frame["id"].to_numpy(), codes, n, w, weighted_count("w").measure
        )
    return table_aggregates(
        definition,
        frame["id"].to_numpy(),
        codes,
        n,
        frame["income"].to_numpy(dtype=np.float64) * w,
        "income",
        aggregation="mean" if aggregation == "mean" else "sum",
        weighted_by="w",
    )


def test_a_weighted_mean_and_its_weighted_count_reveal_a_weighted_sum() -> None:
    """A mean weighted by w times the sum of w over the same people is the weighted sum; a
    new weighted sum without the 16-year-olds then isolates theirs. An unweighted count of
    the same people is not the weighted mean's denominator, and resolves nothing."""
    frame = _region_clients()
    frame["w"] = 1.0 + (frame.id % 3)
    n = len(frame)
    means = _weighted("weighted-mean", frame, n, "mean")
    new = _weighted("weighted-sum-not-16", frame[frame.age != 16], n, "sum")
    weighted_sum = Quantity(Kind.SUM, "income", weights="w")
    released = stack([_weighted("weighted-count", frame, n, "count"), means])
    findings = differencing_findings(released, new, T)
    assert _pairs(findings) == {
        ("weighted-sum-not-16", ("north",), weighted_sum, "weighted-mean", ("north",), 3, False),
        ("weighted-sum-not-16", ("south",), weighted_sum, "weighted-mean", ("south",), 2, False),
    }
    assert {f.other.quantity.label for f in findings} == {"mean of income weighted by w"}
    unweighted = stack([table("count-by-region", frame, ["region"], n_entities=n), means])
    assert differencing_findings(unweighted, new, T) == ()
    # nor is an unweighted sum of income subtracted from the weighted one
    plain = table("income", frame, ["region"], n_entities=n, values="income")
    assert differencing_findings(plain, new, T) == ()
    with pytest.raises(InputError, match="weighted count is a sum"):
        Quantity(Kind.COUNT, weights="w")


def test_a_count_of_other_entities_does_not_resolve_a_mean() -> None:
    frame = _region_clients()
    n = len(frame)
    frame.loc[frame.id == 5, "income"] = np.nan  # one north client without an income
    counts = table("count-by-region", frame, ["region"], n_entities=n)
    means = mean_table("mean-by-region", frame, ["region"], n)
    new = table("income-not-16", frame[frame.age != 16], ["region"], n_entities=n, values="income")
    findings = differencing_findings(stack([counts, means]), new, T)
    # north's mean is over 39 clients, its count over 40: only south's mean is resolved
    assert {f.new.key for f in findings} == {("south",)}


def test_two_means_over_nearly_equal_populations_are_not_subtracted() -> None:
    frame = _region_clients()
    n = len(frame)
    means = mean_table("mean-by-region", frame, ["region"], n)
    new = mean_table("mean-not-16", frame[frame.age != 16], ["region"], n)
    assert differencing_findings(means, new, T) == ()
    counts = table("count-by-region", frame, ["region"], n_entities=n)
    new_counts = table("count-not-16", frame[frame.age != 16], ["region"], n_entities=n)
    both = differencing_findings(stack([means, counts]), stack([new, new_counts]), T)
    means_found = {f.new.key for f in both if f.new.quantity == MEAN_INCOME}
    assert means_found == {("north",), ("south",)}


@pytest.mark.parametrize("resolved_by_caller", [True, False])
def test_a_mean_and_a_count_pin_a_hidden_sum_in_the_lp_audit(resolved_by_caller: bool) -> None:
    frame = _region_clients()
    n = len(frame)
    released = stack(
        [
            table("count-by-region", frame, ["region"], n_entities=n),
            mean_table("mean-by-region", frame, ["region"], n),
        ]
    )
    if resolved_by_caller:
        released = resolve_ratios(released)
    new = table("income-by-region-age", frame, ["region", "age"], n_entities=n, values="income")
    keys = [new.ref(r).key for r in range(new.n_rows)]
    hidden = [keys.index(("north", 16))]
    (finding,) = lp_findings(released, new, hidden, upl=1.0, lpl=1.0)
    truth = frame[(frame.region == "north") & (frame.age == 16)].income.sum()
    assert (finding.lo, finding.hi) == pytest.approx((truth, truth))
    assert finding.earlier_outputs == ("mean-by-region",)
    assert MEAN_INCOME in {ref.quantity for ref in finding.binding}


def test_a_mean_without_its_count_pins_nothing_in_the_lp_audit() -> None:
    frame = _region_clients()
    n = len(frame)
    released = mean_table("mean-by-region", frame, ["region"], n)
    new = table("income-by-region-age", frame, ["region", "age"], n_entities=n, values="income")
    keys = [new.ref(r).key for r in range(new.n_rows)]
    hidden = [keys.index(("north", 16))]
    assert lp_findings(released, new, hidden, upl=1.0, lpl=1.0) == ()
    assert lp_findings(None, new, hidden, upl=1.0, lpl=1.0) == ()


def test_a_small_numerator_is_revealed_by_a_percentage_and_its_denominator() -> None:
    frame = _region_clients()
    n = len(frame)
    counts = table("count-by-region", frame, ["region"], n_entities=n)
    new = percent_table("share-with-x", frame, ["region", "x"], n, per=["region"])
    findings = differencing_findings(counts, new, T)
    # north: 4 with X; south: 5 without X. Each share and the count give away the small
    # numerator, and the complementary share's numerator differs from the count by it.
    assert _pairs(findings) == {
        ("share-with-x", ("north", "yes"), PERCENT, "count-by-region", ("north",), 4, True),
        ("share-with-x", ("north", "no"), PERCENT, "count-by-region", ("north",), 4, False),
        ("share-with-x", ("south", "no"), PERCENT, "count-by-region", ("south",), 5, True),
        ("share-with-x", ("south", "yes"), PERCENT, "count-by-region", ("south",), 5, False),
    }
    assert {f.new.quantity.label for f in findings} == {"percentage"}
    # without the counts nobody knows the denominators
    assert differencing_findings(None, new, T) == ()


def test_a_percentages_numerator_differenced_against_an_earlier_count_is_caught() -> None:
    frame = _region_clients()
    n = len(frame)
    adults_with_x = frame[(frame.x == "yes") & (frame.age != 16)]
    released = stack(
        [
            table("count-by-region", frame, ["region"], n_entities=n),
            table("adults-with-x", adults_with_x, ["region"], n_entities=n),
        ]
    )
    new = percent_table("share-with-x", frame, ["region", "x"], n, per=["region"])
    pairs = _pairs(differencing_findings(released, new, T))
    assert (
        "share-with-x",
        ("north", "yes"),
        PERCENT,
        "adults-with-x",
        ("north",),
        3,
        False,
    ) in pairs
    assert (
        "share-with-x",
        ("south", "yes"),
        PERCENT,
        "adults-with-x",
        ("south",),
        2,
        False,
    ) in pairs
    # without the count of everyone by region, the shares' numerators stay unknown
    alone = table("adults-with-x", adults_with_x, ["region"], n_entities=n)
    assert differencing_findings(alone, new, T) == ()


def test_a_re_release_with_one_category_merged_is_caught() -> None:
    regions = ["north"] * 30 + ["south"] * 25 + ["east"] * 20 + ["west"] * 3
    frame = clients([30] * len(regions), regions)
    n = len(frame)
    frame["merged"] = frame.region.replace({"east": "east+west", "west": "east+west"})
    released = table("by-region", frame, ["region"], n_entities=n, margins=True)
    new = table("merged", frame, ["merged"], n_entities=n, margins=True)
    assert {
        (f.new.key, f.other.key, f.isolated) for f in differencing_findings(released, new, T)
    } == {(("east+west",), ("east",), 3)}
    # the same for a mean table whose cell sizes were released: the west's income comes out
    counts = table("count-by-region", frame, ["region"], n_entities=n)
    means = mean_table("mean-by-region", frame, ["region"], n)
    merged_means = stack(
        [
            mean_table("mean-merged", frame, ["merged"], n),
            table("count-merged", frame, ["merged"], n_entities=n),
        ]
    )
    found = _pairs(differencing_findings(stack([counts, means]), merged_means, T))
    assert found == {
        ("mean-merged", ("east+west",), MEAN_INCOME, "mean-by-region", ("east",), 3, False),
        ("count-merged", ("east+west",), COUNT, "count-by-region", ("east",), 3, False),
    }


def test_percentage_rows_match_pandas_normalised_crosstabs() -> None:
    rng = np.random.default_rng(3)
    n = 200
    frame = pd.DataFrame(
        {"id": np.arange(n), "a": rng.choice(["p", "q", "r"], n), "b": rng.choice(["u", "v"], n)}
    )
    cases: list[tuple[list[str], Literal["index", "columns", "all"]]] = [
        (["a"], "index"),
        (["b"], "columns"),
        ([], "all"),
    ]
    for per, normalize in cases:
        cells = percent_table("pct", frame, ["a", "b"], n, per=per, margins=True)
        numerator = np.asarray(cells.weights.sum(axis=1)).ravel()
        denominator = np.asarray(cells.denominators.sum(axis=1)).ravel()[cells.denominator_of]
        shown: dict[object, float] = {
            cells.ref(r).key: numerator[r] / denominator[r] for r in range(cells.n_rows)
        }
        crosstab = pd.crosstab(frame.a, frame.b, normalize=normalize, margins=True)
        expected = crosstab.stack().to_dict()
        assert len(expected) == crosstab.size > 6  # margins included
        assert {key: shown[key] for key in expected} == pytest.approx(expected)


def test_a_resolved_ratio_keeps_showing_what_it_showed() -> None:
    frame = _region_clients()
    n = len(frame)
    ledger = stack(
        [
            table("count-by-region", frame, ["region"], n_entities=n),
            mean_table("mean-by-region", frame, ["region"], n),
            percent_table("share-with-x", frame, ["region", "x"], n, per=["region"]),
        ]
    )
    resolved = resolve_ratios(ledger)
    assert not resolved.is_ratio.any() and ledger.is_ratio.sum() == 2 + 4
    compared = [resolved.quantities[q] for q in resolved.quantity_of]
    shown = [resolved.ref(r).quantity for r in range(resolved.n_rows)]
    assert compared == [COUNT] * 2 + [SUM_INCOME] * 2 + [COUNT] * 4
    assert shown == [COUNT] * 2 + [MEAN_INCOME] * 2 + [PERCENT] * 4
    assert _same(resolve_ratios(resolved), resolved)
    # a suppressed count is no one's denominator
    known = np.ones(ledger.n_rows, dtype=bool)
    known[0] = False  # north's count
    partly = resolve_ratios(ledger, known)
    assert [partly.ref(int(r)).key for r in np.flatnonzero(partly.is_ratio)] == [
        ("north",),
        ("north", "no"),
        ("north", "yes"),
    ]
    with pytest.raises(InputError, match="mask"):
        resolve_ratios(ledger, [True])


def _same(a: Aggregates, b: Aggregates) -> bool:
    return (
        a.quantities == b.quantities
        and np.array_equal(a.quantity_of, b.quantity_of)
        and np.array_equal(a.shown_of, b.shown_of)
    )


def test_a_percentage_of_a_resolved_percentage_is_resolved_too() -> None:
    frame = _region_clients()
    frame["y"] = np.where(frame.id % 3 == 0, "yes", "no")
    n = len(frame)
    ledger = stack(
        [
            table("count-by-region", frame, ["region"], n_entities=n),
            percent_table("share-with-x", frame, ["region", "x"], n, per=["region"]),
            percent_table("share-y-of-x", frame, ["region", "x", "y"], n, per=["region", "x"]),
        ]
    )
    assert not resolve_ratios(ledger).is_ratio.any()
    # without the first percentage, the second's denominators are unknown
    counts = table("count-by-region", frame, ["region"], n_entities=n)
    second = percent_table("share-y-of-x", frame, ["region", "x", "y"], n, per=["region", "x"])
    assert resolve_ratios(stack([counts, second])).is_ratio.sum() == second.n_rows == 8


def test_stack_keeps_each_percentages_denominator() -> None:
    frame = _region_clients()
    n = len(frame)
    first = percent_table("a", frame, ["region", "x"], n, per=["region"])
    second = percent_table("b", frame[frame.id < 50], ["x", "region"], 50, per=["x"])
    both = stack([first, second])
    assert both.denominators.shape == (
        first.denominators.shape[0] + second.denominators.shape[0],
        n,
    )
    for part, rows in ((first, range(4)), (second, range(4, 8))):
        for r in rows:
            local = r - rows.start
            mine = part.denominators[part.denominator_of[local]].indices
            assert both.denominators[both.denominator_of[r]].indices.tolist() == mine.tolist()


def test_bad_ratio_inputs_are_refused_with_one_line() -> None:
    definition = TableDefinition("bad", ("a",), (("x",),), 1)
    with pytest.raises(InputError, match="needs the measure's values"):
        table_aggregates(definition, [0], [np.array([0])], 1, aggregation="mean")
    with pytest.raises(InputError, match="needs the measure's values"):
        table_aggregates(definition, [0], [np.array([0])], 1, with_count=True)
    with pytest.raises(InputError, match='"sum" or "mean"'):
        table_aggregates(
            definition,
            [0],
            [np.array([0])],
            1,
            values=[1.0],
            measure="v",
            aggregation="max",  # type: ignore[arg-type]
        )
    with pytest.raises(InputError, match="per names"):
        percentage_aggregates(definition, [0], [np.array([0])], 1, per=["b"])
    with pytest.raises(InputError, match="names its measure"):
        Quantity(Kind.MEAN)
    with pytest.raises(InputError, match="names none"):
        Quantity(Kind.PERCENT, "income")
    assert (MEAN_INCOME.label, PERCENT.label, COUNT.label) == (
        "mean of income",
        "percentage",
        "count",
    )
    assert (MEAN_INCOME.numerator, PERCENT.numerator) == (SUM_INCOME, COUNT)


Populations = tuple[list[frozenset[int]], list[frozenset[int]], list[frozenset[int]], int]


@st.composite
def _populations(draw: st.DrawFn) -> Populations:
    """Released counts, released means, new outputs (counts and means) over 12 entities,
    drawn around a few base populations so that equal and nearly equal ones are common."""
    pool = draw(st.lists(st.frozensets(st.integers(0, 11), max_size=12), min_size=1, max_size=4))
    base = st.sampled_from(pool)
    nearby = st.tuples(base, st.frozensets(st.integers(0, 11), min_size=1, max_size=2))
    population = base | nearby.map(lambda drawn: drawn[0] ^ drawn[1])
    released_counts = draw(st.lists(population, max_size=4))
    released_means = draw(st.lists(population, max_size=4))
    new = draw(st.lists(population, min_size=1, max_size=4))
    return released_counts, released_means, new, draw(st.integers(1, 6))


def _single_cells(names: list[str], sets: list[frozenset[int]], mean: bool) -> list[Aggregates]:
    """One single-cell output per population: its count, or the mean of income over it."""
    parts = []
    for name, members in zip(names, sets, strict=True):
        entity = np.asarray(sorted(members), dtype=np.int64)
        definition = TableDefinition(name, ("filter",), (("in",),), 1)
        codes = [np.zeros(entity.size, dtype=np.int64)]
        values = 1000.0 + entity if mean else None
        parts.append(
            table_aggregates(
                definition,
                entity,
                codes,
                12,
                values=values,
                measure="income" if mean else None,
                aggregation="mean" if mean else "sum",
            )
        )
    return parts


@settings(max_examples=80, deadline=None, derandomize=True)
@given(_populations())
def test_ratio_findings_match_a_naive_model_of_the_attacker(populations: Populations) -> None:
    released_counts, released_means, new_sets, threshold = populations
    # new outputs alternate: counts at even positions, means at odd ones
    rows = [(f"rc{k}", s, "count") for k, s in enumerate(released_counts)]
    rows += [(f"rm{k}", s, "mean") for k, s in enumerate(released_means)]
    rows += [(f"n{k}", s, "mean" if k % 2 else "count") for k, s in enumerate(new_sets)]
    counts = {s for _, s, kind in rows if kind == "count" and s}
    released_alone = {s for s in released_counts if s}
    compared = {
        name: "count" if kind == "count" else "sum" if s in counts else None
        for name, s, kind in rows
    }
    probes = [name for name, _, _ in rows if name.startswith("n")]
    probes += [
        name
        for name, s, kind in rows
        if name.startswith("rm") and s in counts and s not in released_alone
    ]
    order = {name: i for i, (name, _, _) in enumerate(rows)}
    members = {name: s for name, s, _ in rows}
    expected: set[tuple[str, str, int, int, bool]] = set()
    for p in probes:
        if compared[p] is None:
            continue
        for o, b, _ in rows:
            a = members[p]
            pair_once = o not in probes or order[o] > order[p]
            same = compared[o] == compared[p]
            if same and pair_once and a & b and 0 < len(a ^ b) < threshold:
                expected.add((p, o, len(a - b), len(b - a), False))
        if compared[p] == "sum" and 0 < len(members[p]) < threshold:
            expected.add((p, "denominator", len(members[p]), 0, True))

    parts = _single_cells([f"rc{k}" for k in range(len(released_counts))], released_counts, False)
    parts += _single_cells([f"rm{k}" for k in range(len(released_means))], released_means, True)
    released = stack(parts) if parts else None
    new = stack(
        [_single_cells([f"n{k}"], [s], mean=bool(k % 2))[0] for k, s in enumerate(new_sets)]
    )
    findings = differencing_findings(released, new, threshold)
    found = {
        (
            f.new.output,
            "denominator" if f.ratio else f.other.output,
            f.new_only,
            f.other_only,
            f.ratio,
        )
        for f in findings
    }
    assert len(found) == len(findings)
    assert found == expected
    for f in findings:
        if f.ratio:
            assert f.other.quantity == COUNT and members[f.other.output] == members[f.new.output]
