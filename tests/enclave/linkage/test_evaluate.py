"""Pairwise precision, recall and F1 of clusters and of pairs against a truth."""

from __future__ import annotations

import pandas as pd

from enclave.linkage.evaluate import Scores, score_clusters, score_pairs, true_pair_count

TRUTH = pd.DataFrame(
    {
        "source": ["a", "b", "c", "a", "b", "a"],
        "record_key": ["1", "1", "1", "2", "2", "3"],
        "entity": ["x", "x", "x", "y", "y", "z"],
    }
)


def test_true_pairs() -> None:
    assert true_pair_count(TRUTH, across_sources_only=True) == 4  # xab xac xbc yab
    dup = pd.concat([TRUTH, pd.DataFrame({"source": ["a"], "record_key": ["9"], "entity": ["z"]})])
    assert true_pair_count(dup, across_sources_only=True) == 4
    assert true_pair_count(dup, across_sources_only=False) == 5


def test_cluster_scores() -> None:
    clusters = pd.DataFrame(
        {
            "source": ["a", "b", "c", "a", "b", "a"],
            "record_key": ["1", "1", "1", "2", "2", "3"],
            "cluster_id": ["k1", "k1", "k2", "k3", "k3", "k3"],
        }
    )
    scores = score_clusters(clusters, TRUTH)
    # k1: a1-b1 right; k3: a2-b2 right, a2-a3 and b2-a3 wrong; missed a1-c1, b1-c1
    assert scores == Scores(2, 2, 2)
    assert scores.precision == 0.5 and scores.recall == 0.5 and scores.f1 == 0.5


def test_pair_scores_count_each_unordered_pair_once() -> None:
    pairs = pd.DataFrame(
        {
            "source_l": ["a", "b", "a", "a"],
            "record_key_l": ["1", "1", "2", "1"],
            "source_r": ["b", "a", "b", "a"],
            "record_key_r": ["1", "1", "2", "3"],
        }
    )
    scores = score_pairs(pairs, TRUTH)
    assert scores == Scores(true_positives=2, false_positives=1, false_negatives=2)
    assert Scores(0, 0, 0).f1 == 1.0  # nothing to find, nothing found
    assert Scores(0, 3, 0).precision == 0.0 and Scores(0, 3, 0).f1 == 0.0
