"""Standardising identifiers before comparison (pure: frames in, frames out).

Every source becomes the same canonical columns: names lower-cased with punctuation and
spacing removed, a nickname-free form of the given name, dates of birth as ISO strings,
sex as ``f``/``m``, postcodes upper-cased with one space before the inward code, ids as
upper-case letters and digits. A role a source lacks becomes a column of nulls, so that all
sources can be linked together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from enclave.synth.ministries.names import NICKNAMES

UNIQUE_ID = "record_key"
SOURCE = "source_dataset"
DATE_OF_BIRTH_FORMAT = "%Y-%m-%d"
ALIAS = "given_name_alias"
SEX_CODES: Mapping[str, str] = {
    "f": "f",
    "female": "f",
    "w": "f",
    "woman": "f",
    "2": "f",
    "m": "m",
    "male": "m",
    "man": "m",
    "1": "m",
}
_CANONICAL: dict[str, str] = {}
for _full, _short in NICKNAMES.items():
    for _form in _short:
        # a short form of several names (pat, sam, chris, alex) keeps the first one listed
        _CANONICAL.setdefault(_form, _full)


def canonical_given_name(name: str) -> str:
    """The full name a nickname stands for (``bill`` -> ``william``), else the name."""
    return _CANONICAL.get(name, name)


def clean_text(values: pd.Series) -> pd.Series:
    """Lower case, letters, digits and single spaces only; empty strings become null."""
    text = values.astype("string").str.lower()
    text = text.str.replace(r"[^a-z0-9 ]+", " ", regex=True)
    text = text.str.replace(r"\s+", " ", regex=True).str.strip()
    return text.mask(text == "")


def clean_name(values: pd.Series) -> pd.Series:
    """Names without spaces, hyphens or apostrophes (``O'Neil-Smith`` -> ``oneilsmith``)."""
    text = clean_text(values).str.replace(" ", "", regex=False)
    return text.mask(text == "")


def clean_postcode(values: pd.Series) -> pd.Series:
    """Upper case; a UK-shaped code gets exactly one space before its last three characters."""
    text = values.astype("string").str.upper().str.replace(r"[^A-Z0-9]", "", regex=True)
    text = text.mask(text == "")
    uk = text.str.match(r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$", na=False)
    spaced = text.str[:-3] + " " + text.str[-3:]
    return text.where(~uk, spaced)


def clean_id(values: pd.Series) -> pd.Series:
    """Letters and digits only, upper case; empty becomes null."""
    text = values.astype("string").str.upper().str.replace(r"[^A-Z0-9]", "", regex=True)
    return text.mask(text == "")


def iso_dates(values: pd.Series, date_format: str) -> pd.Series:
    """Dates in ``date_format`` as ISO ``YYYY-MM-DD`` strings; unparseable values become null
    (validation at ingest has already reported them)."""
    parsed = pd.to_datetime(values.astype("string"), format=date_format, errors="coerce")
    out = parsed.dt.strftime(DATE_OF_BIRTH_FORMAT).astype("string")
    return out


def standardise(
    frame: pd.DataFrame,
    roles: Mapping[str, str],
    *,
    unique_id: str,
    date_format: str | None = None,
    all_roles: Sequence[str] = (),
    keep: Sequence[str] = (),
) -> pd.DataFrame:
    """The canonical identifier frame of one source.

    ``roles`` maps role -> column of ``frame``; ``unique_id`` names the record id column
    (written as ``record_key``). ``date_format`` is the format of the date of birth (None:
    guess ISO or compact ``YYYYMMDD`` per value). ``all_roles`` adds null columns for roles
    other sources have; ``keep`` copies extra columns unchanged (for evaluation only).
    """
    out = pd.DataFrame({UNIQUE_ID: frame[unique_id].astype("string").str.strip()})
    for role in sorted(set(roles) | set(all_roles)):
        column = roles.get(role)
        values = frame[column] if column is not None else pd.Series(pd.NA, index=frame.index)
        out[role] = _clean(role, values, date_format)
    if "given_name" in out.columns:
        out[ALIAS] = out["given_name"].map(canonical_given_name, na_action="ignore")
    for column in keep:
        out[column] = frame[column].to_numpy()
    return out


def _clean(role: str, values: pd.Series, date_format: str | None) -> pd.Series:
    if values.isna().all():
        return pd.Series(pd.NA, index=values.index, dtype="string")
    if role in ("given_name", "surname"):
        return clean_name(values)
    if role == "date_of_birth":
        return _dates_any(values, date_format)
    if role == "sex":
        code = clean_text(values).map(SEX_CODES, na_action="ignore")
        return code.astype("string")
    if role == "postcode":
        return clean_postcode(values)
    if role in ("national_id", "house_number"):
        return clean_id(values)
    return clean_text(values)


def _dates_any(values: pd.Series, date_format: str | None) -> pd.Series:
    if date_format is not None:
        return iso_dates(values, date_format)
    text = values.astype("string").str.strip()
    compact = text.str.fullmatch(r"\d{8}", na=False)
    iso = iso_dates(text, "%Y-%m-%d")
    packed = iso_dates(text, "%Y%m%d")
    return iso.where(~compact, packed)
