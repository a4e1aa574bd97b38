"""The true population: people in households, with identifiers, addresses and latent traits.

Households make linkage realistic: family members share a surname, an address and a
postcode, siblings have close dates of birth and twins share one, and a fifth of households
move during the observation window (records taken before the move carry the old address).
Everything is drawn from one seeded generator over whole arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from enclave.synth.ministries import names
from enclave.synth.ministries.timing import day as days

WINDOW_START = date(2016, 1, 1)
WINDOW_END = date(2025, 12, 31)
_HOUSEHOLD_SIZES = np.array([1, 2, 3, 4, 5, 6])
_HOUSEHOLD_P = np.array([0.28, 0.33, 0.16, 0.14, 0.06, 0.03])
_TWIN_RATE = 0.03  # of younger siblings, who then share the elder sibling's birthday
_MOVE_RATE = 0.2
_LOCAL_MOVE = 0.6  # a move stays within the postcode area this often
_FASD_RATE = 0.02  # among people born 1995-2018
_COMMON_SURNAME_SHARE = 0.7


@dataclass(frozen=True)
class Population:
    """``persons``: one row per true person (the ground truth, never delivered as such).

    Columns: ``person_id`` (truth id), ``household_id``, ``is_adult``, ``given_name``,
    ``surname``, ``sex`` ("F"/"M"), ``date_of_birth`` (datetime64[D]), ``national_id``,
    ``postcode``/``address`` (current), ``previous_postcode``/``previous_address`` and
    ``moved_on`` (NaT when the household did not move), ``risk`` (a latent disadvantage
    score shared within a household, driving service use and offending) and ``fasd``.
    """

    persons: pd.DataFrame


def generate_population(n: int, rng: np.random.Generator) -> Population:
    """``n`` people in households; raises ValueError for ``n`` below 1."""
    if n < 1:
        raise ValueError("the population must have at least one person")
    household, size, rank = _households(n, rng)
    n_households = int(household.max()) + 1
    n_adults = np.where(size == 1, 1, np.where(rng.random(n_households) < 0.75, 2, 1))
    is_adult = rank < n_adults[household]
    sex = np.where(rng.random(n) < 0.5, "F", "M").astype(object)
    # two adults are usually a couple of different sexes
    second = is_adult & (rank == 1)
    first_sex = sex[np.flatnonzero(rank == 0)]
    sex[second] = np.where(
        rng.random(int(second.sum())) < 0.9,
        np.where(first_sex[household[second]] == "F", "M", "F"),
        sex[second],
    )
    dob = _dates_of_birth(rng, household, rank, is_adult)
    surname = _surnames(n, rng, household, rank, is_adult)
    given = _given_names(rng, sex)
    postcode, address, previous_postcode, previous_address, moved_on = _addresses(rng, n_households)
    fasd_age = (dob >= days(date(1995, 1, 1))) & (dob <= days(date(2018, 12, 31)))
    risk_household = rng.normal(0.0, 0.8, n_households)
    risk = risk_household[household] + rng.normal(0.0, 0.6, n)
    fasd = fasd_age & (rng.random(n) < _FASD_RATE * np.exp(0.5 * risk) / 1.2)
    national_id = rng.choice(900_000_000, size=n, replace=False) + 100_000_000
    truth_order = rng.permutation(n)
    persons = pd.DataFrame(
        {
            "person_id": [f"P{i:08d}" for i in truth_order],
            "household_id": household,
            "is_adult": is_adult,
            "given_name": given,
            "surname": surname,
            "sex": sex,
            "date_of_birth": dob,
            "national_id": national_id.astype(str),
            "postcode": postcode[household],
            "address": address[household],
            "previous_postcode": previous_postcode[household],
            "previous_address": previous_address[household],
            "moved_on": moved_on[household],
            "risk": risk,
            "fasd": fasd,
        }
    )
    return Population(persons)


def _households(
    n: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Household index per person, size per household and rank of the person within it."""
    sizes = rng.choice(_HOUSEHOLD_SIZES, size=n, p=_HOUSEHOLD_P)
    ends = np.cumsum(sizes)
    count = int(np.searchsorted(ends, n)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] -= int(ends[count - 1]) - n  # the last household absorbs the remainder
    household = np.repeat(np.arange(count), sizes)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    rank = np.arange(n) - starts
    return household, sizes, rank


def _dates_of_birth(
    rng: np.random.Generator,
    household: npt.NDArray[np.int64],
    rank: npt.NDArray[np.int64],
    is_adult: npt.NDArray[np.bool_],
) -> npt.NDArray[np.datetime64]:
    """Adults born 1950-2000; children born to the first adult at age 18-42, up to 2024."""
    n = household.size
    lo, hi = days(date(1950, 1, 1)), days(date(2000, 12, 31))
    span = int((hi - lo).astype(np.int64))
    dob = lo + rng.integers(0, span, n).astype("timedelta64[D]")
    first_adult = np.flatnonzero(rank == 0)
    parent_dob = dob[first_adult][household]
    # a couple's ages differ by a few years
    partner = is_adult & (rank == 1)
    dob[partner] = parent_dob[partner] + rng.integers(-2500, 2500, int(partner.sum())).astype(
        "timedelta64[D]"
    )
    child = ~is_adult
    offset = rng.integers(18 * 365, 42 * 365, int(child.sum())).astype("timedelta64[D]")
    latest = days(date(2024, 12, 31))
    born = np.minimum(parent_dob[child] + offset, latest - rng.integers(0, 3000, offset.size))
    dob[child] = born
    # twins: a child shares the date of birth of the sibling before it
    idx = np.flatnonzero(child & (rank >= 2) & ~is_adult[np.maximum(np.arange(n) - 1, 0)])
    twins = idx[rng.random(idx.size) < _TWIN_RATE]
    dob[twins] = dob[twins - 1]
    return dob


def _surnames(
    n: int,
    rng: np.random.Generator,
    household: npt.NDArray[np.int64],
    rank: npt.NDArray[np.int64],
    is_adult: npt.NDArray[np.bool_],
) -> npt.NDArray[np.object_]:
    """One surname per household (common names by Zipf, else a rare generated one); a
    partner keeps their own surname a third of the time."""
    count = int(household.max()) + 1
    tail = np.array(names.generated_surnames(rng, max(count // 3, 50)), dtype=object)
    common = np.array(names.SURNAMES, dtype=object)
    own = np.where(
        rng.random(n) < _COMMON_SURNAME_SHARE,
        common[rng.choice(common.size, n, p=names.zipf(common.size, 0.9))],
        tail[rng.integers(0, tail.size, n)],
    )
    family = own[np.flatnonzero(rank == 0)][household]
    keeps_own = is_adult & (rank == 1) & (rng.random(n) < 0.33)
    surname: npt.NDArray[np.object_] = np.where(keeps_own, own, family)
    return surname


def _given_names(rng: np.random.Generator, sex: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    female = np.array(names.FEMALE_NAMES, dtype=object)
    male = np.array(names.MALE_NAMES, dtype=object)
    n = sex.size
    f = female[rng.choice(female.size, n, p=names.zipf(female.size, 0.8))]
    m = male[rng.choice(male.size, n, p=names.zipf(male.size, 0.8))]
    given: npt.NDArray[np.object_] = np.where(sex == "F", f, m)
    return given


def _addresses(
    rng: np.random.Generator, n_households: int
) -> tuple[
    npt.NDArray[np.object_],
    npt.NDArray[np.object_],
    npt.NDArray[np.object_],
    npt.NDArray[np.object_],
    npt.NDArray[np.datetime64],
]:
    """Current and previous address per household, and the day of the move (NaT if none)."""
    area = rng.choice(len(names.POSTCODE_AREAS), n_households, p=names.zipf(41, 0.6))
    postcode = names.random_postcodes(rng, n_households, area)
    address = names.random_streets(rng, n_households)
    moved = rng.random(n_households) < _MOVE_RATE
    local = rng.random(n_households) < _LOCAL_MOVE
    other_area = rng.integers(0, len(names.POSTCODE_AREAS), n_households)
    previous_postcode = names.random_postcodes(rng, n_households, np.where(local, area, other_area))
    previous_address = names.random_streets(rng, n_households)
    span = int((days(WINDOW_END) - days(WINDOW_START)).astype(np.int64))
    moved_on = days(WINDOW_START) + rng.integers(0, span, n_households).astype("timedelta64[D]")
    moved_on[~moved] = np.datetime64("NaT")
    previous_postcode[~moved] = postcode[~moved]
    previous_address[~moved] = address[~moved]
    return postcode, address, previous_postcode, previous_address, moved_on
