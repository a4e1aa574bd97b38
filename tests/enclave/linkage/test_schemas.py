"""Per-agency schemas: pandera checks reported row by row, unexpected columns refused."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from enclave.linkage.schemas import SCHEMAS, Field, IdentifierLayout, TableSchema, typed, validate

TODAY = date(2026, 6, 15)


def frame(rows: list[dict[str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, dtype="string")


def errors_of(data: pd.DataFrame, schema: TableSchema) -> list[tuple[int, str, str]]:
    lines = list(range(2, len(data) + 2))
    found = validate(data, schema, file="f.csv", lines=lines, today=TODAY)
    return [(e.line, e.column, e.message) for e in found]


def test_valid_rows_pass_and_are_typed() -> None:
    schema = SCHEMAS["justice.convictions"]
    data = frame(
        [
            {
                "record_key": "k1",
                "offence_id": "O1",
                "conviction_date": "2020-02-29",
                "disposal": "custody",
                "sentence_months": "12",
            },
            {
                "record_key": "k1",
                "offence_id": "O2",
                "conviction_date": "2021-01-01",
                "disposal": "fine",
                "sentence_months": None,
            },
        ]
    )
    assert errors_of(data, schema) == []
    out = typed(data, schema)
    assert str(out["conviction_date"].dtype) == "datetime64[ms]"
    assert out["sentence_months"].tolist()[0] == 12 and out["sentence_months"].isna().tolist()[1]


def test_every_bad_value_is_reported_with_its_line() -> None:
    schema = SCHEMAS["justice.convictions"]
    data = frame(
        [
            {
                "record_key": "k1",
                "offence_id": "O1",
                "conviction_date": "2021-02-30",
                "disposal": "custody",
                "sentence_months": "12",
            },
            {
                "record_key": None,
                "offence_id": "O2",
                "conviction_date": "1850-01-01",
                "disposal": "flogging",
                "sentence_months": "-3",
            },
        ]
    )
    found = errors_of(data, schema)
    assert (
        2,
        "conviction_date",
        "'2021-02-30': not a valid date in the format %Y-%m-%d "
        "(an impossible date, or another format)",
    ) in found
    assert (3, "record_key", "missing value") in found
    assert (3, "conviction_date", "'1850-01-01': date outside 1900-01-01..2100-12-31") in found
    assert any(e[:2] == (3, "disposal") and "not one of custody" in e[2] for e in found)
    assert any(e[:2] == (3, "sentence_months") and "between 0 and 600" in e[2] for e in found)


def test_unexpected_and_missing_columns_are_header_errors() -> None:
    schema = SCHEMAS["justice.custody"]
    data = frame([{"record_key": "k", "reception_date": "2020-01-01", "surname": "SMITH"}])
    assert errors_of(data, schema) == [
        (1, "release_date", "required column is missing"),
        (1, "surname", "unexpected column (not in the justice.custody schema)"),
    ]


def test_identifier_files_need_unique_keys_and_past_dates_of_birth() -> None:
    layout = IdentifierLayout(
        "id",
        {"given_name": "first", "date_of_birth": "dob", "sex": "sex"},
        "%d/%m/%Y",
        sex_codes=("F", "M"),
    )
    schema = layout.schema("health")
    data = frame(
        [
            {"id": "a", "first": "Ann", "dob": "31/12/1990", "sex": "F"},
            {"id": "b", "first": "Bob", "dob": "31/12/2090", "sex": "X"},
            {"id": "a", "first": "Cy", "dob": "13/13/1990", "sex": "M"},
        ]
    )
    found = errors_of(data, schema)
    assert (4, "id", "duplicate record key 'a' (first on line 2)") in found
    assert (2, "id", "duplicate record key 'a' (first on line 2)") not in found
    assert any(e[:2] == (3, "dob") and "date outside 1900-01-01..2026-06-15" in e[2] for e in found)
    assert any(e[:2] == (4, "dob") and "not a valid date" in e[2] for e in found)
    assert any(e[:2] == (3, "sex") and "not one of F, M" in e[2] for e in found)
    assert {f.sensitivity for f in schema.fields} == {"direct_identifier"}


def test_quasi_identifiers_need_a_coarsening_rule() -> None:
    with pytest.raises(ValueError, match="needs a coarsening rule"):
        Field("birth_month", "text", "quasi_identifier")
    with pytest.raises(ValueError, match="unknown field kind"):
        Field("x", "blob")
