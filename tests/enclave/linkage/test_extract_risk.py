"""Research-extract tables held to their dataset's microdata policy (issue 13)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enclave.linkage.errors import LinkageError
from enclave.linkage.extract_risk import protect_table
from output_checker.microdata.problem import RiskTarget
from output_checker.microdata.risk.frequencies import frequencies

QI = ["birth_year", "sex", "area"]


def _events(seed: int = 0, people: int = 400) -> pd.DataFrame:
    """An event table: each person 1-6 rows, person-level quasi-identifiers repeated."""
    rng = np.random.default_rng(seed)
    persons = pd.DataFrame(
        {
            "person": [f"P{i:04d}" for i in range(people)],
            "birth_year": rng.integers(1940, 2005, people),
            "sex": rng.choice(["F", "M"], people),
            "area": rng.choice(["AB", "CD", "EF", "GH"], people),
        }
    )
    rows = persons.loc[persons.index.repeat(rng.integers(1, 7, people))].reset_index(drop=True)
    rows["event"] = rng.integers(0, 100, len(rows))
    return rows


def test_a_person_repeated_in_many_rows_is_not_counted_as_many_people() -> None:
    """The attack: a person alone in their combination but with six rows would pass a
    row-level 5-anonymity check. Here every distinct person's combination is measured."""
    table = _events()
    loner = table["person"] == table["person"].iloc[0]
    table.loc[loner, ["birth_year", "sex", "area"]] = [1901, "F", "ZZ"]
    table = pd.concat([table, table[loner]] * 1, ignore_index=True)  # now 2-12 rows of them
    assert loner.sum() >= 1
    treated, risk = protect_table(table, "events", "person", QI, RiskTarget(k=5))
    units = treated[["person", *QI]].drop_duplicates()
    assert frequencies(units[QI]).fk.min() >= 5
    assert risk.before["not_k_anonymous"]["5"] > 0 and risk.after["not_k_anonymous"]["5"] == 0
    assert sum(risk.suppressed.values()) == int(units[QI].isna().sum().sum())
    # every row of a person carries the same treated values; other columns are untouched
    assert (treated.groupby("person")[QI].nunique(dropna=False) == 1).all().all()
    assert treated["event"].tolist() == table["event"].tolist()
    assert treated["person"].tolist() == table["person"].tolist()


def test_a_table_that_already_meets_the_policy_is_left_alone() -> None:
    table = _events(people=2000)
    table["birth_year"] = table["birth_year"] // 20 * 20  # coarse enough everywhere
    treated, risk = protect_table(table, "events", "person", QI, RiskTarget(k=5))
    assert treated is table and risk.suppressed == {}
    assert risk.before == risk.after and risk.after["not_k_anonymous"]["5"] == 0


def test_a_table_that_cannot_meet_the_policy_is_refused() -> None:
    table = _events(people=3)  # three people can never be 5-anonymous
    with pytest.raises(LinkageError, match="events cannot meet its microdata policy"):
        protect_table(table, "events", "person", QI, RiskTarget(k=5))


def test_the_report_holds_counts_and_names_never_values() -> None:
    table = _events(seed=3)
    _, risk = protect_table(table, "events", "person", QI, RiskTarget(k=10))
    text = repr(risk.to_dict())
    assert "P0001" not in text and "'AB'" not in text
    assert risk.to_dict()["quasi_identifiers"] == QI


def test_a_table_without_quasi_identifiers_is_not_measured() -> None:
    table = _events()
    treated, risk = protect_table(table, "events", "person", [], RiskTarget())
    assert treated is table and risk.before == {} and risk.quasi_identifiers == ()
