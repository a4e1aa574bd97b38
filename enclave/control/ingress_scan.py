"""Validation and disclosure scan of a dataset version at ingress (SATRE 3.1.04, 3.1.20).

Pure: a table in, a report out. The report holds counts and column names only, never a value
from the table, because it is stored in the control plane, shown to people who may not see
the data and written to the audit log. Validation failures (a registered column missing, an
unregistered one present, no rows) reject the version; scan findings (columns that look like
direct identifiers but are not registered as such, rare categories) are flags for the
custodian, who decides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from enclave.control.rules import Sensitivity

# Categories seen fewer times than this are a disclosure risk (the checker's default threshold).
RARE_BELOW = 10
# A column with at most this many distinct values (and fewer than rows) is read as categorical.
MAX_CATEGORIES = 50
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_SEPARATORS = re.compile(r"[\s().-]")
_PHONE = re.compile(r"(?:\+\d{1,3}|0)\d{9,11}")
_TEN_DIGITS = re.compile(r"\d{10}")
_POSTCODE = re.compile(r"[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}", re.IGNORECASE)
# Column names ending in a word that says "direct identifier", whatever their values.
_IDENTIFIER_NAMES = re.compile(
    r"(^|_)(e_?mail|phone|mobile|telephone|tel|nhs_?(number|no|num)|nino|"
    r"national_insurance(_number)?|ni_number|ssn|passport(_number)?|postcode|post_code|zip|"
    r"full_?name|first_?name|forename|given_name|last_?name|surname|family_name|"
    r"address(_\d)?|street(_address)?|date_of_birth|dob|birth_date)$",
    re.IGNORECASE,
)


class UnreadableTable(Exception):
    """The file could not be read as its format; the message names no value from it."""


def table_format(path: Path) -> str | None:
    """``csv`` or ``parquet`` from the file name's suffix, None for anything else."""
    return FORMATS.get(path.suffix.lower())


def read_table(path: Path, fmt: str) -> pd.DataFrame:
    """Every cell as text (missing as empty). Raises UnreadableTable with a message that
    names the problem's kind only: parser messages can quote the file's content."""
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
            return frame.astype("string").fillna("")
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UnreadableTable(
            f"the file could not be read as {fmt.upper()} ({type(error).__name__})"
        ) from None


def _kind(value: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    if _EMAIL.fullmatch(text):
        return "email"
    compact = _SEPARATORS.sub("", text)
    if _TEN_DIGITS.fullmatch(compact) and not compact.startswith("0"):
        return "nhs_number_like"
    if _PHONE.fullmatch(compact):
        return "phone"
    if _POSTCODE.fullmatch(text):
        return "postcode"
    return None


def _identifier_values(values: pd.Series) -> dict[str, int]:
    """How many values of a column look like each kind of direct identifier."""
    kinds = values.astype(str).map(_kind).dropna()
    return {str(kind): int(n) for kind, n in kinds.value_counts().sort_index().items()}


def _rare_categories(values: pd.Series) -> dict[str, int] | None:
    """Distinct and rare category counts of a categorical column; None if not categorical."""
    present = values[values.astype(str).str.strip() != ""]
    counts = present.value_counts()
    if counts.empty or len(counts) > MAX_CATEGORIES or len(counts) >= len(present):
        return None
    rare = int((counts < RARE_BELOW).sum())
    return {"categories": len(counts), "rare": rare} if rare else None


def scan(frame: pd.DataFrame, registered: Mapping[str, str]) -> dict[str, Any]:
    """Validate ``frame`` against ``registered`` (column name -> sensitivity) and scan it.

    Returns the report: ``valid``, ``problems`` (one line each, naming columns only),
    ``rows``, ``columns``, ``missing_columns``, ``unregistered_columns``,
    ``identifier_like`` (column -> {kind: count of values}), ``identifier_names`` (columns
    whose name says direct identifier), ``rare_categories`` (column -> counts).
    """
    columns = [str(c) for c in frame.columns]
    missing = [name for name in registered if name not in columns]
    unregistered = [name for name in columns if name not in registered]
    problems = []
    if missing:
        problems.append(f"registered columns missing: {', '.join(missing)}")
    if unregistered:
        problems.append(f"columns not registered: {', '.join(unregistered)}")
    if len(frame) == 0:
        problems.append("the file has no data rows")
    direct = Sensitivity.DIRECT_IDENTIFIER.value
    undeclared = [c for c in columns if registered.get(c) != direct]
    identifier_like = {
        name: kinds for name in undeclared if (kinds := _identifier_values(frame[name]))
    }
    rare = {name: counts for name in columns if (counts := _rare_categories(frame[name]))}
    return {
        "valid": not problems,
        "problems": problems,
        "rows": len(frame),
        "columns": len(columns),
        "missing_columns": missing,
        "unregistered_columns": unregistered,
        "identifier_like": identifier_like,
        "identifier_names": [c for c in undeclared if _IDENTIFIER_NAMES.search(c)],
        "rare_categories": rare,
    }
