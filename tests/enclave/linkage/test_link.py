"""The Splink wrapper on FEBRL4 subsets (offline): training, prediction, clustering, saved
models reloaded in a fresh backend, and incremental linking with predict_between."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from enclave.linkage import evaluate
from enclave.linkage.backends import open_backend
from enclave.linkage.errors import LinkageError, SettingsInvalid
from enclave.linkage.link import Linkage, best_links
from enclave.linkage.model import TrainedModel
from tests.enclave.linkage.helpers import febrl_frames, febrl_settings, febrl_subset, febrl_truth


@dataclasses.dataclass
class Trained:
    frames: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    model: TrainedModel
    pairs: pd.DataFrame
    clusters: pd.DataFrame
    histogram: pd.DataFrame
    scored: int
    expected: list[object]
    timings: dict[str, float]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    frames = febrl_frames(*febrl_subset(0, 800, 200))
    settings = febrl_settings()
    with open_backend(settings, tmp_path_factory.mktemp("work")) as api:
        linkage = Linkage(api, frames, settings)
        model = linkage.train()
        scored = linkage.predict()
        yield Trained(
            frames,
            febrl_truth(frames),
            model,
            linkage.pairs(0.0),
            linkage.clusters(),
            linkage.weight_histogram(1.0),
            scored,
            list(linkage.expected_quality([0.5, 0.99])),
            dict(linkage.timings),
        )


def test_febrl_subset_links_almost_perfectly(trained: Trained) -> None:
    scores = evaluate.score_clusters(trained.clusters, trained.truth)
    assert scores.true_positives + scores.false_negatives == 600
    assert scores.f1 >= 0.99, scores
    pairs = evaluate.score_pairs(
        trained.pairs[trained.pairs["match_probability"] >= 0.5], trained.truth
    )
    assert pairs.f1 >= 0.99, pairs


def test_clusters_hold_at_most_one_record_per_source(trained: Trained) -> None:
    per_source = trained.clusters.groupby(["cluster_id", "source"]).size()
    assert per_source.max() == 1
    assert set(trained.clusters["source"]) == {"a", "b"}


def test_summaries_agree_with_the_pairs(trained: Trained) -> None:
    assert trained.scored == len(trained.pairs)
    assert int(trained.histogram["pairs"].sum()) == trained.scored
    assert set(trained.timings) >= {"prior", "u", "em", "predict", "cluster"}
    for point in trained.expected:
        assert 0.0 <= point.precision <= 1.0 and 0.0 <= point.recall <= 1.0  # type: ignore[attr-defined]
    # the prior is estimated from the deterministic rules: 600 matches in 800 x 800 pairs
    assert (
        600 / 640_000 / 3 < trained.model.probability_two_random_records_match < 3 * 600 / 640_000
    )


def test_saved_model_reloads_in_a_fresh_backend_with_the_same_scores(
    trained: Trained, tmp_path: Path
) -> None:
    path = tmp_path / "model.json"
    trained.model.save(path)
    model = TrainedModel.load(path)
    assert model == trained.model
    with open_backend(model.settings, tmp_path / "work") as api:
        again = Linkage(api, trained.frames, model.settings, model=model)
        again.predict()
        pairs = again.pairs(0.0)
    key = ["source_l", "record_key_l", "source_r", "record_key_r"]
    merged = trained.pairs.merge(pairs, on=key, suffixes=("", "_again"))
    assert len(merged) == len(trained.pairs) == len(pairs)
    assert (merged["match_weight"] - merged["match_weight_again"]).abs().max() < 1e-9


def test_a_model_from_another_version_is_refused(trained: Trained, tmp_path: Path) -> None:
    data = trained.model.to_dict()
    data["comparisons"][0]["levels"][1]["label"] = "something else"
    with pytest.raises(SettingsInvalid, match="retrain"):
        TrainedModel.from_dict(data).splink_settings("duckdb")
    with pytest.raises(SettingsInvalid, match="not a linkage model"):
        TrainedModel.from_dict({"format": "other"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SettingsInvalid, match="cannot read"):
        TrainedModel.load(bad)


def test_predict_between_links_a_new_cohort_to_the_index(trained: Trained, tmp_path: Path) -> None:
    _, b_early = febrl_subset(0, 50, 0)  # duplicates of entities 0-49: their originals are in a
    a_new, _ = febrl_subset(2000, 2030, 0)  # originals of entities nobody in the index has
    cohort = febrl_frames(pd.concat([b_early, a_new], ignore_index=True), a_new.iloc[:0])["a"]
    model = trained.model
    with open_backend(model.settings, tmp_path / "work") as api:
        linkage = Linkage(api, trained.frames, model.settings, model=model)
        with pytest.raises(LinkageError, match="new names"):
            linkage.predict_between({"a": cohort}, threshold=0.5)
        pairs = linkage.predict_between({"cohort": cohort}, threshold=0.5)
    links = best_links(pairs)
    assert set(links["source_l"]) == {"cohort"}
    entity = links["record_key_l"].str.extract(r"rec-(\d+)-")[0]
    linked = links["record_key_r"].str.extract(r"rec-(\d+)-")[0]
    assert (entity == linked).all()
    assert set(entity.astype(int)) == set(range(50))  # every early one found, no new one


def test_untrained_linkage_refuses_to_predict(tmp_path: Path) -> None:
    frames = febrl_frames(*febrl_subset(0, 50, 0))
    settings = febrl_settings()
    with open_backend(settings, tmp_path / "work") as api:
        linkage = Linkage(api, frames, settings)
        with pytest.raises(LinkageError, match="not been trained"):
            linkage.predict()
        with pytest.raises(LinkageError, match="source name"):
            Linkage(api, {"Bad Name": frames["a"]}, settings)


def test_blocked_pairs_are_counted_exactly(trained: Trained, tmp_path: Path) -> None:
    settings = trained.model.settings
    with open_backend(settings, tmp_path / "work") as api:
        linkage = Linkage(api, trained.frames, settings, model=trained.model)
        blocked = linkage.blocked_pair_count()
        unfiltered = dataclasses.replace(settings, predict_threshold=0.0)
        everything = Linkage(
            api,
            {f"x{k}": v for k, v in trained.frames.items()},
            unfiltered,
            model=dataclasses.replace(trained.model, settings=unfiltered),
        )
        assert everything.predict() == blocked >= trained.scored
