"""Turn registers into custodians' deliveries: an identifier file and content tables per
ministry, joined only by random record keys the custodian mints, with each custodian's own
column names, date format, sex codes and error rates. The truth (record key to person) is
returned separately and never travels with a delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import pandas as pd

from enclave.synth.ministries import corrupt
from enclave.synth.ministries.corrupt import ErrorRates
from enclave.synth.ministries.population import WINDOW_END, WINDOW_START
from enclave.synth.ministries.timing import age_on, between, day, fmt

IntArray = npt.NDArray[np.int64]
CONTENT_DATE_FORMAT = "%Y-%m-%d"


@dataclass(frozen=True)
class Style:
    """How one custodian writes its identifier file."""

    source: str
    agency: str
    columns: Mapping[str, str]  # role -> column name in the delivery
    date_format: str
    sex_codes: tuple[str, str]  # how female and male are written
    errors: ErrorRates
    upper_case: bool = False
    local_id_prefix: str = ""


@dataclass(frozen=True)
class Delivery:
    """One custodian's delivery: ``identifiers`` (record_key and identifier columns, named as
    in ``style.columns``) and content ``tables`` keyed by the same record_key."""

    style: Style
    identifiers: pd.DataFrame
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)


STYLES: Mapping[str, Style] = MappingProxyType(
    {
        "health": Style(
            "health",
            "Ministry of Health",
            MappingProxyType(
                {
                    "local_id": "health_number",
                    "given_name": "first_name",
                    "surname": "last_name",
                    "date_of_birth": "birth_date",
                    "sex": "sex",
                    "postcode": "postal_code",
                    "address": "address_line1",
                }
            ),
            "%Y-%m-%d",
            ("F", "M"),
            ErrorRates(typo_given=0.02, typo_surname=0.02, nickname=0.03, swap_names=0.005),
            local_id_prefix="H",
        ),
        "education": Style(
            "education",
            "Ministry of Education",
            MappingProxyType(
                {
                    "local_id": "student_number",
                    "given_name": "given_name",
                    "surname": "family_name",
                    "date_of_birth": "date_of_birth",
                    "sex": "gender",
                    "postcode": "postcode",
                }
            ),
            "%Y%m%d",
            ("Female", "Male"),
            ErrorRates(nickname=0.06, postcode_missing=0.03, surname_change=0.0),
            local_id_prefix="S",
        ),
        "human_services": Style(
            "human_services",
            "Ministry of Human Services",
            MappingProxyType(
                {
                    "local_id": "client_number",
                    "national_id": "national_id",
                    "given_name": "forename",
                    "surname": "surname",
                    "date_of_birth": "dob",
                    "sex": "sex",
                    "postcode": "postcode",
                    "address": "street_address",
                }
            ),
            "%d/%m/%Y",
            ("F", "M"),
            ErrorRates(),
            local_id_prefix="C",
        ),
        "justice": Style(
            "justice",
            "Ministry of Justice",
            MappingProxyType(
                {
                    "local_id": "pnc_id",
                    "national_id": "national_id",
                    "given_name": "forename",
                    "surname": "surname",
                    "date_of_birth": "date_of_birth",
                    "sex": "sex",
                    "postcode": "postcode",
                    "address": "address",
                }
            ),
            "%Y-%m-%d",
            ("F", "M"),
            ErrorRates(
                typo_given=0.04,
                typo_surname=0.04,
                nickname=0.08,
                swap_names=0.02,
                dob_transpose=0.02,
                dob_typo=0.01,
                postcode_missing=0.25,
                address_missing=0.25,
                national_id_missing=0.6,
            ),
            upper_case=True,
            local_id_prefix="J",
        ),
        "service_provider": Style(
            "service_provider",
            "Programme provider (Data Lab client)",
            MappingProxyType(
                {
                    "given_name": "first_name",
                    "surname": "surname",
                    "date_of_birth": "dob",
                    "sex": "sex",
                    "postcode": "postcode",
                }
            ),
            "%d/%m/%Y",
            ("F", "M"),
            ErrorRates(
                typo_given=0.05,
                typo_surname=0.05,
                nickname=0.1,
                dob_transpose=0.03,
                postcode_missing=0.3,
            ),
        ),
    }
)


def record_keys(rng: np.random.Generator, n: int) -> npt.NDArray[np.object_]:
    """``n`` distinct random 16-hex-digit record keys (the custodian's tokens)."""
    keys: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        for value in rng.integers(0, 2**63 - 1, n - len(out), dtype=np.int64):
            key = f"{int(value):016x}"
            if key not in keys:
                keys.add(key)
                out.append(key)
    return np.array(out, dtype=object)


def deliver(
    style: Style,
    persons: pd.DataFrame,
    people: IntArray,
    tables: Mapping[str, pd.DataFrame],
    rng: np.random.Generator,
) -> tuple[Delivery, pd.DataFrame]:
    """The custodian's delivery for the ``people`` on its register, and the truth links
    (``source``, ``record_key``, ``person_id``). Content tables name people by ``_person``
    (and ``_guardian``, another person on the same register); both become record keys."""
    order = rng.permutation(people)  # a file's row order says nothing about anyone
    keys = record_keys(rng, order.size)
    key_of = pd.Series(keys, index=order)
    identifiers = _identifiers(style, persons, order, keys, rng)
    content: dict[str, pd.DataFrame] = {}
    for name, frame in tables.items():
        out = frame.copy()
        out.insert(0, "record_key", key_of.reindex(out.pop("_person").to_numpy()).to_numpy())
        if "_guardian" in out.columns:
            guardian = key_of.reindex(out.pop("_guardian").to_numpy()).to_numpy()
            out.insert(1, "guardian_record_key", guardian)
        for column in out.columns:
            if pd.api.types.is_datetime64_any_dtype(out[column]):
                out[column] = fmt(
                    out[column].to_numpy().astype("datetime64[D]"), CONTENT_DATE_FORMAT
                )
        content[name] = out
    truth = pd.DataFrame(
        {
            "source": style.source,
            "record_key": keys,
            "person_id": persons["person_id"].to_numpy()[order],
        }
    )
    return Delivery(style, identifiers, MappingProxyType(content)), truth


def _identifiers(
    style: Style,
    persons: pd.DataFrame,
    order: IntArray,
    keys: npt.NDArray[np.object_],
    rng: np.random.Generator,
) -> pd.DataFrame:
    rates = style.errors
    p = persons.iloc[order]
    n = order.size
    # each record was taken on some day of the window: before a move it has the old address
    taken = between(rng, np.full(n, day(WINDOW_START)), np.full(n, day(WINDOW_END)))
    moved = p["moved_on"].to_numpy().astype("datetime64[D]")
    old = ~np.isnat(moved) & (taken < moved)
    postcode = np.where(old, p["previous_postcode"].to_numpy(), p["postcode"].to_numpy())
    address = np.where(old, p["previous_address"].to_numpy(), p["address"].to_numpy())
    given = p["given_name"].to_numpy().astype(object)
    surname = p["surname"].to_numpy().astype(object)
    female = (p["sex"] == "F").to_numpy()
    adult_woman = female & (
        age_on(p["date_of_birth"].to_numpy().astype("datetime64[D]"), day(WINDOW_END)) >= 20
    )
    surname = corrupt.change_surnames(surname, adult_woman, rates.surname_change, rng)
    given = corrupt.nicknames(given, rates.nickname, rng)
    given = corrupt.typos(given, rates.typo_given, rng)
    surname = corrupt.typos(surname, rates.typo_surname, rng)
    given, surname = corrupt.swap_names(given, surname, rates.swap_names, rng)
    dob = corrupt.dob_errors(
        p["date_of_birth"].to_numpy().astype("datetime64[D]"),
        rates,
        rng,
        latest=np.datetime64(WINDOW_END, "D"),
    )
    postcode = corrupt.blank(
        corrupt.postcode_typos(postcode, rates.postcode_typo, rng), rates.postcode_missing, rng
    )
    address = corrupt.blank(address, rates.address_missing, rng)
    national = corrupt.blank(
        corrupt.digit_typos(
            p["national_id"].to_numpy().astype(object), rates.national_id_typo, rng
        ),
        rates.national_id_missing,
        rng,
    )
    sex = np.where(female, style.sex_codes[0], style.sex_codes[1]).astype(object)
    sex = corrupt.blank(sex, rates.sex_missing, rng)
    if style.upper_case:
        given = np.array([g.upper() if isinstance(g, str) else g for g in given], dtype=object)
        surname = np.array([s.upper() if isinstance(s, str) else s for s in surname], dtype=object)
    else:
        given = np.array([g.title() if isinstance(g, str) else g for g in given], dtype=object)
        surname = np.array([s.title() if isinstance(s, str) else s for s in surname], dtype=object)
    local = rng.choice(90_000_000, n, replace=False) + 10_000_000 if n else np.zeros(0, np.int64)
    values = {
        "local_id": np.array([f"{style.local_id_prefix}{v}" for v in local], dtype=object),
        "national_id": national,
        "given_name": given,
        "surname": surname,
        "date_of_birth": fmt(dob, style.date_format),
        "sex": sex,
        "postcode": postcode,
        "address": address,
    }
    frame = pd.DataFrame({"record_key": keys})
    for role, column in style.columns.items():
        frame[column] = values[role]
    return frame
