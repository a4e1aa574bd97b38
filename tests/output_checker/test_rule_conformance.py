"""One conformance suite over every rule and every registry entry (STYLE: pure core)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from output_checker import Parameters, registry
from output_checker.aggregation import NAMES, Aggregation
from output_checker.rules import RULES
from output_checker.status import Status
from output_checker.table import LaidTable, TableRequest, lay_out


def _tables() -> dict[str, LaidTable]:
    rng = np.random.default_rng(5)
    n = 300
    frame = pd.DataFrame(
        {
            "a": pd.Categorical(rng.choice(["x", "y"], n), ["x", "y", "empty"]),
            "b": rng.choice(["p", "q", "r"], n),
            "v": np.where(rng.random(n) < 0.2, np.nan, rng.normal(100, 50, n)),
            "id": rng.integers(0, 120, n),
        }
    )
    frame.loc[frame["b"] == "r", "v"] = np.nan  # an all-missing column of cells
    out = {}
    for agg in ("count", "sum", "mean", "median", "max", "mode", "std"):
        request = TableRequest(
            index=("a",),
            columns=("b",),
            values=None if agg == "count" else "v",
            aggregation=Aggregation.parse(agg),
            entity="id",
            margins=True,
        )
        out[agg] = lay_out(frame, request, max_cells=10_000, depth=3, with_totals=True)
    return out


TABLES = _tables()


@pytest.mark.parametrize("conventions", ["default", "acro"])
@pytest.mark.parametrize("rule_id", sorted(RULES))
@pytest.mark.parametrize("agg", sorted(TABLES))
def test_every_rule_is_pure_total_and_explained(rule_id: str, agg: str, conventions: str) -> None:
    table = TABLES[agg]
    params = Parameters.for_conventions(conventions)
    before = copy.deepcopy(table.evidence)
    first = RULES[rule_id](table, params)
    second = RULES[rule_id](table, params)
    assert first.rule == rule_id
    assert first.status.shape == (table.n_cells,) and first.status.dtype == np.int8
    assert set(np.unique(first.status)) <= {int(s) for s in Status}
    assert np.array_equal(first.status, second.status)  # deterministic
    for name in before.__dataclass_fields__:
        assert np.array_equal(getattr(before, name), getattr(table.evidence, name), equal_nan=True)
    assert first.description
    for values in first.details.values():
        assert values.shape[0] == table.n_cells
    if first.protection is not None:
        assert (first.protection[first.status == Status.FAIL] >= 0).all()


def test_registry_names_only_existing_rules_and_covers_every_aggregation() -> None:
    for conventions, table in registry.TABLE_RULES.items():
        for output_type, rule_ids in table.items():
            assert output_type in registry.OUTPUT_TYPES
            assert set(rule_ids) <= set(RULES), (conventions, output_type)
    for name in NAMES:
        output_type = registry.output_type_of(
            Aggregation.parse(f"{name}(0.5)" if name == "quantile" else name)
        )
        for conventions in registry.TABLE_RULES:
            assert registry.rules_for(output_type, conventions)


def test_unknown_output_types_have_no_rules() -> None:
    assert registry.rules_for("sankey diagram", "default") is None


@pytest.mark.parametrize(
    ("output_type", "status"),
    [("custom", Status.REVIEW), ("sankey diagram", Status.REVIEW)],
)
def test_outputs_without_rules_are_never_passed(
    tmp_path: pytest.TempPathFactory, output_type: str, status: Status
) -> None:
    import hashlib
    from pathlib import Path

    from output_checker.files import check_file

    path = Path(str(tmp_path)) / "figure.png"
    path.write_bytes(b"\x89PNG fake bytes")
    result = check_file(path, output_type)
    assert result.status == status
    assert result.to_dict()["output"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
