"""From ``LinkageSettings`` to Splink objects, and the trained model as portable JSON.

Splink's own model JSON embeds SQL of the dialect it was trained on (DuckDB's
``jaro_winkler_similarity`` and double-quoted names mean something else to Spark), so the
model saved here is the settings plus the trained numbers: the prior and the m and u
probability of every comparison level. Loading it rebuilds the comparisons for whichever
backend runs it and pours the numbers back in, level by level, after checking that the levels
are the same ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import splink
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import ColumnExpression, SettingsCreator, block_on
from splink.blocking_rule_library import CustomRule
from splink.internals.blocking_rule_creator import BlockingRuleCreator
from splink.internals.comparison_creator import ComparisonCreator

from enclave.linkage.errors import SettingsInvalid
from enclave.linkage.settings import SWAPPED_NAMES, ComparisonSpec, LinkageSettings
from enclave.linkage.standardise import ALIAS, SOURCE, UNIQUE_ID

MODEL_FORMAT = "enclave-linkage-model/1"


def comparison(spec: ComparisonSpec) -> ComparisonCreator:
    """The Splink comparison for one ``ComparisonSpec`` (dialect-neutral)."""
    col, t = spec.column, spec.thresholds
    if spec.method == "name":
        return _name_levels(col, t or (0.92, 0.88, 0.7), spec.term_frequency, given=False)
    if spec.method == "given_name":
        return _name_levels(col, t or (0.92, 0.88, 0.7), spec.term_frequency, given=True)
    if spec.method == "date_of_birth":
        return _date_of_birth(col)
    if spec.method == "postcode":
        return cl.PostcodeComparison(col)
    if spec.method == "location" and spec.also is not None:
        return _location(col, spec.also)
    if spec.method == "exact":
        return cl.ExactMatch(col).configure(term_frequency_adjustments=spec.term_frequency)
    if spec.method == "jaro_winkler":
        return cl.JaroWinklerAtThresholds(col, list(t or (0.9, 0.7))).configure(
            term_frequency_adjustments=spec.term_frequency
        )
    return cl.DamerauLevenshteinAtThresholds(col, [int(x) for x in (t or (1, 2))]).configure(
        term_frequency_adjustments=spec.term_frequency
    )


def _name_levels(
    col: str, thresholds: tuple[float, ...], tf: bool, *, given: bool
) -> ComparisonCreator:
    levels: list[Any] = [
        cll.NullLevel(col),
        cll.ExactMatchLevel(col, term_frequency_adjustments=tf),
    ]
    high = [x for x in thresholds if x >= 0.88]
    low = [x for x in thresholds if x < 0.88]
    if given:
        # names typed into each other's fields, and a nickname for the registered name
        levels.append(
            cll.ColumnsReversedLevel(col, "surname", symmetrical=True).configure(
                label_for_charts="Given name and surname swapped"
            )
        )
    levels += [cll.JaroWinklerLevel(col, x) for x in high]
    if given:
        levels.append(
            cll.ExactMatchLevel(ALIAS).configure(label_for_charts="Same name after nicknames")
        )
    levels += [cll.JaroWinklerLevel(col, x) for x in low]
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(levels, output_column_name=col, comparison_description="name")


def _date_of_birth(col: str) -> ComparisonCreator:
    """Exact, day and month transposed, one character off, then within 1 month, 1 year, 10
    years. Dates are ISO strings after standardisation, so plain ``substr`` works on every
    backend."""
    transposed = (
        f"substr({col}_l, 1, 4) = substr({col}_r, 1, 4) "
        f"AND substr({col}_l, 6, 2) = substr({col}_r, 9, 2) "
        f"AND substr({col}_l, 9, 2) = substr({col}_r, 6, 2)"
    )
    levels: list[Any] = [
        cll.NullLevel(col),
        cll.ExactMatchLevel(col),
        cll.CustomLevel(transposed, label_for_charts="Day and month transposed"),
        cll.LevenshteinLevel(col, 1),
    ]
    steps: tuple[tuple[int, Literal["month", "year"]], ...] = (
        (1, "month"),
        (1, "year"),
        (10, "year"),
    )
    for threshold, metric in steps:
        levels.append(
            cll.AbsoluteDateDifferenceLevel(
                col, input_is_string=True, threshold=threshold, metric=metric
            )
        )
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(
        levels, output_column_name=col, comparison_description="date of birth"
    )


def _location(postcode: str, address: str) -> ComparisonCreator:
    """Postcode and address line as one comparison: same dwelling, same postcode, same
    address line under another postcode (a mistyped code), same sector, district, area."""
    code = ColumnExpression(postcode)
    parts = (
        ("sector", cl.PostcodeComparison.SECTOR_REGEX),
        ("district", cl.PostcodeComparison.DISTRICT_REGEX),
        ("area", cl.PostcodeComparison.AREA_REGEX),
    )
    levels: list[Any] = [
        cll.And(cll.NullLevel(postcode), cll.NullLevel(address)).configure(
            is_null_level=True, label_for_charts="Postcode and address missing"
        ),
        cll.And(cll.ExactMatchLevel(postcode), cll.ExactMatchLevel(address)).configure(
            label_for_charts="Same postcode and address"
        ),
        cll.ExactMatchLevel(postcode).configure(label_for_charts="Same postcode"),
        cll.ExactMatchLevel(address).configure(label_for_charts="Same address line"),
        *(
            cll.ExactMatchLevel(code.regex_extract(regex)).configure(
                label_for_charts=f"Same postcode {name}"
            )
            for name, regex in parts
        ),
        cll.ElseLevel(),
    ]
    return cl.CustomComparison(
        levels, output_column_name=postcode, comparison_description="location"
    )


def blocking_rule(rule: tuple[str, ...]) -> BlockingRuleCreator:
    """``block_on`` for equal columns; the swapped-names rule as plain, unquoted SQL that
    DuckDB and Spark read alike."""
    if rule == (SWAPPED_NAMES,):
        return CustomRule("l.given_name = r.surname AND l.surname = r.given_name")
    return block_on(*rule)


def settings_creator(settings: LinkageSettings) -> SettingsCreator:
    """The untrained Splink settings for ``settings``."""
    return SettingsCreator(
        link_type=settings.link_type,  # type: ignore[arg-type]
        unique_id_column_name=UNIQUE_ID,
        source_dataset_column_name=SOURCE,
        comparisons=[comparison(c) for c in settings.comparisons],
        blocking_rules_to_generate_predictions=[blocking_rule(r) for r in settings.blocking_rules],
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=False,
        additional_columns_to_retain=list(settings.retain_columns),
    )


@dataclass(frozen=True)
class TrainedModel:
    """Settings plus trained parameters: the prior and (label, m, u) per comparison level."""

    settings: LinkageSettings
    probability_two_random_records_match: float
    levels: tuple[tuple[tuple[str, float | None, float | None], ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``from_dict`` reads it back)."""
        return {
            "format": MODEL_FORMAT,
            "splink_version": splink.__version__,
            "settings": self.settings.to_dict(),
            "probability_two_random_records_match": self.probability_two_random_records_match,
            "comparisons": [
                {
                    "column": spec.column,
                    "levels": [{"label": lab, "m": m, "u": u} for lab, m, u in levels],
                }
                for spec, levels in zip(self.settings.comparisons, self.levels, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainedModel:
        """Read ``to_dict`` output; SettingsInvalid when it is not such a model."""
        if not isinstance(data, Mapping) or data.get("format") != MODEL_FORMAT:
            raise SettingsInvalid(f"not a linkage model (expected format {MODEL_FORMAT})")
        settings = LinkageSettings.from_dict(data["settings"])
        try:
            levels = tuple(
                tuple((str(v["label"]), _prob(v["m"]), _prob(v["u"])) for v in c["levels"])
                for c in data["comparisons"]
            )
            prior = float(data["probability_two_random_records_match"])
        except (KeyError, TypeError, ValueError) as error:
            raise SettingsInvalid(f"invalid linkage model: {error}") from None
        if len(levels) != len(settings.comparisons) or not 0 < prior < 1:
            raise SettingsInvalid("linkage model parameters do not match its settings")
        return cls(settings, prior, levels)

    def save(self, path: Path) -> None:
        """Write the model as JSON (UTF-8, indented)."""
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainedModel:
        """Read a model file; SettingsInvalid when unreadable or not a model."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SettingsInvalid(f"cannot read linkage model {path}: {error}") from None
        return cls.from_dict(data)

    def splink_settings(self, dialect: str) -> dict[str, Any]:
        """Splink settings for ``dialect`` with the trained numbers filled in.

        Raises:
            SettingsInvalid: the comparisons this code builds now have other levels than the
                ones the model was trained with (the model is from another version).
        """
        built = settings_creator(self.settings).create_settings_dict(dialect)
        built["probability_two_random_records_match"] = self.probability_two_random_records_match
        for comp, trained in zip(built["comparisons"], self.levels, strict=True):
            levels = comp["comparison_levels"]
            labels = [lv.get("label_for_charts") for lv in levels]
            if labels != [lab for lab, _, _ in trained]:
                raise SettingsInvalid(
                    f"the model's levels for {comp.get('output_column_name')} differ from "
                    "this version's; retrain the model"
                )
            for level, (_, m, u) in zip(levels, trained, strict=True):
                if m is not None:
                    level["m_probability"] = m
                if u is not None:
                    level["u_probability"] = u
        return built


def _prob(value: Any) -> float | None:
    return None if value is None else float(value)


def trained_model(settings: LinkageSettings, splink_dict: Mapping[str, Any]) -> TrainedModel:
    """The portable model from a trained linker's ``save_model_to_json()`` dictionary."""
    levels = tuple(
        tuple(
            (
                str(level.get("label_for_charts")),
                _prob(level.get("m_probability")),
                _prob(level.get("u_probability")),
            )
            for level in comp["comparison_levels"]
        )
        for comp in splink_dict["comparisons"]
    )
    return TrainedModel(
        settings, float(splink_dict["probability_two_random_records_match"]), levels
    )
