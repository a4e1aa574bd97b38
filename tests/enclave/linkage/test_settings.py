"""LinkageSettings: one dataclass, a JSON round trip, validation and role-based defaults."""

from __future__ import annotations

import dataclasses
import json

import pytest

from enclave.linkage.errors import SettingsInvalid
from enclave.linkage.settings import (
    SWAPPED_NAMES,
    ComparisonSpec,
    LinkageSettings,
    default_settings,
)

ROLES = ["given_name", "surname", "date_of_birth", "sex", "postcode", "address", "national_id"]


def test_round_trip_through_json_gives_an_equal_object() -> None:
    settings = dataclasses.replace(
        default_settings(ROLES),
        em_max_pairs=2e6,
        memory_limit="4GB",
        predict_chunks=3,
        retain_columns=("truth",),
    )
    text = json.dumps(settings.to_dict())
    again = LinkageSettings.from_dict(json.loads(text))
    assert again == settings
    assert again.to_dict() == settings.to_dict()


def test_round_trip_of_every_method() -> None:
    comparisons = (
        ComparisonSpec("given_name", "given_name", (0.9,), True),
        ComparisonSpec("surname", "name"),
        ComparisonSpec("date_of_birth", "date_of_birth"),
        ComparisonSpec("postcode", "location", also="address"),
        ComparisonSpec("sex", "exact"),
        ComparisonSpec("locality", "jaro_winkler", (0.9, 0.7)),
        ComparisonSpec("national_id", "damerau_levenshtein", (1, 2)),
        ComparisonSpec("region", "postcode"),
    )
    settings = LinkageSettings(
        comparisons,
        (("surname",), (SWAPPED_NAMES,)),
        (),
        (("date_of_birth",),),
        link_type="link_and_dedupe",
        backend="spark",
    )
    assert LinkageSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


@pytest.mark.parametrize(
    "change,message",
    [
        ({"link_type": "merge"}, "link_type must be"),
        ({"backend": "oracle"}, "backend must be"),
        ({"recall": 0}, "recall must be"),
        ({"cluster_threshold": 1.0}, "cluster_threshold must be"),
        ({"predict_threshold": 0.99, "cluster_threshold": 0.5}, "must not be below"),
        ({"blocking_rules": ()}, "at least one blocking rule"),
        ({"threads": 0}, "at least 1"),
    ],
)
def test_invalid_values_are_refused(change: dict[str, object], message: str) -> None:
    data = default_settings(ROLES).to_dict() | change
    with pytest.raises(SettingsInvalid, match=message):
        LinkageSettings.from_dict(data)


def test_unknown_keys_and_methods_are_refused() -> None:
    data = default_settings(ROLES).to_dict()
    with pytest.raises(SettingsInvalid, match="unknown linkage setting"):
        LinkageSettings.from_dict(data | {"colour": "red"})
    data["comparisons"][0]["method"] = "telepathy"
    with pytest.raises(SettingsInvalid, match="unknown comparison method"):
        LinkageSettings.from_dict(data)
    with pytest.raises(SettingsInvalid, match="JSON object"):
        LinkageSettings.from_dict([])  # type: ignore[arg-type]


def test_defaults_follow_the_roles_present() -> None:
    full = default_settings(ROLES)
    methods = {c.column: c.method for c in full.comparisons}
    assert methods == {
        "given_name": "given_name",
        "surname": "name",
        "date_of_birth": "date_of_birth",
        "sex": "exact",
        "postcode": "location",
        "national_id": "damerau_levenshtein",
    }
    assert (SWAPPED_NAMES,) in full.blocking_rules
    assert full.deterministic_rules[0] == ("national_id",)
    # households share postcodes: EM never blocks on them
    assert full.em_blocking_rules == (("date_of_birth",), ("given_name", "surname"))
    abroad = default_settings(ROLES, uk_postcodes=False)
    assert {c.column: c.method for c in abroad.comparisons}["postcode"] == "damerau_levenshtein"
    assert "address" in {c.column for c in abroad.comparisons}
    with pytest.raises(SettingsInvalid, match="linking needs"):
        default_settings(["sex", "postcode"])
