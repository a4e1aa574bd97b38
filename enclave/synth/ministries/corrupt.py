"""Realistic identifier errors: typing slips, nicknames, swapped names, changed surnames,
partial or transposed dates of birth, mistyped postcodes and ids, and missing values.

Every function takes whole arrays and a seeded generator and returns new arrays; only the
selected few per cent of values are touched one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from enclave.synth.ministries import names

ObjArray = npt.NDArray[np.object_]
DateArray = npt.NDArray[np.datetime64]

_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def _neighbours() -> dict[str, str]:
    rows = _KEYBOARD
    out: dict[str, str] = {}
    for r, row in enumerate(rows):
        for c, key in enumerate(row):
            near = [row[i] for i in (c - 1, c + 1) if 0 <= i < len(row)]
            for other in (r - 1, r + 1):
                if 0 <= other < len(rows):
                    near += [rows[other][i] for i in (c - 1, c, c + 1) if 0 <= i < len(rows[other])]
            out[key] = "".join(near)
    return out


NEIGHBOURS = _neighbours()


@dataclass(frozen=True)
class ErrorRates:
    """Per-record probabilities of each kind of error in one custodian's delivery."""

    typo_given: float = 0.03
    typo_surname: float = 0.03
    nickname: float = 0.04
    swap_names: float = 0.01
    surname_change: float = 0.02  # adult women recorded under a previous or later surname
    dob_transpose: float = 0.01
    dob_partial: float = 0.005
    dob_typo: float = 0.005
    dob_missing: float = 0.005
    postcode_typo: float = 0.01
    postcode_missing: float = 0.02
    address_missing: float = 0.02
    national_id_typo: float = 0.01
    national_id_missing: float = 0.05
    sex_missing: float = 0.005


def pick(rng: np.random.Generator, n: int, rate: float) -> npt.NDArray[np.intp]:
    """Indices of the values an error with probability ``rate`` hits."""
    return np.flatnonzero(rng.random(n) < rate)


def typo(word: str, rng: np.random.Generator) -> str:
    """One slip: a neighbouring key, a dropped, doubled-in or transposed letter."""
    if not word:
        return word
    kind = int(rng.integers(0, 4)) if len(word) >= 3 else 0
    at = int(rng.integers(0, len(word)))
    if kind == 0:
        near = NEIGHBOURS.get(word[at], _ALPHABET)
        return word[:at] + near[int(rng.integers(0, len(near)))] + word[at + 1 :]
    if kind == 1:
        return word[:at] + word[at + 1 :]
    if kind == 2:
        extra = _ALPHABET[int(rng.integers(0, 26))]
        return word[:at] + extra + word[at:]
    at = min(at, len(word) - 2)
    return word[:at] + word[at + 1] + word[at] + word[at + 2 :]


def typos(values: ObjArray, rate: float, rng: np.random.Generator) -> ObjArray:
    """``values`` with a typing slip in about ``rate`` of the non-missing ones."""
    out = values.copy()
    for i in pick(rng, out.size, rate):
        if isinstance(out[i], str):
            out[i] = typo(out[i], rng)
    return out


def nicknames(given: ObjArray, rate: float, rng: np.random.Generator) -> ObjArray:
    """Given names replaced by a short form (where one exists) in about ``rate`` of records."""
    out = given.copy()
    for i in pick(rng, out.size, rate):
        forms = names.NICKNAMES.get(out[i]) if isinstance(out[i], str) else None
        if forms:
            out[i] = forms[int(rng.integers(0, len(forms)))]
    return out


def swap_names(
    given: ObjArray, surname: ObjArray, rate: float, rng: np.random.Generator
) -> tuple[ObjArray, ObjArray]:
    """Given name and surname entered in each other's fields."""
    g, s = given.copy(), surname.copy()
    hit = pick(rng, g.size, rate)
    g[hit], s[hit] = surname[hit], given[hit]
    return g, s


def change_surnames(
    surname: ObjArray, eligible: npt.NDArray[np.bool_], rate: float, rng: np.random.Generator
) -> ObjArray:
    """Eligible records (adult women) carry another surname, as after marriage or divorce."""
    out = surname.copy()
    hit = np.flatnonzero(eligible & (rng.random(out.size) < rate))
    pool = np.array(names.SURNAMES, dtype=object)
    out[hit] = pool[rng.choice(pool.size, hit.size, p=names.zipf(pool.size, 0.9))]
    return out


def dob_errors(
    dob: DateArray,
    rates: ErrorRates,
    rng: np.random.Generator,
    *,
    latest: np.datetime64 | None = None,
) -> DateArray:
    """Transposed day and month, unknown day or month (recorded as the 1st or 1 January),
    a mistyped year, and missing dates. A mistyped year never lands after ``latest`` (the
    extraction date): a clerk cannot record a birth in the future, and ingest rightly refuses
    one, so such a slip goes the other way."""
    out = dob.copy()
    n = out.size
    year = out.astype("datetime64[Y]")
    month = out.astype("datetime64[M]")
    day_no = (out - month).astype(np.int64) + 1
    month_no = (month - year).astype(np.int64) + 1
    swap = pick(rng, n, rates.dob_transpose)
    swap = swap[(day_no[swap] <= 12) & (day_no[swap] != month_no[swap])]
    out[swap] = (
        year[swap]
        + (day_no[swap] - 1).astype("timedelta64[M]")
        + (month_no[swap] - 1).astype("timedelta64[D]")
    ).astype("datetime64[D]")
    partial = pick(rng, n, rates.dob_partial)
    whole_year = rng.random(partial.size) < 0.4
    out[partial] = np.where(
        whole_year,
        year[partial].astype("datetime64[D]"),
        month[partial].astype("datetime64[D]"),
    )
    slip = pick(rng, n, rates.dob_typo)
    shift = rng.choice(np.array([-10, -1, 1, 10]), slip.size, p=[0.15, 0.35, 0.35, 0.15])
    years = out[slip].astype("datetime64[Y]")
    within_year = out[slip] - years.astype("datetime64[D]")
    shifted = ((years + shift) + within_year).astype("datetime64[D]")
    if latest is not None:
        shift = np.where(shifted > latest, -np.abs(shift), shift)
        shifted = ((years + shift) + within_year).astype("datetime64[D]")
    out[slip] = shifted
    out[pick(rng, n, rates.dob_missing)] = np.datetime64("NaT")
    return out


def postcode_typos(postcodes: ObjArray, rate: float, rng: np.random.Generator) -> ObjArray:
    """Swapped unit letters or a neighbouring digit in about ``rate`` of postcodes."""
    out = postcodes.copy()
    for i in pick(rng, out.size, rate):
        code = out[i]
        if not isinstance(code, str) or len(code) < 5:
            continue
        if rng.random() < 0.5:
            out[i] = code[:-2] + code[-1] + code[-2]
        else:
            outward, inward = code.split(" ", 1)
            digit = str((int(inward[0]) + int(rng.choice([-1, 1]))) % 10)
            out[i] = f"{outward} {digit}{inward[1:]}"
    return out


def digit_typos(ids: ObjArray, rate: float, rng: np.random.Generator) -> ObjArray:
    """One digit changed or two adjacent digits transposed in about ``rate`` of ids."""
    out = ids.copy()
    for i in pick(rng, out.size, rate):
        value = out[i]
        if not isinstance(value, str) or len(value) < 2:
            continue
        at = int(rng.integers(0, len(value) - 1))
        if rng.random() < 0.5:
            out[i] = value[:at] + value[at + 1] + value[at] + value[at + 2 :]
        else:
            out[i] = value[:at] + str(int(rng.integers(0, 10))) + value[at + 1 :]
    return out


def blank(values: ObjArray, rate: float, rng: np.random.Generator) -> ObjArray:
    """``values`` with about ``rate`` of them missing (None)."""
    out = values.copy()
    out[pick(rng, out.size, rate)] = None
    return out
