"""Recognising identifier columns by name, with overrides, and standardising them."""

from __future__ import annotations

import pandas as pd
import pytest

from enclave.linkage.columns import parse_overrides, recognise
from enclave.linkage.errors import LinkageError
from enclave.linkage.standardise import canonical_given_name, standardise


def test_common_names_are_recognised() -> None:
    columns = [
        "Rec ID",
        "First Name",
        "LAST_NAME",
        "DOB",
        "Gender",
        "Post Code",
        "street_number",
        "address_1",
        "suburb",
        "soc_sec_id",
        "notes",
    ]
    assert recognise(columns, exclude=["Rec ID"]) == {
        "given_name": "First Name",
        "surname": "LAST_NAME",
        "date_of_birth": "DOB",
        "sex": "Gender",
        "postcode": "Post Code",
        "house_number": "street_number",
        "address": "address_1",
        "locality": "suburb",
        "national_id": "soc_sec_id",
    }


def test_overrides_win_and_move_a_column_to_another_role() -> None:
    roles = recognise(
        ["forename", "surname", "nhs_number", "health_number"],
        {"national_id": "health_number", "given_name": "forename"},
    )
    assert roles["national_id"] == "health_number"
    assert "nhs_number" not in roles.values() or roles.get("national_id") != "nhs_number"


@pytest.mark.parametrize(
    "columns,overrides,message",
    [
        (["forename", "first_name"], {}, "both look like given_name"),
        (["a"], {"shoe_size": "a"}, "unknown role"),
        (["a"], {"surname": "b"}, "not in the file"),
    ],
)
def test_ambiguous_or_wrong_mappings_are_refused(
    columns: list[str], overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(LinkageError, match=message):
        recognise(columns, overrides)


def test_parse_overrides() -> None:
    assert parse_overrides(["surname = family", "sex=g"]) == {"surname": "family", "sex": "g"}
    with pytest.raises(LinkageError, match="ROLE=COLUMN"):
        parse_overrides(["surname"])


def test_standardise_cleans_every_role() -> None:
    raw = pd.DataFrame(
        {
            "id": [" 1 ", "2"],
            "first": ["BILL", "  Mary-Jane "],
            "last": ["O'Neil", "SMITH"],
            "dob": ["31/01/1980", "not a date"],
            "sex": ["Male", "f"],
            "pc": ["ab1 2cd", "4223"],
            "nid": ["123-456 789", None],
        },
        dtype="string",
    )
    roles = {
        "given_name": "first",
        "surname": "last",
        "date_of_birth": "dob",
        "sex": "sex",
        "postcode": "pc",
        "national_id": "nid",
    }
    out = standardise(raw, roles, unique_id="id", date_format="%d/%m/%Y", all_roles=["address"])
    assert out["record_key"].tolist() == ["1", "2"]
    assert out["given_name"].tolist() == ["bill", "maryjane"]
    assert out["given_name_alias"].tolist() == ["william", "maryjane"]
    assert out["surname"].tolist() == ["oneil", "smith"]
    assert out["date_of_birth"].tolist()[0] == "1980-01-31" and pd.isna(out["date_of_birth"][1])
    assert out["sex"].tolist() == ["m", "f"]
    assert out["postcode"].tolist() == ["AB1 2CD", "4223"]
    assert out["national_id"].tolist()[0] == "123456789"
    assert out["address"].isna().all()
    assert canonical_given_name("liz") == "elizabeth" and canonical_given_name("zoe") == "zoe"
