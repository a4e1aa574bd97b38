"""Recoding of key variables: global recoding into classes, merging categories, top/bottom coding.

These follow sdcMicro's ``globalRecode``, ``groupAndRename`` and ``topBotCoding`` (spec §2.12):
classes are R ``cut`` intervals, right-closed, with labels such as ``"(1,9]"``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from itertools import pairwise
from typing import Literal, cast

import numpy as np
import pandas as pd

RecodeMethod = Literal["explicit", "equidistant", "logEqui", "equalAmount"]

# R's cut(dig.lab=8) tries 8 significant digits first and widens up to 12 until labels differ.
_DIG_LAB = 8
_MAX_DIG = 12


def _as_float(x: object, name: str) -> np.ndarray:
    """A float copy of a numeric vector; NA (None/pd.NA) become NaN."""
    if isinstance(x, pd.Series):
        if not (pd.api.types.is_numeric_dtype(x) or pd.api.types.is_bool_dtype(x)):
            raise ValueError(f"'{name}' must be numeric")
        return x.to_numpy(dtype=float, na_value=np.nan)
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"'{name}' must be numeric")
    return arr.astype(float).ravel()


def _r_round_unique(b: np.ndarray) -> np.ndarray:
    """Round break points to whole numbers unless that would merge two of them (as sdcMicro)."""
    rounded = np.round(b)  # half to even, like R's round()
    return rounded if np.unique(rounded).size == rounded.size else b


def computed_breaks(x: np.ndarray, n_classes: int, method: RecodeMethod) -> np.ndarray:
    """Break points that sdcMicro's ``globalRecode`` derives for ``breaks=n_classes``.

    ``equidistant``: n+1 equally spaced points from min-1 to max+1, rounded when still distinct;
    ``logEqui``: the same on log(x), transformed back; ``equalAmount``: quantiles (R type 7).
    sdcMicro jitters duplicated quantiles at random; here duplicates are dropped instead
    (deterministic, possibly fewer classes).
    """
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        raise ValueError("cannot compute break points: 'x' has no non-missing values")
    if method == "equidistant":
        return _r_round_unique(np.linspace(finite.min() - 1, finite.max() + 1, n_classes + 1))
    if method == "logEqui":
        if np.any(finite <= 0):
            raise ValueError("method 'logEqui' needs strictly positive values")
        logs = np.log(finite)
        return _r_round_unique(np.exp(np.linspace(logs.min() - 1, logs.max() + 1, n_classes + 1)))
    if method == "equalAmount":
        probs = np.concatenate([[0.0], np.arange(1, n_classes + 1) / n_classes])
        quantiles = np.unique(np.quantile(finite, probs))
        if quantiles.size < 2:
            raise ValueError("method 'equalAmount' needs at least two distinct values")
        return quantiles
    raise ValueError(f"unknown recode method {method!r}")


def interval_labels(breaks: np.ndarray, include_lowest: bool = False) -> list[str]:
    """R ``cut`` labels ``"(a,b]"`` with ``%.8g`` numbers (``"[a,b]"`` first if include_lowest)."""
    for digits in range(_DIG_LAB, _MAX_DIG + 1):
        text = [f"{b:.{digits}g}" for b in breaks]
        if all(a != b for a, b in pairwise(text)):
            break
    labels = [f"({a},{b}]" for a, b in pairwise(text)]
    if include_lowest and labels:
        labels[0] = "[" + labels[0][1:]
    return labels


def cut(
    x: np.ndarray,
    breaks: np.ndarray,
    labels: Sequence[Hashable] | None = None,
    include_lowest: bool = False,
) -> pd.Categorical:
    """Classify ``x`` into right-closed intervals between sorted ``breaks`` (R ``cut``).

    Values outside every interval (and NaN) become missing.
    """
    b = np.sort(np.asarray(breaks, dtype=float))
    if b.size < 2 or np.unique(b).size != b.size:
        raise ValueError("'breaks' must hold at least two distinct values")
    n_classes = b.size - 1
    if labels is None:
        labels = interval_labels(b, include_lowest)
    elif len(labels) != n_classes:
        raise ValueError("lengths of 'breaks' and 'labels' differ")
    # searchsorted(side="left") finds i with b[i-1] < x <= b[i]: interval i-1 (right-closed).
    codes = np.searchsorted(b, x, side="left") - 1
    if include_lowest:
        codes[x == b[0]] = 0
    codes[(codes < 0) | (codes >= n_classes) | np.isnan(x)] = -1
    return pd.Categorical.from_codes(cast("Sequence[int]", codes), pd.Index(list(labels)))


def global_recode(
    x: pd.Series | np.ndarray | Sequence[float],
    breaks: int | Sequence[float] | np.ndarray,
    labels: Sequence[Hashable] | None = None,
    method: RecodeMethod = "explicit",
) -> pd.Series:
    """Recode a numeric variable into classes (sdcMicro ``globalRecode``).

    ``breaks`` is either the break points (``method="explicit"``; intervals ``(a,b]``, values at
    or below the lowest break become missing) or a number of classes for ``method`` in
    ``equidistant``/``logEqui``/``equalAmount`` (the lowest break is then included).
    ``breaks=1`` gives the single class ``(min-1, max+1]``. Returns a categorical Series (index
    kept when ``x`` is a Series); ``labels`` replace the default ``"(a,b]"`` labels.
    """
    values = _as_float(x, "x")
    index = x.index if isinstance(x, pd.Series) else None
    if isinstance(breaks, int | np.integer):
        n_classes = int(breaks)
        if n_classes < 1:
            raise ValueError("the number of classes 'breaks' must be at least 1")
        if method == "explicit":
            raise ValueError("method 'explicit' needs a sequence of break points, not a count")
        if n_classes == 1:
            finite = values[~np.isnan(values)]
            if finite.size == 0:
                raise ValueError("cannot compute break points: 'x' has no non-missing values")
            b = np.array([finite.min() - 1, finite.max() + 1])
            result = cut(values, b, labels)
        else:
            result = cut(values, computed_breaks(values, n_classes, method), labels, True)
    else:
        if method not in ("explicit", "equidistant", "logEqui", "equalAmount"):
            raise ValueError(f"unknown recode method {method!r}")
        result = cut(values, np.asarray(breaks, dtype=float), labels)
    return pd.Series(result, index=index, name=getattr(x, "name", None))


def group_and_rename(
    x: pd.Series | Sequence[Hashable],
    groups: Mapping[Hashable, Sequence[Hashable]],
    na_to: Hashable | None = None,
) -> pd.Series:
    """Merge categories: every old value listed under a new name takes that name.

    As sdcMicro's ``groupAndRename``: the old values must exist and appear only once; the new
    categories keep the position of the first category they replace; other categories stay.
    ``na_to`` (one of the new names) also receives the missing values. Returns a categorical Series.
    """
    series = x if isinstance(x, pd.Series) else pd.Series(list(x))
    cat = series.astype("category")
    old_categories = list(cat.cat.categories)
    mapping: dict[Hashable, Hashable] = {}
    for new, olds in groups.items():
        if isinstance(olds, str | bytes) or not isinstance(olds, Sequence):
            raise ValueError(f"groups[{new!r}] must be a list of existing categories")
        for old in olds:
            if old in mapping:
                raise ValueError(f"category {old!r} is listed more than once in 'groups'")
            mapping[old] = new
    unknown = [old for old in mapping if old not in old_categories]
    if unknown:
        raise ValueError(f"categories not present in 'x': {unknown!r}")
    if na_to is not None and na_to not in groups:
        raise ValueError("'na_to' must be one of the new names in 'groups'")
    renamed = [mapping.get(c, c) for c in old_categories]
    new_categories = list(dict.fromkeys(renamed))
    # Codes of the old categories translated to positions among the merged categories.
    translate = np.array([new_categories.index(r) for r in renamed] + [-1], dtype=np.int64)
    codes = translate[cat.cat.codes.to_numpy()]  # code -1 (missing) picks the appended -1
    if na_to is not None:
        codes[codes == -1] = new_categories.index(na_to)
    result = pd.Categorical.from_codes(cast("Sequence[int]", codes), pd.Index(new_categories))
    return pd.Series(result, index=series.index, name=series.name)


def top_bottom_code(
    x: pd.Series | np.ndarray,
    value: float,
    replacement: float,
    kind: Literal["top", "bottom"] = "top",
) -> pd.Series | np.ndarray:
    """Replace values above (``top``) or below (``bottom``) ``value`` by ``replacement``.

    Strict inequality, missing values untouched (sdcMicro ``topBotCoding``). Returns the same
    kind of object as given (a new one).
    """
    if kind not in ("top", "bottom"):
        raise ValueError("'kind' must be 'top' or 'bottom'")
    if isinstance(x, pd.Series):
        if not pd.api.types.is_numeric_dtype(x):
            raise ValueError("top/bottom coding needs a numeric variable")
        hit = (x > value) if kind == "top" else (x < value)
        return x.mask(hit.fillna(False).astype(bool), replacement)
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":
        raise ValueError("top/bottom coding needs a numeric variable")
    with np.errstate(invalid="ignore"):
        hit_arr = (arr > value) if kind == "top" else (arr < value)
    return np.where(hit_arr, replacement, arr)
