"""Reading custodians' CSV files: every problem reported with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.linkage.csvfile import check_encoding, read_csv
from enclave.linkage.errors import LinkageError


def write(tmp_path: Path, content: bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def messages(table: object) -> list[tuple[int, str]]:
    return [(e.line, e.message) for e in table.errors]  # type: ignore[attr-defined]


def test_clean_file_keeps_text_and_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, b'id,name\n1,"Smith, Jo"\n2,"two\nlines"\n3,\n')
    table = read_csv(path)
    assert table.errors == []
    assert table.frame["name"].tolist()[:2] == ["Smith, Jo", "two\nlines"]
    assert table.frame["name"].isna().tolist() == [False, False, True]
    assert table.lines == [2, 3, 5]  # the quoted newline makes row 3 start on line 5


def test_utf8_bom_is_ignored(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, b"\xef\xbb\xbfid,name\n1,Zo\xc3\xab\n"))
    assert list(table.frame.columns) == ["id", "name"]
    assert table.frame.at[0, "name"] == "Zoë"


def test_wrong_encoding_is_reported_per_line(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,name\n1,Zo\xeb\n2,Ann\n3,Ren\xe9e\n")  # Latin-1 bytes
    table = read_csv(path, label="people.csv")
    assert messages(table) == [
        (2, "not valid utf-8: byte 0xeb at position 5"),
        (4, "not valid utf-8: byte 0xe9 at position 6"),
    ]
    assert table.errors[0].file == "people.csv"
    assert table.frame["id"].tolist() == ["2"]
    latin = read_csv(path, encoding="latin-1")
    assert latin.errors == [] and latin.frame.at[2, "name"] == "Renée"


def test_wrong_number_of_fields(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, b"id,name\n1,a\n2,b,extra\n3\n"))
    assert messages(table) == [(3, "expected 2 fields, found 3"), (4, "expected 2 fields, found 1")]


def test_unbalanced_quote_and_nul_byte_are_malformed(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, b'id,name\n1,"ok"\n2,"a"b\n3,x\x00y\n'))
    lines = sorted(line for line, message in messages(table) if message.startswith("malformed CSV"))
    assert lines == [3, 4]


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"", (1, "the file is empty")),
        (b"   \n\n", (1, "the file is empty")),
        (b"id,name\n", (2, "the file has a header but no data rows")),
    ],
)
def test_empty_files(tmp_path: Path, content: bytes, expected: tuple[int, str]) -> None:
    assert messages(read_csv(write(tmp_path, content))) == [expected]


def test_bad_headers(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, b"id,name,,name\n1,a,b,c\n"))
    assert messages(table) == [
        (1, "column 3 of the header has no name"),
        (1, "duplicate column name"),
    ]


def test_encodings_that_cannot_be_read_line_by_line_are_refused() -> None:
    assert check_encoding("latin-1") == "latin-1"
    with pytest.raises(LinkageError, match="not supported"):
        check_encoding("utf-16")
    with pytest.raises(LinkageError, match="unknown encoding"):
        check_encoding("klingon")
