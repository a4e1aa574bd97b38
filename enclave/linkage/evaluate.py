"""Linkage quality against a known truth (pure): pairwise precision, recall and F1.

A pair of records is a true link when both belong to the same true entity. Clusters are
scored by the pairs they imply (every two records in one cluster), which is the usual
pairwise measure for clustered linkage; scored pairs are scored directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

KEY = ["source", "record_key"]


@dataclass(frozen=True)
class Scores:
    """Pair counts and the measures derived from them."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float | int]:
        """Counts and measures as plain values."""
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


def _pairs_within(sizes: pd.Series) -> int:
    n = sizes.to_numpy(dtype="int64")
    return int((n * (n - 1) // 2).sum())


def true_pair_count(truth: pd.DataFrame, *, across_sources_only: bool) -> int:
    """Pairs of records of one entity (``truth``: source, record_key, entity); with
    ``across_sources_only`` pairs within one source do not count (a link-only linkage
    cannot find them)."""
    total = _pairs_within(truth.groupby("entity").size())
    if across_sources_only:
        total -= _pairs_within(truth.groupby(["entity", "source"]).size())
    return total


def score_clusters(
    clusters: pd.DataFrame, truth: pd.DataFrame, *, across_sources_only: bool = True
) -> Scores:
    """Score ``clusters`` (source, record_key, cluster_id) against ``truth`` (source,
    record_key, entity). Records missing from ``clusters`` count as singletons."""
    joined = truth.merge(clusters, on=KEY, how="left")
    missing = joined["cluster_id"].isna()
    joined.loc[missing, "cluster_id"] = "__single__" + joined.loc[missing, "record_key"].astype(str)
    predicted = _pairs_within(joined.groupby("cluster_id").size())
    hits = _pairs_within(joined.groupby(["cluster_id", "entity"]).size())
    wanted = true_pair_count(truth, across_sources_only=across_sources_only)
    return Scores(hits, predicted - hits, wanted - hits)


def score_pairs(
    pairs: pd.DataFrame, truth: pd.DataFrame, *, across_sources_only: bool = True
) -> Scores:
    """Score accepted ``pairs`` (source_l, record_key_l, source_r, record_key_r) against
    ``truth`` (source, record_key, entity); each unordered pair is counted once."""
    left = truth.rename(
        columns={"source": "source_l", "record_key": "record_key_l", "entity": "e_l"}
    )
    right = truth.rename(
        columns={"source": "source_r", "record_key": "record_key_r", "entity": "e_r"}
    )
    unique = _unordered(pairs)
    joined = unique.merge(left, how="left").merge(right, how="left")
    hits = int((joined["e_l"].notna() & (joined["e_l"] == joined["e_r"])).sum())
    wanted = true_pair_count(truth, across_sources_only=across_sources_only)
    return Scores(hits, len(unique) - hits, wanted - hits)


def _unordered(pairs: pd.DataFrame) -> pd.DataFrame:
    cols = ["source_l", "record_key_l", "source_r", "record_key_r"]
    frame = pairs[cols].astype(str)
    a = frame["source_l"] + "\x1f" + frame["record_key_l"]
    b = frame["source_r"] + "\x1f" + frame["record_key_r"]
    swap = a > b
    out = frame.copy()
    out.loc[swap, ["source_l", "record_key_l"]] = frame.loc[
        swap, ["source_r", "record_key_r"]
    ].to_numpy()
    out.loc[swap, ["source_r", "record_key_r"]] = frame.loc[
        swap, ["source_l", "record_key_l"]
    ].to_numpy()
    return out.drop_duplicates(ignore_index=True)
