"""Recognising identifier columns by their usual names, with explicit overrides (pure).

A role is what a column means to the linkage (``given_name``, ``date_of_birth``, ...); the
files of different custodians name the same role differently. Names are compared after
lower-casing and removing everything but letters and digits, so ``First Name``,
``first_name`` and ``FIRSTNAME`` are one name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from enclave.linkage.errors import LinkageError

ROLE_NAMES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "given_name": (
            "given_name",
            "givenname",
            "given_names",
            "forename",
            "forenames",
            "first_name",
            "firstname",
            "first",
            "fname",
        ),
        "surname": (
            "surname",
            "last_name",
            "lastname",
            "family_name",
            "familyname",
            "lname",
        ),
        "date_of_birth": (
            "date_of_birth",
            "dob",
            "birth_date",
            "birthdate",
            "dateofbirth",
            "birthday",
        ),
        "sex": ("sex", "gender"),
        "postcode": ("postcode", "post_code", "postal_code", "postalcode", "zip", "zip_code"),
        "address": (
            "address",
            "address_1",
            "address1",
            "address_line1",
            "address_line_1",
            "addressline1",
            "street_address",
            "street",
        ),
        "address_2": ("address_2", "address2", "address_line2", "address_line_2"),
        "house_number": ("house_number", "housenumber", "house_no", "street_number"),
        "locality": ("suburb", "city", "town", "locality"),
        "region": ("state", "county", "province", "region"),
        "national_id": (
            "national_id",
            "nationalid",
            "soc_sec_id",
            "ssn",
            "social_security_number",
            "sin",
            "social_insurance_number",
            "nino",
            "ni_number",
            "national_insurance_number",
            "nhs_number",
        ),
    }
)
ROLES = tuple(ROLE_NAMES)


def normalise_name(name: str) -> str:
    """The form in which column names are compared: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_NAME = {normalise_name(n): role for role, names in ROLE_NAMES.items() for n in names}


def recognise(
    columns: Iterable[str],
    overrides: Mapping[str, str] | None = None,
    *,
    exclude: Iterable[str] = (),
) -> dict[str, str]:
    """Map roles to the columns that carry them.

    ``overrides`` (role -> column) win over recognised names; a column named in ``exclude``
    (such as the record id) is never given a role.

    Raises:
        LinkageError: an override names an unknown role or a column that is absent, or two
            columns would take the same role.
    """
    present = list(columns)
    skip = set(exclude)
    roles: dict[str, str] = {}
    for column in present:
        role = _BY_NAME.get(normalise_name(column))
        if role is None or column in skip:
            continue
        if role in roles:
            raise LinkageError(
                f"columns {roles[role]!r} and {column!r} both look like {role}; "
                f"choose one with --column {role}=NAME"
            )
        roles[role] = column
    for role, column in (overrides or {}).items():
        if role not in ROLE_NAMES:
            raise LinkageError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}")
        if column not in present:
            raise LinkageError(f"column {column!r} (for {role}) is not in the file")
        # a column given a role explicitly loses any role it was recognised for
        roles = {r: c for r, c in roles.items() if c != column}
        roles[role] = column
    return roles


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``role=column`` strings as a mapping; LinkageError for a malformed pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        role, sep, column = pair.partition("=")
        if not sep or not role.strip() or not column.strip():
            raise LinkageError(f"--column expects ROLE=COLUMN, got {pair!r}")
        out[role.strip()] = column.strip()
    return out
