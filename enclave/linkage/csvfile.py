"""Reading a custodian's CSV file strictly, reporting every problem with its line.

The file is decoded line by line in its declared encoding, so a wrongly encoded file is
reported at each line that does not decode (with the offending byte) rather than failing as a
whole; it is parsed with Python's csv module in strict mode, so unbalanced quotes, NUL bytes
and rows with too many or too few fields are reported at their line. Values are kept as
text (empty -> missing): typing them is the schema's job.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from enclave.linkage.errors import LinkageError, RowError

MAX_FIELD = 1 << 20


@dataclass(frozen=True)
class CsvTable:
    """The rows that parsed (text, missing as NA), the line of each row, and the problems.

    ``lines[i]`` is the line on which row ``i`` starts (the header is line 1). A row named in
    ``errors`` is still in ``frame`` when it had the right number of fields, so that schema
    checks can report its other problems too.
    """

    path: Path
    frame: pd.DataFrame
    lines: list[int]
    errors: list[RowError]


def read_csv(path: Path, *, encoding: str = "utf-8", label: str | None = None) -> CsvTable:
    """Read ``path`` as CSV with a header row.

    Never raises for bad content: every problem becomes a ``RowError`` (an empty file, no
    data rows, undecodable bytes, unbalanced quotes, a wrong number of fields, duplicate or
    blank column names). Raises OSError if the file cannot be read at all, and LinkageError
    for an encoding that is unknown or not ASCII-compatible (UTF-16: lines cannot be split).
    """
    name = label or path.name
    check_encoding(encoding)
    raw = path.read_bytes()
    errors: list[RowError] = []
    if not raw.strip():
        errors.append(RowError(name, 1, "", "the file is empty"))
        return CsvTable(path, pd.DataFrame(), [], errors)
    text, bad_lines = _decode(raw, encoding, name, errors)
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            errors.append(RowError(name, start, "", f"malformed CSV: {error}"))
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if header is None:
            header = _header(row, name, errors)
            continue
        bad = set(range(line, start)) & bad_lines
        if len(row) != len(header):
            errors.append(
                RowError(name, line, "", f"expected {len(header)} fields, found {len(row)}")
            )
            continue
        if bad:
            continue  # already reported as undecodable
        rows.append(row)
        lines.append(line)
    if header is None:
        errors.append(RowError(name, 1, "", "the file has no header row"))
        return CsvTable(path, pd.DataFrame(), [], errors)
    if not rows and not errors:
        errors.append(RowError(name, 2, "", "the file has a header but no data rows"))
    frame = pd.DataFrame(rows, columns=header, dtype="string")
    frame = frame.apply(lambda col: col.mask(col.str.strip() == ""))
    return CsvTable(path, frame, lines, errors)


def check_encoding(encoding: str) -> str:
    """``encoding`` if it is known and ASCII-compatible; LinkageError otherwise."""
    try:
        codecs.lookup(encoding)
        compatible = "a,\n".encode(encoding) == b"a,\n"
    except (LookupError, UnicodeError):
        raise LinkageError(f"unknown encoding {encoding!r}") from None
    if not compatible:
        raise LinkageError(f"encoding {encoding!r} is not supported (use UTF-8 or Latin-1)")
    return encoding


def _decode(raw: bytes, encoding: str, name: str, errors: list[RowError]) -> tuple[str, set[int]]:
    """Decode line by line; undecodable lines are reported and replaced (so that the rest of
    the file can still be checked). Returns the text and the set of bad line numbers."""
    if encoding.replace("-", "").lower() in ("utf8", "utf8sig") and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    parts: list[str] = []
    bad: set[int] = set()
    for number, chunk in enumerate(raw.splitlines(keepends=True), start=1):
        if b"\x00" in chunk:
            errors.append(RowError(name, number, "", "malformed CSV: a NUL byte"))
            bad.add(number)
            parts.append(chunk.replace(b"\x00", b"").decode(encoding, errors="replace"))
            continue
        try:
            parts.append(chunk.decode(encoding))
        except UnicodeDecodeError as error:
            byte = chunk[error.start : error.start + 1].hex()
            errors.append(
                RowError(
                    name,
                    number,
                    "",
                    f"not valid {encoding}: byte 0x{byte} at position {error.start + 1}",
                )
            )
            bad.add(number)
            parts.append(chunk.decode(encoding, errors="replace"))
    return "".join(parts), bad


def _header(row: list[str], name: str, errors: list[RowError]) -> list[str]:
    names = [cell.strip() for cell in row]
    seen: set[str] = set()
    for position, column in enumerate(names, start=1):
        if not column:
            errors.append(RowError(name, 1, "", f"column {position} of the header has no name"))
        elif column in seen:
            errors.append(RowError(name, 1, column, "duplicate column name"))
        seen.add(column)
    return names
