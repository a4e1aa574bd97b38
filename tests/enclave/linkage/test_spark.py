"""The Spark backend (local Spark, two threads) on a small FEBRL subset: a model trained on
DuckDB scores exactly the same pairs on Spark, and Spark's clusters are as good. (Training on
Spark works too but takes minutes on tiny data, one Spark job per Splink query; the
benchmark measures it.)

Spark needs Java. If it is missing, the set-up installs Debian's headless JRE when it runs as
root with apt-get; only if that is impossible is the test skipped, saying why.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from enclave.linkage import evaluate
from enclave.linkage.backends import java_available, open_backend
from enclave.linkage.link import Linkage
from tests.enclave.linkage.helpers import febrl_frames, febrl_settings, febrl_subset, febrl_truth

pytestmark = pytest.mark.slow
KEPT = ("given_name", "surname", "date_of_birth", "postcode", "national_id")


def _ensure_java() -> None:
    if java_available():
        return
    apt = shutil.which("apt-get")
    if os.geteuid() == 0 and apt:
        for command in (
            [apt, "update", "-q"],
            [apt, "install", "-y", "-q", "default-jre-headless"],
        ):
            subprocess.run(command, check=False, capture_output=True, timeout=900)
    if not java_available():
        pytest.skip("no Java runtime, and it could not be installed (needs root and apt-get)")


def test_spark_backend_scores_and_clusters_like_duckdb(tmp_path: Path) -> None:
    _ensure_java()
    frames = febrl_frames(*febrl_subset(0, 300, 100))
    truth = febrl_truth(frames)
    # fewer comparisons and blocking rules than the defaults: every Splink query is a Spark
    # job with a fixed overhead, and the test is about the backend, not the model
    full = febrl_settings(u_max_pairs=5e4)
    duck_settings = dataclasses.replace(
        full,
        comparisons=tuple(c for c in full.comparisons if c.column in KEPT),
        blocking_rules=(("given_name", "surname"), ("date_of_birth",)),
    )
    with open_backend(duck_settings, tmp_path / "duck") as api:
        duck = Linkage(api, frames, duck_settings)
        model = duck.train()
        duck.predict()
        duck_pairs = duck.pairs(0.0)
        duck_clusters = duck.clusters()
    spark_settings = dataclasses.replace(duck_settings, backend="spark")
    with open_backend(spark_settings, tmp_path / "spark") as api:
        assert type(api).__name__ == "SparkAPI"
        spark_model = dataclasses.replace(model, settings=spark_settings)
        reused = Linkage(api, frames, spark_settings, model=spark_model)
        reused.predict()
        reused_pairs = reused.pairs(0.0)
        clusters = reused.clusters()
    spark_scores = evaluate.score_clusters(clusters, truth)
    assert spark_scores == evaluate.score_clusters(duck_clusters, truth)
    assert spark_scores.f1 >= 0.95
    key = ["source_l", "record_key_l", "source_r", "record_key_r"]
    merged = duck_pairs.merge(reused_pairs, on=key, suffixes=("_duck", "_spark"))
    assert len(merged) == len(duck_pairs) == len(reused_pairs)
    assert (merged["match_weight_duck"] - merged["match_weight_spark"]).abs().max() < 1e-6
