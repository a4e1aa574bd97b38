"""Published cells as sparse linear aggregates: the rows must match what pandas publishes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from output_checker.columns import ALL
from output_checker.errors import InputError
from output_checker.ledger import (
    COUNT,
    Aggregates,
    Kind,
    Quantity,
    TableDefinition,
    stack,
    table_aggregates,
)

from .helpers import table


def _records() -> pd.DataFrame:
    """Entities with several records each, so counting records would be wrong."""
    rng = np.random.default_rng(7)
    n = 400
    return pd.DataFrame(
        {
            "id": rng.integers(0, 120, n),
            "region": rng.choice(["north", "south", "east"], n),
            "sex": rng.choice(["f", "m"], n),
            "income": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 500.0, n)),
        }
    )


def _by_key(aggregates: Aggregates, values: np.ndarray) -> dict[tuple[object, ...], float]:
    return {aggregates.ref(r).key: values[r] for r in range(aggregates.n_rows)}


def test_count_rows_are_distinct_entities_per_cell_and_margin() -> None:
    frame = _records()
    cells = table("t1", frame, ["region"], ["sex"], n_entities=120, margins=True)
    counts = _by_key(cells, np.asarray(cells.weights.sum(axis=1)).ravel())
    expected = frame.groupby(["region", "sex"])["id"].nunique().to_dict()
    expected |= {(r, ALL): v for r, v in frame.groupby("region")["id"].nunique().items()}
    expected |= {(ALL, s): v for s, v in frame.groupby("sex")["id"].nunique().items()}
    expected[(ALL, ALL)] = frame["id"].nunique()
    assert counts == pytest.approx(expected)
    assert set(np.unique(cells.weights.data)) == {1.0}
    assert cells.quantities == (COUNT,)


def test_sum_rows_hold_each_entitys_total_and_skip_missing_values() -> None:
    frame = _records()
    cells = table("t2", frame, ["region"], n_entities=120, margins=True, values="income")
    sums = _by_key(cells, np.asarray(cells.weights.sum(axis=1)).ravel())
    expected = {(r,): v for r, v in frame.groupby("region")["income"].sum().items()}
    expected[(ALL,)] = frame["income"].sum()
    assert sums == pytest.approx(expected)
    north = next(r for r in range(cells.n_rows) if cells.ref(r).key == ("north",))
    row = cells.weights.getrow(north)
    mine = frame[(frame.region == "north") & frame.income.notna()]
    per_entity = mine.groupby("id")["income"].sum()
    assert dict(zip(row.indices.tolist(), row.data.tolist(), strict=True)) == pytest.approx(
        per_entity.to_dict()
    )
    assert cells.quantities == (Quantity(Kind.SUM, "income"),)


def test_empty_cells_are_published_rows_without_contributors() -> None:
    frame = pd.DataFrame({"id": [0, 1, 2], "a": ["x", "x", "y"], "b": ["u", "v", "v"]})
    cells = table("t3", frame, ["a"], ["b"], n_entities=3)
    assert cells.n_rows == 4
    sizes = _by_key(cells, np.diff(cells.weights.indptr))
    assert sizes[("y", "u")] == 0


def test_hierarchical_tables_publish_every_prefix_subtotal() -> None:
    definition = TableDefinition(
        "t4", ("a", "b", "c"), (("a0", "a1"), ("b0", "b1", "b2"), ("c0",)), 2, hierarchical=True
    )
    assert definition.published_levels() == [(0, 1, 2), (0, 1), (0, 2), (0,), (2,), ()]
    codes = [np.array([0, 1]), np.array([2, 0]), np.array([0, 0])]
    cells = table_aggregates(definition, np.array([0, 1]), codes, 2)
    assert cells.n_rows == 6 + 6 + 2 + 2 + 1 + 1


def test_records_in_a_missing_group_are_in_no_cell() -> None:
    definition = TableDefinition("t5", ("a",), (("x",),), 1, margins=True)
    cells = table_aggregates(definition, np.array([0, 1]), [np.array([0, -1])], 2)
    assert cells.weights.toarray().tolist() == [[1.0, 0.0], [1.0, 0.0]]


@pytest.mark.parametrize(
    ("entity", "codes", "message"),
    [
        (np.array([0, 5]), [np.array([0, 0])], "entity indices"),
        (np.array([0, 1]), [np.array([0, 3])], "exceeds"),
        (np.array([0, 1]), [np.array([0.0, 1.0])], "integer"),
        (np.array([0, 1]), [np.array([0, 0]), np.array([0, 0])], "one code array"),
    ],
)
def test_bad_input_is_refused_with_one_line(
    entity: np.ndarray, codes: list[np.ndarray], message: str
) -> None:
    definition = TableDefinition("bad", ("a",), (("x", "y"),), 1)
    with pytest.raises(InputError, match=message):
        table_aggregates(definition, entity, codes, 2)


def test_a_sum_needs_its_measure_and_a_count_has_none() -> None:
    definition = TableDefinition("bad", ("a",), (("x",),), 1)
    with pytest.raises(InputError, match="name the measure"):
        table_aggregates(definition, [0], [np.array([0])], 1, values=[1.0])
    with pytest.raises(InputError, match="no measure"):
        table_aggregates(definition, [0], [np.array([0])], 1, measure="income")


def test_stack_widens_to_new_entities_and_keeps_each_rows_provenance() -> None:
    first = table("early", pd.DataFrame({"id": [0, 1], "a": ["x", "y"]}), ["a"], n_entities=2)
    frame = pd.DataFrame({"id": [0, 2, 3], "a": ["x", "x", "y"], "v": [1.0, 2.0, 3.0]})
    second = table("late", frame, ["a"], n_entities=4, values="v")
    ledger = stack([first, second])
    assert ledger.weights.shape == (4, 4)
    refs = [ledger.ref(r) for r in range(4)]
    assert [(r.output, r.key, r.quantity.kind) for r in refs] == [
        ("early", ("x",), Kind.COUNT),
        ("early", ("y",), Kind.COUNT),
        ("late", ("x",), Kind.SUM),
        ("late", ("y",), Kind.SUM),
    ]
    assert ledger.weights.toarray()[2].tolist() == [1.0, 0.0, 2.0, 0.0]
