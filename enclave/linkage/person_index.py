"""The master person index (pure): clusters become persons with random, stable ids.

A person id is a random UUIDv4 per cluster, never derived from identifiers. When the data
are linked again, each new cluster inherits the id of the previous person it shares most
records with (each previous id goes to one cluster at most: the one with the largest
overlap, ties broken by cluster id), so ids survive re-linking while records that moved
between clusters follow the majority.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pandas as pd

KEY = ["source", "record_key"]


def new_person_id() -> str:
    """A fresh random person id."""
    return str(uuid.uuid4())


def assign_person_ids(
    clusters: pd.DataFrame,
    previous: pd.DataFrame | None = None,
    *,
    new_id: Callable[[], str] = new_person_id,
) -> pd.DataFrame:
    """``source``, ``record_key``, ``person_id`` for every clustered record.

    ``clusters``: source, record_key, cluster_id. ``previous``: the last index (source,
    record_key, person_id) or None.
    """
    out = clusters[[*KEY, "cluster_id"]].copy()
    inherited: dict[str, str] = {}
    if previous is not None and not previous.empty:
        joined = out.merge(previous[[*KEY, "person_id"]], on=KEY, how="inner")
        overlap = joined.groupby(["cluster_id", "person_id"]).size().reset_index(name="shared")
        overlap = overlap.sort_values(
            ["shared", "cluster_id", "person_id"], ascending=[False, True, True]
        )
        taken: set[str] = set()
        for cluster_id, person_id in zip(overlap["cluster_id"], overlap["person_id"], strict=True):
            if cluster_id in inherited or person_id in taken:
                continue
            inherited[cluster_id] = person_id
            taken.add(person_id)
    ids = {c: inherited.get(c) or new_id() for c in out["cluster_id"].unique()}
    out["person_id"] = out["cluster_id"].map(ids)
    return out[[*KEY, "person_id"]].sort_values(KEY, ignore_index=True)


def add_records(
    index: pd.DataFrame,
    links: pd.DataFrame,
    new_records: pd.DataFrame,
    *,
    new_id: Callable[[], str] = new_person_id,
) -> pd.DataFrame:
    """The index plus ``new_records`` (source, record_key): each takes the person of its
    link in ``links`` (source_l, record_key_l -> source_r, record_key_r in the index) or a
    new id. A record already in the index keeps its person."""
    known = index.set_index(KEY)["person_id"]
    matched = links.merge(
        index.rename(columns={"source": "source_r", "record_key": "record_key_r"}),
        on=["source_r", "record_key_r"],
        how="inner",
    ).set_index(["source_l", "record_key_l"])["person_id"]
    rows = []
    for source, record_key in zip(new_records["source"], new_records["record_key"], strict=True):
        if (source, record_key) in known.index:
            continue
        person = matched.get((source, record_key))
        rows.append((source, record_key, person if isinstance(person, str) else new_id()))
    added = pd.DataFrame(rows, columns=[*KEY, "person_id"])
    return pd.concat([index, added], ignore_index=True).sort_values(KEY, ignore_index=True)
