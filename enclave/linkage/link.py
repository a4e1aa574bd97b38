"""Splink behind one class: register sources, train or load a model, predict, cluster, and
score new records against an existing index (``predict_between``).

A ``Linkage`` lives inside ``backends.open_backend``; it reads standardised frames (see
``standardise``) whose rows carry ``record_key`` and whose source is named by the mapping key.
Results come back as small pandas frames; the scored pairs stay in the backend and are read
through SQL summaries (a weight histogram, expected precision and recall), because at scale
there are tens of millions of them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
from splink import Linker
from splink.internals.blocking_rule_creator import BlockingRuleCreator

from enclave.linkage.errors import LinkageError
from enclave.linkage.model import TrainedModel, blocking_rule, settings_creator, trained_model
from enclave.linkage.progress import Bar, bar
from enclave.linkage.settings import LinkageSettings
from enclave.linkage.standardise import SOURCE, UNIQUE_ID

SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_source_name(name: str) -> str:
    """A source name usable as a table name; LinkageError otherwise."""
    if not SOURCE_NAME.match(name):
        raise LinkageError(
            f"source name {name!r} must be lower-case letters, digits and underscores, "
            "starting with a letter"
        )
    return name


@dataclass(frozen=True)
class QualityPoint:
    """Model-based expected quality at one match-probability threshold (no truth needed):
    expected true links = sum of p over accepted pairs, expected false = sum of (1 - p),
    expected missed = sum of p over scored pairs below the threshold."""

    threshold: float
    pairs: int
    precision: float
    recall: float
    f1: float


class Linkage:
    """Sources, model and predictions of one linkage run on one backend."""

    def __init__(
        self,
        api: Any,
        sources: Mapping[str, pd.DataFrame],
        settings: LinkageSettings,
        *,
        model: TrainedModel | None = None,
        progress: bool = False,
    ) -> None:
        """Register ``sources`` (name -> standardised frame) with ``api``; with ``model`` the
        linker starts trained (its settings win over ``settings``)."""
        if not sources:
            raise LinkageError("nothing to link: no sources")
        self.settings = model.settings if model is not None else settings
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._api = api
        self._tables = {
            check_source_name(name): api.register(frame, dataset_display_name=name)
            for name, frame in sources.items()
        }
        dialect = api.sql_dialect.sql_dialect_str
        splink_settings: Any = (
            model.splink_settings(dialect) if model else settings_creator(self.settings)
        )
        self._linker = Linker(
            list(self._tables.values()), splink_settings, log_level=logging.WARNING
        )
        self._trained = model
        self._predictions: Any = None

    @property
    def sources(self) -> tuple[str, ...]:
        """The registered source names."""
        return tuple(self._tables)

    @contextmanager
    def _step(self, name: str, progress: Bar | None = None) -> Iterator[None]:
        if progress is not None:
            progress.set_postfix_str(name)
        started = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
        if progress is not None:
            progress.update()

    def train(self) -> TrainedModel:
        """Estimate the prior from the deterministic rules, u by random sampling (fixed seed)
        and m by EM on each EM blocking rule in turn; return the portable model."""
        s = self.settings
        training = self._linker.training
        steps = 2 + len(s.em_blocking_rules)
        with bar(steps, "training", enabled=self.progress) as steps_bar:
            with self._step("prior", steps_bar):
                rules: list[str | BlockingRuleCreator] = [
                    blocking_rule(r) for r in s.deterministic_rules or s.blocking_rules[:1]
                ]
                training.estimate_probability_two_random_records_match(rules, recall=s.recall)
            with self._step("u", steps_bar):
                training.estimate_u_using_random_sampling(max_pairs=s.u_max_pairs, seed=s.seed)
            for rule in s.em_blocking_rules:
                with self._step("em", steps_bar):
                    training.estimate_parameters_using_expectation_maximisation(
                        blocking_rule(rule), max_pairs=s.em_max_pairs
                    )
        self._trained = trained_model(s, self._linker.misc.save_model_to_json())
        return self._trained

    @property
    def model(self) -> TrainedModel:
        """The trained (or loaded) model; LinkageError before training."""
        if self._trained is None:
            raise LinkageError("the linkage model has not been trained or loaded")
        return self._trained

    def predict(self) -> int:
        """Score every blocked pair above the prediction threshold; return how many."""
        self.model  # noqa: B018 -- refuse to predict with an untrained model
        s = self.settings
        chunks = s.predict_chunks
        with (
            bar(1, "scoring pairs", enabled=self.progress) as one,
            self._step("predict", one),
        ):
            self._predictions = self._linker.inference.predict(
                threshold_match_probability=s.predict_threshold,
                num_chunks_left=chunks if chunks > 1 else None,
                num_chunks_right=chunks if chunks > 1 else None,
                warning_mode="never",
            )
        return int(self._scalar(f"SELECT count(*) FROM {self._predicted}"))

    @property
    def _predicted(self) -> str:
        if self._predictions is None:
            raise LinkageError("no predictions yet: call predict() first")
        return str(self._predictions.physical_name)

    def _query(self, sql: str) -> pd.DataFrame:
        # query_sql is untyped in Splink; the backend API is the typed path to the same call
        frame: pd.DataFrame = self._api.query_sql(sql, output_type="pandas")
        return frame

    def _scalar(self, sql: str) -> Any:
        return self._query(sql).iloc[0, 0]

    def clusters(self, threshold: float | None = None) -> pd.DataFrame:
        """Clusters at ``threshold`` (default: the settings' cluster threshold): ``source``,
        ``record_key``, ``cluster_id``. For link_only, at most one record per source per
        cluster (single best links); otherwise connected components."""
        cut = self.settings.cluster_threshold if threshold is None else threshold
        clustering = self._linker.clustering
        with (
            bar(1, "clustering", enabled=self.progress) as one,
            self._step("cluster", one),
        ):
            if self.settings.link_type == "link_only":
                result = clustering.cluster_using_single_best_links(
                    self._predictions,
                    duplicate_free_datasets=list(self._tables),
                    threshold_match_probability=cut,
                    ties_method="lowest_id",
                )
            else:
                result = clustering.cluster_pairwise_predictions_at_threshold(
                    self._predictions, threshold_match_probability=cut
                )
            frame = self._query(
                f"SELECT {SOURCE} AS source, {UNIQUE_ID} AS record_key, cluster_id "
                f"FROM {result.physical_name}"
            )
        return frame.sort_values(["source", "record_key"], ignore_index=True)

    def pairs(self, threshold: float) -> pd.DataFrame:
        """Scored pairs at or above ``threshold``: source and record_key of each side,
        ``match_weight`` and ``match_probability``."""
        return self._query(
            f"SELECT {SOURCE}_l AS source_l, {UNIQUE_ID}_l AS record_key_l, "
            f"{SOURCE}_r AS source_r, {UNIQUE_ID}_r AS record_key_r, "
            f"match_weight, match_probability FROM {self._predicted} "
            f"WHERE match_probability >= {float(threshold)!r}"
        )

    def weight_histogram(self, width: float = 1.0) -> pd.DataFrame:
        """Scored pairs per match-weight bin: ``bin_start`` (a multiple of ``width``) and
        ``pairs``, in order."""
        frame = self._query(
            f"SELECT floor(match_weight / {width!r}) * {width!r} AS bin_start, "
            f"count(*) AS pairs FROM {self._predicted} GROUP BY 1 ORDER BY 1"
        )
        return frame.astype({"bin_start": float, "pairs": int})

    def expected_quality(self, thresholds: Sequence[float]) -> list[QualityPoint]:
        """Model-based precision, recall and F1 at each threshold (see ``QualityPoint``)."""
        total = float(
            self._scalar(f"SELECT coalesce(sum(match_probability), 0) FROM {self._predicted}")
        )
        out = []
        for cut in thresholds:
            row = self._query(
                "SELECT count(*) AS n, coalesce(sum(match_probability), 0) AS tp, "
                f"coalesce(sum(1 - match_probability), 0) AS fp FROM {self._predicted} "
                f"WHERE match_probability >= {float(cut)!r}"
            ).iloc[0]
            tp, fp = float(row["tp"]), float(row["fp"])
            precision = tp / (tp + fp) if tp + fp else 1.0
            recall = tp / total if total else 1.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out.append(QualityPoint(float(cut), int(row["n"]), precision, recall, f1))
        return out

    def blocked_pair_count(self) -> int:
        """How many pairs the blocking rules generate (all of them, before any threshold),
        counted exactly."""
        from splink.blocking_analysis import count_comparisons_from_blocking_rules

        records = count_comparisons_from_blocking_rules(
            list(self._tables.values()),
            blocking_rules=[blocking_rule(r) for r in self.settings.blocking_rules],
            link_type=self.settings.link_type,  # type: ignore[arg-type]
            unique_id_column_name=UNIQUE_ID,
            source_dataset_column_name=SOURCE,
            record_sample_proportion=1.0,
        )
        return int(records[-1]["cumulative_comparison_count"])

    def predict_between(self, new: Mapping[str, pd.DataFrame], threshold: float) -> pd.DataFrame:
        """Score ``new`` sources (name -> standardised frame) against the registered ones
        (the index) with the trained model, never new against new; return pairs at or above
        ``threshold`` as ``pairs`` does, the new record on the left."""
        self.model  # noqa: B018 -- refuse to score with an untrained model
        clash = set(new) & set(self._tables)
        if clash:
            raise LinkageError(f"new sources must have new names: {', '.join(sorted(clash))}")
        for spec in self.settings.comparisons:
            if spec.term_frequency:
                # term frequencies come from the index, as the model was trained on it
                self._linker.table_management.compute_tf_table(spec.column)
        left = [
            self._api.register(frame, dataset_display_name=check_source_name(name))
            for name, frame in new.items()
        ]
        with self._step("predict_between"):
            scored = self._linker.inference.predict_between(
                left,
                list(self._tables.values()),
                threshold_match_probability=threshold,
                warning_mode="never",
            )
        frame = self._query(
            f"SELECT {SOURCE}_l AS source_l, {UNIQUE_ID}_l AS record_key_l, "
            f"{SOURCE}_r AS source_r, {UNIQUE_ID}_r AS record_key_r, "
            f"match_weight, match_probability FROM {scored.physical_name}"
        )
        return _new_on_left(frame, set(new))


def _new_on_left(frame: pd.DataFrame, new: set[str]) -> pd.DataFrame:
    """Splink may put either record of a pair on the left; put the new one there."""
    flip = ~frame["source_l"].isin(new)
    out = frame.copy()
    for side in ("source", "record_key"):
        left, right = f"{side}_l", f"{side}_r"
        out.loc[flip, left] = frame.loc[flip, right]
        out.loc[flip, right] = frame.loc[flip, left]
    return out


def best_links(pairs: pd.DataFrame) -> pd.DataFrame:
    """For each left record, its single most probable right record (ties: lowest key)."""
    if pairs.empty:
        return pairs.copy()
    ordered = pairs.sort_values(
        ["source_l", "record_key_l", "match_probability", "source_r", "record_key_r"],
        ascending=[True, True, False, True, True],
    )
    return ordered.drop_duplicates(["source_l", "record_key_l"]).reset_index(drop=True)
