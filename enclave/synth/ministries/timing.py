"""Date helpers over numpy datetime64[D] arrays (shared by the ministries' generators)."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import numpy.typing as npt

DateArray = npt.NDArray[np.datetime64]
IntArray = npt.NDArray[np.int64]


def day(value: date) -> np.datetime64:
    """A date as numpy datetime64[D]."""
    return np.datetime64(value.isoformat(), "D")


def between(rng: np.random.Generator, lo: DateArray, hi: DateArray) -> DateArray:
    """A uniform day in [lo, hi] per element (``lo`` where the interval is empty)."""
    span = np.maximum((hi - lo).astype(np.int64), 0)
    offset = np.floor(rng.random(span.size) * (span + 1)).astype(np.int64)
    out: DateArray = lo + offset.astype("timedelta64[D]")
    return out


def add_years(dates: DateArray, years: int) -> DateArray:
    """``dates`` moved by whole years (29 February becomes 1 March)."""
    year = dates.astype("datetime64[Y]")
    within = dates - year.astype("datetime64[D]")
    out: DateArray = ((year + years).astype("datetime64[D]") + within).astype("datetime64[D]")
    return out


def parts(dates: DateArray) -> tuple[IntArray, IntArray, IntArray]:
    """Year, month (1-12) and day (1-31) of each date (undefined where NaT)."""
    year = dates.astype("datetime64[Y]")
    month = dates.astype("datetime64[M]")
    y: IntArray = year.astype(np.int64) + 1970
    m: IntArray = (month - year).astype(np.int64) + 1
    d: IntArray = (dates - month).astype(np.int64) + 1
    return y, m, d


def age_on(dob: DateArray, when: np.datetime64) -> IntArray:
    """Age in whole years on ``when``."""
    y, m, d = parts(dob)
    wy, wm, wd = parts(np.array([when], dtype="datetime64[D]"))
    before_birthday = (wm[0] * 100 + wd[0]) < (m * 100 + d)
    age: IntArray = wy[0] - y - before_birthday.astype(np.int64)
    return age


def fmt(dates: DateArray, pattern: str) -> npt.NDArray[np.object_]:
    """Dates as strings in ``pattern`` (tokens %Y, %m, %d); None where NaT."""
    ok = ~np.isnat(dates)
    out = np.full(dates.size, None, dtype=object)
    if not ok.any():
        return out
    y, m, d = parts(dates[ok])
    tokens = {
        "%Y": np.char.zfill(y.astype(str), 4).astype(object),
        "%m": np.char.zfill(m.astype(str), 2).astype(object),
        "%d": np.char.zfill(d.astype(str), 2).astype(object),
    }
    text = np.full(int(ok.sum()), "", dtype=object)
    for piece in re.split(r"(%[Ymd])", pattern):
        if piece in tokens:
            text = text + tokens[piece]
        elif piece:
            text = text + piece
    out[ok] = text
    return out
