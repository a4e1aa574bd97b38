"""Rounding published values to a base (spec §11.1): conventional rounding, each value to the
nearest multiple of the base, halves up. What an attacker then knows of a rounded value is
an interval around it, which the differencing ledger audits instead of the exact value."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from output_checker.errors import InputError

FloatArray = npt.NDArray[np.float64]


def check_base(base: object) -> int:
    """A rounding base: a whole number of at least 2."""
    if isinstance(base, bool) or not isinstance(base, int) or base < 2:
        raise InputError("a rounding base must be a whole number of at least 2")
    return base


def round_to_base(values: npt.ArrayLike, base: int) -> FloatArray:
    """Each value to the nearest multiple of ``base``, halves up (NaN stays NaN)."""
    return np.floor(np.asarray(values, dtype=np.float64) / base + 0.5) * base


def rounded_frame(frame: pd.DataFrame, base: int) -> pd.DataFrame:
    """A published table with every value rounded to ``base``; missing (suppressed) values
    stay missing and integer columns stay integers."""
    check_base(base)
    halves_up = (frame.astype("Float64") / base + 0.5).apply(np.floor) * base
    return halves_up.astype(frame.dtypes.to_dict())


def true_interval(rounded: FloatArray, base: int, whole: bool) -> tuple[FloatArray, FloatArray]:
    """Where the true value of each rounded one lies: for whole numbers (counts) the integers
    that round to it, [r - floor(b/2), r + ceil(b/2) - 1]; otherwise [r - b/2, r + b/2]."""
    if whole:
        return rounded - base // 2, rounded + (base + 1) // 2 - 1
    return rounded - base / 2, rounded + base / 2
