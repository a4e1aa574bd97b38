"""An organisation's list of service users (spec 8.1): read it strictly, validate every row
with pandera, merge repeated people, and say what was accepted.

The file is a CSV with a header: forename, surname, date of birth, sex and intervention
start are required; intervention end, postcode and a national offender id are optional.
Header names are matched loosely (case, spaces and punctuation ignored; a few synonyms such as
``dob`` or ``first name``). Dates are ``YYYY-MM-DD`` or ``DD/MM/YYYY``.

Any problem refuses the whole file (``CohortInvalid``), which carries the validation report:
every problem by file and line, naming the column and the rule but never the value, so that
the report can be shown and logged without repeating anyone's identifiers. People listed
twice (same standardised name, date of birth and sex) are merged into their earliest
intervention and reported as notes, not problems.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from enclave.datalab.errors import DataLabError
from enclave.linkage.csvfile import read_csv
from enclave.linkage.errors import RowError
from enclave.linkage.standardise import SEX_CODES, clean_id, clean_name, clean_postcode

REQUIRED = ("forename", "surname", "date_of_birth", "sex", "intervention_start")
OPTIONAL = ("intervention_end", "postcode", "offender_id")
SYNONYMS: Mapping[str, tuple[str, ...]] = {
    "forename": ("forename", "first name", "given name", "first names"),
    "surname": ("surname", "last name", "family name"),
    "date_of_birth": ("date of birth", "dob", "birth date"),
    "sex": ("sex", "gender"),
    "intervention_start": ("intervention start", "start date", "intervention start date"),
    "intervention_end": ("intervention end", "end date", "intervention end date"),
    "postcode": ("postcode", "post code", "postal code"),
    "offender_id": (
        "national offender id",
        "offender id",
        "pnc id",
        "pnc number",
        "national id",
    ),
}
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y")
EARLIEST = date(1900, 1, 1)
MAX_TEXT = 100
IDENTITY = ("forename", "surname", "date_of_birth", "sex")


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_NAME = {_normalise(n): column for column, names in SYNONYMS.items() for n in names}


@dataclass(frozen=True)
class ValidationReport:
    """What the client sees after uploading: counts, every problem, and merged repeats.
    Problems and notes name lines and columns only, never values."""

    file: str
    rows_read: int
    rows_accepted: int
    duplicates_merged: int
    problems: tuple[RowError, ...]
    notes: tuple[RowError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        def rows(errors: Sequence[RowError]) -> list[dict[str, Any]]:
            return [{"line": e.line, "column": e.column, "message": e.message} for e in errors]

        return {
            "file": self.file,
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "duplicates_merged": self.duplicates_merged,
            "problems": rows(self.problems),
            "notes": rows(self.notes),
        }


class CohortInvalid(DataLabError):
    """The cohort file had problems; ``report`` lists them all. ``str()`` is one line."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        n = len(report.problems)
        noun = "problem" if n == 1 else "problems"
        more = f" (and {n - 1} more)" if n > 1 else ""
        super().__init__(f"{n} {noun} in the cohort file: {report.problems[0]}{more}")


@dataclass(frozen=True)
class Cohort:
    """The accepted people, one row each: standardised identifiers (``forename``,
    ``surname``, ``date_of_birth`` as ISO text, ``sex`` f/m, ``postcode``, ``offender_id``)
    and ``intervention_start``/``intervention_end`` dates; ``line`` is the first file line."""

    people: pd.DataFrame
    report: ValidationReport


def _parse_dates(values: pd.Series) -> pd.Series:
    """Each value in either accepted format; NaT when it fits neither."""
    text = values.astype("string").str.strip()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for fmt in DATE_FORMATS:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        out = out.fillna(parsed)
    return out


def _date_check(name: str, latest: date) -> list[pa.Check]:
    return [
        pa.Check(
            lambda s: _parse_dates(s).notna(),
            error="not a date in the form YYYY-MM-DD or DD/MM/YYYY",
        ),
        pa.Check(
            lambda s: (
                _parse_dates(s).isna()
                | _parse_dates(s).between(pd.Timestamp(EARLIEST), pd.Timestamp(latest))
            ),
            error=f"{name} before {EARLIEST.isoformat()} or after today",
        ),
    ]


def _text_check() -> list[pa.Check]:
    return [
        pa.Check(
            lambda s: (s.str.len() <= MAX_TEXT) & ~s.str.contains(r"[\x00-\x1f]", regex=True),
            error=f"longer than {MAX_TEXT} characters or with control characters",
        )
    ]


def _name_check() -> list[pa.Check]:
    return [
        *_text_check(),
        pa.Check(
            lambda s: clean_name(s).notna(),
            error="no letters (A-Z) or digits to match on",
        ),
    ]


def cohort_schema(today: date) -> pa.DataFrameSchema:
    """The per-column rules over text columns (every check works on strings)."""
    sexes = sorted(SEX_CODES)
    columns = {
        "forename": pa.Column(nullable=False, checks=_name_check()),
        "surname": pa.Column(nullable=False, checks=_name_check()),
        "date_of_birth": pa.Column(nullable=False, checks=_date_check("date of birth", today)),
        "sex": pa.Column(
            nullable=False,
            checks=pa.Check(
                lambda s: s.str.strip().str.lower().isin(sexes), error="not F or M (female/male)"
            ),
        ),
        "intervention_start": pa.Column(
            nullable=False, checks=_date_check("intervention start", today)
        ),
        "intervention_end": pa.Column(
            nullable=True, required=False, checks=_date_check("intervention end", today)
        ),
        "postcode": pa.Column(nullable=True, required=False, checks=_text_check()),
        "offender_id": pa.Column(nullable=True, required=False, checks=_text_check()),
    }
    return pa.DataFrameSchema(columns, strict=False)


def _columns(header: Sequence[str], file: str) -> tuple[dict[str, str], list[RowError]]:
    """Canonical column -> the file's column, and problems with the header (line 1)."""
    found: dict[str, str] = {}
    problems: list[RowError] = []
    for column in header:
        canonical = _BY_NAME.get(_normalise(column))
        if canonical is None:
            problems.append(RowError(file, 1, column, "unexpected column"))
        elif canonical in found:
            problems.append(RowError(file, 1, column, f"a second {canonical} column"))
        else:
            found[canonical] = column
    for column in REQUIRED:
        if column not in found:
            problems.append(RowError(file, 1, column, "required column is missing"))
    return found, problems


def _schema_problems(
    frame: pd.DataFrame, today: date, file: str, lines: Sequence[int]
) -> list[RowError]:
    try:
        cohort_schema(today).validate(frame, lazy=True)
    except SchemaErrors as failure:
        cases = failure.failure_cases
        out = []
        for index, column, check in zip(
            cases["index"], cases["column"], cases["check"], strict=True
        ):
            message = "missing value" if check == "not_nullable" else str(check)
            line = 1 if index is None or pd.isna(index) else lines[int(index)]
            out.append(RowError(file, line, str(column), message))
        return out
    return []


def _cross_problems(
    frame: pd.DataFrame, today: date, file: str, lines: Sequence[int]
) -> tuple[list[RowError], dict[str, pd.Series]]:
    """Rules across columns: no intervention before birth, no end before the start (on
    dates that passed their own checks, so that one bad date is one problem)."""
    names = [c for c in ("date_of_birth", "intervention_start", "intervention_end") if c in frame]
    parsed = {c: _parse_dates(frame[c]) for c in names}
    dates = {
        c: d.where(d.between(pd.Timestamp(EARLIEST), pd.Timestamp(today)))
        for c, d in parsed.items()
    }
    rules = [
        (
            "intervention_start",
            dates["intervention_start"] < dates["date_of_birth"],
            "intervention start before the date of birth",
        )
    ]
    if "intervention_end" in dates:
        rules.append(
            (
                "intervention_end",
                dates["intervention_end"] < dates["intervention_start"],
                "intervention end before the intervention start",
            )
        )
    out = [
        RowError(file, lines[int(i)], column, message)
        for column, bad, message in rules
        for i in bad.to_numpy().nonzero()[0]
    ]
    return out, dates


def _standardised(frame: pd.DataFrame, dates: Mapping[str, pd.Series]) -> pd.DataFrame:
    def optional(column: str) -> pd.Series:
        if column in frame.columns:
            return frame[column]
        return pd.Series(pd.NA, index=frame.index, dtype="string")

    return pd.DataFrame(
        {
            "forename": clean_name(frame["forename"]),
            "surname": clean_name(frame["surname"]),
            "date_of_birth": dates["date_of_birth"].dt.strftime("%Y-%m-%d").astype("string"),
            "sex": frame["sex"].str.strip().str.lower().map(SEX_CODES).astype("string"),
            "postcode": clean_postcode(optional("postcode")),
            "offender_id": clean_id(optional("offender_id")),
            "intervention_start": dates["intervention_start"],
            "intervention_end": dates.get(
                "intervention_end", pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
            ),
        }
    )


def _merge_repeats(people: pd.DataFrame, file: str) -> tuple[pd.DataFrame, list[RowError]]:
    """One row per person: the earliest intervention of people listed more than once."""
    ordered = people.sort_values(["intervention_start", "line"], kind="stable")
    repeat = ordered.duplicated(list(IDENTITY), keep="first")
    first_line = ordered.groupby(list(IDENTITY), dropna=False)["line"].transform("first")
    notes = [
        RowError(
            file,
            int(line),
            "",
            f"the same person as line {int(first)}: merged, keeping the earliest intervention",
        )
        for line, first in zip(ordered.loc[repeat, "line"], first_line[repeat], strict=True)
    ]
    kept = ordered.loc[~repeat].sort_values("line").reset_index(drop=True)
    return kept, sorted(notes, key=lambda e: e.line)


def check_cohort(
    path: Path, *, today: date, label: str | None = None, encoding: str = "utf-8"
) -> Cohort:
    """Read and validate the cohort file at ``path`` (shown as ``label``).

    Raises:
        CohortInvalid: any problem (the report lists them all).
        OSError: the file cannot be read; LinkageError: an unusable ``encoding``.
    """
    file = label or path.name
    table = read_csv(path, encoding=encoding, label=file)
    problems = list(table.errors)
    rows_read = len(table.frame) + len({e.line for e in table.errors if e.line > 1})
    if table.frame.columns.empty:  # no header: nothing more to say about columns
        raise CohortInvalid(_report(file, rows_read, 0, 0, problems, []))
    found, header_problems = _columns(list(table.frame.columns), file)
    problems += header_problems
    if header_problems or table.frame.empty:
        raise CohortInvalid(_report(file, rows_read, 0, 0, problems, []))
    frame = table.frame.rename(columns={v: k for k, v in found.items()})[list(found)]
    problems += _schema_problems(frame, today, file, table.lines)
    cross, dates = _cross_problems(frame, today, file, table.lines)
    problems += cross
    if problems:
        raise CohortInvalid(_report(file, rows_read, 0, 0, problems, []))
    people = _standardised(frame, dates).assign(line=table.lines)
    kept, notes = _merge_repeats(people, file)
    report = _report(file, rows_read, len(kept), len(people) - len(kept), [], notes)
    return Cohort(kept, report)


def _report(
    file: str,
    rows_read: int,
    accepted: int,
    merged: int,
    problems: Sequence[RowError],
    notes: Sequence[RowError],
) -> ValidationReport:
    unique = sorted(set(problems), key=lambda e: (e.line, e.column, e.message))
    return ValidationReport(file, rows_read, accepted, merged, tuple(unique), tuple(notes))


__all__ = ["Cohort", "CohortInvalid", "ValidationReport", "check_cohort", "cohort_schema"]
