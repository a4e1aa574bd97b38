"""The person index: random ids per cluster, carried forward by largest overlap."""

from __future__ import annotations

import uuid
from itertools import count

import pandas as pd

from enclave.linkage.person_index import add_records, assign_person_ids


def clusters(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["source", "record_key", "cluster_id"])


def counter() -> object:
    numbers = count(1)
    return lambda: f"new-{next(numbers)}"


def test_first_run_gives_random_uuids_per_cluster() -> None:
    index = assign_person_ids(clusters([("a", "1", "c1"), ("b", "9", "c1"), ("a", "2", "c2")]))
    ids = index.set_index(["source", "record_key"])["person_id"]
    assert ids[("a", "1")] == ids[("b", "9")] != ids[("a", "2")]
    assert uuid.UUID(ids[("a", "1")]).version == 4


def test_ids_follow_the_largest_overlap_and_are_never_reused() -> None:
    previous = pd.DataFrame(
        {
            "source": ["a", "b", "c", "a"],
            "record_key": ["1", "1", "1", "2"],
            "person_id": ["P", "P", "P", "Q"],
        }
    )
    # P's records are split: two stay together (keep P), one joins Q's record
    now = clusters(
        [("a", "1", "x"), ("b", "1", "x"), ("c", "1", "y"), ("a", "2", "y"), ("d", "5", "z")]
    )
    index = assign_person_ids(now, previous, new_id=counter())  # type: ignore[arg-type]
    ids = dict(
        zip(zip(index["source"], index["record_key"], strict=True), index["person_id"], strict=True)
    )
    assert ids[("a", "1")] == ids[("b", "1")] == "P"
    assert ids[("c", "1")] == ids[("a", "2")] == "Q"
    assert ids[("d", "5")] == "new-1"


def test_new_records_join_their_links_or_become_new_people() -> None:
    index = pd.DataFrame({"source": ["a"], "record_key": ["1"], "person_id": ["P"]})
    links = pd.DataFrame(
        {"source_l": ["n"], "record_key_l": ["7"], "source_r": ["a"], "record_key_r": ["1"]}
    )
    new = pd.DataFrame({"source": ["n", "n", "a"], "record_key": ["7", "8", "1"]})
    updated = add_records(index, links, new, new_id=counter())  # type: ignore[arg-type]
    assert updated.values.tolist() == [["a", "1", "P"], ["n", "7", "P"], ["n", "8", "new-1"]]
