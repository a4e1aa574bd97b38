"""Two files with a known truth for linkage at scale (the spec's section 5 generator).

File A holds ``n / 2`` people as recorded correctly; file B holds corrupted copies of 80 % of
them plus new people, so that ``len(B) == len(A)``. People are independent (no households),
dates of birth uniform over 1930-2010, and most surnames come from a long tail, as in FEBRL's
frequency tables. Corruptions: 10 % house moves, 2 % swapped names, 3 % day/month
transpositions, typos in 5-10 % of each name field, 1-5 % missing values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from enclave.synth.ministries import corrupt, names
from enclave.synth.ministries.corrupt import ErrorRates
from enclave.synth.ministries.timing import day, fmt

SHARED = 0.8
RATES = ErrorRates(
    typo_given=0.07,
    typo_surname=0.07,
    nickname=0.03,
    swap_names=0.02,
    surname_change=0.0,
    dob_transpose=0.03,
    dob_partial=0.005,
    dob_typo=0.01,
    dob_missing=0.02,
    postcode_typo=0.03,
    postcode_missing=0.03,
    address_missing=0.03,
    national_id_typo=0.02,
    national_id_missing=0.05,
    sex_missing=0.01,
)


@dataclass(frozen=True)
class TwoFiles:
    """``a`` and ``b`` (record_key, given_name, surname, date_of_birth, sex, postcode,
    address, national_id) and ``truth`` (source, record_key, entity)."""

    a: pd.DataFrame
    b: pd.DataFrame
    truth: pd.DataFrame


def _people(rng: np.random.Generator, n: int, common_share: float) -> pd.DataFrame:
    sex = np.where(rng.random(n) < 0.5, "F", "M").astype(object)
    female = np.array(names.FEMALE_NAMES, dtype=object)
    male = np.array(names.MALE_NAMES, dtype=object)
    given = np.where(
        sex == "F",
        female[rng.choice(female.size, n, p=names.zipf(female.size, 0.5))],
        male[rng.choice(male.size, n, p=names.zipf(male.size, 0.5))],
    )
    common = np.array(names.SURNAMES, dtype=object)
    tail = np.array(names.generated_surnames(rng, max(n // 10, 100)), dtype=object)
    surname = np.where(
        rng.random(n) < common_share,
        common[rng.choice(common.size, n, p=names.zipf(common.size, 0.9))],
        tail[rng.integers(0, tail.size, n)],
    )
    lo, hi = day(date(1930, 1, 1)), day(date(2010, 12, 31))
    dob = lo + rng.integers(0, int((hi - lo).astype(np.int64)) + 1, n).astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "given_name": given,
            "surname": surname,
            "date_of_birth": dob,
            "sex": sex,
            "postcode": names.random_postcodes(rng, n),
            "address": names.random_streets(rng, n),
            "national_id": (rng.choice(900_000_000, n, replace=False) + 100_000_000).astype(str),
        }
    )


def generate_two_files(n: int, *, seed: int = 0, common_surname_share: float = 0.1) -> TwoFiles:
    """Two files of ``n // 2`` records each; raises ValueError for ``n`` below 4."""
    if n < 4:
        raise ValueError("two files need at least 4 records in all")
    rng = np.random.default_rng(seed)
    half = n // 2
    shared = round(half * SHARED)
    people = _people(rng, half + (half - shared), common_surname_share)
    entity = np.array([f"E{i:08d}" for i in range(len(people))], dtype=object)
    a = people.iloc[:half].reset_index(drop=True)
    chosen = np.concatenate([rng.choice(half, shared, replace=False), np.arange(half, len(people))])
    b = people.iloc[chosen].reset_index(drop=True).copy()
    given = corrupt.nicknames(b["given_name"].to_numpy(dtype=object), RATES.nickname, rng)
    given = corrupt.typos(given, RATES.typo_given, rng)
    surname = corrupt.typos(b["surname"].to_numpy(dtype=object), RATES.typo_surname, rng)
    given, surname = corrupt.swap_names(given, surname, RATES.swap_names, rng)
    moved = rng.random(len(b)) < 0.1
    postcode = b["postcode"].to_numpy(dtype=object).copy()
    address = b["address"].to_numpy(dtype=object).copy()
    postcode[moved] = names.random_postcodes(rng, int(moved.sum()))
    address[moved] = names.random_streets(rng, int(moved.sum()))
    b = b.assign(
        given_name=corrupt.blank(given, 0.01, rng),
        surname=corrupt.blank(surname, 0.01, rng),
        date_of_birth=corrupt.dob_errors(
            b["date_of_birth"].to_numpy().astype("datetime64[D]"), RATES, rng
        ),
        sex=corrupt.blank(b["sex"].to_numpy(dtype=object), RATES.sex_missing, rng),
        postcode=corrupt.blank(
            corrupt.postcode_typos(postcode, RATES.postcode_typo, rng), RATES.postcode_missing, rng
        ),
        address=corrupt.blank(address, RATES.address_missing, rng),
        national_id=corrupt.blank(
            corrupt.digit_typos(
                b["national_id"].to_numpy(dtype=object), RATES.national_id_typo, rng
            ),
            RATES.national_id_missing,
            rng,
        ),
    )
    out = {}
    keys = {"a": np.arange(half), "b": chosen}
    for name, frame in (("a", a), ("b", b)):
        frame = frame.assign(
            date_of_birth=fmt(frame["date_of_birth"].to_numpy().astype("datetime64[D]"), "%Y-%m-%d")
        )
        frame.insert(0, "record_key", [f"{name}{i:08d}" for i in range(len(frame))])
        out[name] = frame
    truth = pd.concat(
        [
            pd.DataFrame(
                {
                    "source": name,
                    "record_key": out[name]["record_key"],
                    "entity": entity[keys[name]],
                }
            )
            for name in ("a", "b")
        ],
        ignore_index=True,
    )
    return TwoFiles(out["a"], out["b"], truth)
