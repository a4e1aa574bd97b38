"""File rules shared by uploads and bundles: names, the allow-list, sizes and content."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

import pytest

from output_checker.queue.errors import InvalidInput
from output_checker.queue.filetypes import ALLOWED_TYPES, Limits, check_file, is_archive


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("table.csv", b"a,b\n1,2\n"),
        ("Table (v2).CSV", b"a,b\n1,2\n"),
        ("result.json", b'{"a": 1}'),
        ("plot.png", b"\x89PNG\r\n\x1a\n...."),
        ("paper.pdf", b"%PDF-1.7\n..."),
        ("figure.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        ("report.html", b"<p>hi</p>"),
        ("notes.md", b"# notes"),
        ("log.txt", "caf\u00e9".encode()),
        ("sheet.xlsx", b"PK\x03\x04rest"),
    ],
)
def test_allowed_files(name: str, data: bytes) -> None:
    assert check_file(name, data) in ALLOWED_TYPES


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", "x")
    return buffer.getvalue()


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("a.csv")
        archive.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "rule"),
    [
        ("a.zip", _zip(), "file_type"),
        ("a.csv", _zip(), "archive"),
        ("a.txt", gzip.compress(b"hello", mtime=0), "archive"),
        ("a.md", _tar(), "archive"),
        ("a.json", b"{nope", "file_content"),
        ("a.json", b'{"x": NaN}', "file_content"),
        ("a.png", b"GIF89a", "file_content"),
        ("a.pdf", b"<html>", "file_content"),
        ("a.xlsx", b"not a zip", "file_content"),
        ("a.csv", b"", "file_size"),
        ("a.csv", b"\xff\xfe", "file_content"),
        ("../a.csv", b"x", "bad_name"),
        (".a.csv", b"x", "bad_name"),
        ("a\\b.csv", b"x", "bad_name"),
        ("a" * 300 + ".csv", b"x", "bad_name"),
        ("a.svgz", b"x", "file_type"),
    ],
)
def test_refused_files(name: str, data: bytes, rule: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_file(name, data)
    assert refused.value.rule == rule


def test_size_limit() -> None:
    with pytest.raises(InvalidInput, match="over the limit of 10"):
        check_file("a.txt", b"x" * 11, Limits(max_file_bytes=10))
    assert check_file("a.txt", b"x" * 10, Limits(max_file_bytes=10)) == "txt"
    with pytest.raises(ValueError, match="at least 1"):
        Limits(max_files=0)


def test_archive_signatures() -> None:
    assert is_archive(_zip()) and is_archive(_tar()) and is_archive(gzip.compress(b"x"))
    assert not is_archive(b"region,count\n")
