"""Variable specification files (CSV and JSON)."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.control.errors import InvalidInput
from enclave.control.rules import Sensitivity
from enclave.control.varspec import parse_variables, read_variables


def test_csv_and_json_give_the_same_specs(tmp_path: Path) -> None:
    csv_file = tmp_path / "vars.csv"
    csv_file.write_text(
        "name,sensitivity,description\nid,direct_identifier,person id\nage,other,\n"
    )
    json_file = tmp_path / "vars.json"
    json_file.write_text(
        '[{"name": "id", "sensitivity": "direct_identifier", "description": "person id"},'
        ' {"name": "age", "sensitivity": "other"}]'
    )
    from_csv, from_json = read_variables(csv_file), read_variables(json_file)
    assert from_csv == from_json
    assert [v.sensitivity for v in from_csv] == [Sensitivity.DIRECT_IDENTIFIER, Sensitivity.OTHER]


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("name,sensitivity\nage,secret\n", "csv", "unknown sensitivity 'secret'"),
        ("name\nage\n", "csv", "needs the columns"),
        ("name,sensitivity\nage,other\nage,other\n", "csv", "listed twice"),
        ("name,sensitivity\n", "csv", "at least one variable"),
        ("name,sensitivity\n1bad,other\n", "csv", "invalid variable name"),
        ("{", "json", "not JSON"),
        ('{"name": "x"}', "json", "list of objects"),
        ("", "xml", "unknown variables format"),
    ],
)
def test_malformed_specs_are_refused(text: str, fmt: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_variables(text, fmt)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read variables file"):
        read_variables(tmp_path / "absent.csv")
