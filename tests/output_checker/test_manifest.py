"""The results-manifest schema, validation and atomic file I/O."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest

from output_checker import CheckerError, Parameters, Status, check_table, manifest
from output_checker.results import SCHEMA_ID, SCHEMA_VERSION
from output_checker.rules import RULES

Record = dict[str, Any]


def frame(seed: int = 3, n: int = 160) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.choice(["x", "y", "z"], n, p=[0.5, 0.45, 0.05]),
            "b": rng.choice([1, 2, 3], n),
            "c": rng.choice([True, False], n),
            "person": rng.integers(0, 60, n),
            "w": rng.uniform(1, 3, n).round(),
            "inc": rng.lognormal(3, 1, n) - 2,
        }
    )
    df.loc[df.index[:4], "inc"] = np.nan
    return df


@pytest.fixture(scope="module")
def record() -> Record:
    return check_table(frame(), "a", "b", values="inc", aggfunc="mean", margins=True).to_dict()


REQUESTS: list[dict[str, Any]] = [
    {"index": "a"},
    {"index": "a", "columns": "b", "margins": True},
    {"index": ["a", "c"], "columns": "b", "hierarchical": True},
    {"index": "a", "columns": "b", "values": "inc", "aggfunc": "sum", "entity": "person"},
    {"index": "a", "values": "inc", "aggfunc": "mean", "weights": "w"},
    {"index": "a", "columns": "c", "values": "inc", "aggfunc": "median"},
    {"index": "a", "values": "inc", "aggfunc": "quantile(0.9)"},
    {"index": "a", "columns": "b", "values": "inc", "aggfunc": "max"},
    {"index": "a", "columns": "b", "values": "inc", "aggfunc": "mode"},
    {"index": "a", "columns": "b", "values": "inc", "aggfunc": "std"},
    {"index": "a", "columns": "b", "structural_zeros": [("z", 3)]},
]


@pytest.mark.parametrize("conventions", ["default", "acro"])
@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: "-".join(map(str, r.values())))
def test_real_records_validate(request_: dict[str, Any], conventions: str) -> None:
    record = check_table(frame(), conventions=conventions, **request_).to_dict()
    manifest.validate(record)
    assert record["cells"]  # a table with cells, so the cell schema was exercised


def test_schema_is_the_packaged_versioned_file() -> None:
    jsonschema.Draft202012Validator.check_schema(manifest.SCHEMA)
    assert manifest.SCHEMA["$id"] == SCHEMA_ID
    assert manifest.SCHEMA["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    path = Path(manifest.__file__).parent / "schema" / f"manifest-v{SCHEMA_VERSION}.json"
    assert json.loads(path.read_text()) == manifest.SCHEMA


def test_schema_vocabulary_matches_the_code() -> None:
    defs = manifest.SCHEMA["$defs"]
    assert set(defs["rule_id"]["enum"]) == set(RULES)
    assert defs["status"]["enum"] == [s.label for s in Status]
    required = set(defs["parameters"]["required"])
    assert required == {f.name for f in dataclasses.fields(Parameters)} & required
    assert required <= set(Parameters().to_dict())


def mutate(record: Record, change: Callable[[Record], object]) -> Record:
    changed = copy.deepcopy(record)
    change(changed)
    return changed


BAD: list[tuple[str, Callable[[Record], object], str]] = [
    ("no status", lambda r: r.pop("status"), "$: missing required key 'status'"),
    ("no output", lambda r: r.pop("output"), "$: missing required key 'output'"),
    ("version 2", lambda r: r.update(schema_version=2), "$.schema_version: expected 1"),
    ("kind", lambda r: r.update(kind="chart"), "$.kind: expected one of"),
    ("status", lambda r: r.update(status="ok"), "$.status: expected one of"),
    ("two lines", lambda r: r.update(summary="a\nb"), "$.summary: does not match"),
    ("local time", lambda r: r.update(created="2026-01-01T10:00:00+02:00"), "$.created"),
    ("short sha", lambda r: r["output"].update(sha256="abc"), "$.output.sha256"),
    ("unregistered type", lambda r: r.update(output_type="spaceship"), "$.output_type"),
    ("no cells", lambda r: r.pop("cells"), "$: missing required key 'cells'"),
    ("extra key", lambda r: r.update(colour="red"), "$: unexpected key(s) 'colour'"),
    (
        "bad rule",
        lambda r: r["cells"][0]["rules_failed"].append("bogus"),
        "$.cells[0].rules_failed",
    ),
    ("interval", lambda r: r["cells"][1].update(interval=[1.0]), "$.cells[1].interval"),
    ("suppression", lambda r: r.update(suppression="yes"), "$.suppression: expected object"),
    ("cell key", lambda r: r["cells"][2].update(flag=1), "$.cells[2]: unexpected key(s) 'flag'"),
    ("check name", lambda r: r["cells"][0]["checks"].update(bogus={}), "$.cells[0].checks"),
    ("cell status", lambda r: r["cells"][3].update(status="unsafe"), "$.cells[3].status"),
    ("request", lambda r: r["request"].pop("margins"), "$.request: missing required key"),
    (
        "nk rule",
        lambda r: r["parameters"].update(nk_rules=[[2, 150]]),
        "$.parameters.nk_rules[0][1]",
    ),
    (
        "odd key",
        lambda r: r["cells"][0]["checks"]["nk"].update({"ratio_1,50": "high"}),
        '$.cells[0].checks.nk["ratio_1,50"]: expected number or null',
    ),
]


@pytest.mark.parametrize(("name", "change", "message"), BAD, ids=[b[0] for b in BAD])
def test_invalid_records_name_the_path(
    record: Record, name: str, change: Callable[[Record], object], message: str
) -> None:
    manifest.validate(record)
    with pytest.raises(CheckerError) as caught:
        manifest.validate(mutate(record, change))
    text = str(caught.value)
    assert text.startswith("manifest record invalid at ") and message in text
    assert "\n" not in text


def test_messages_never_quote_values(record: Record) -> None:
    secret = "98765.4321"  # stands for one person's contribution
    bad = mutate(record, lambda r: r["cells"][0]["evidence"]["top"].__setitem__(0, secret))
    with pytest.raises(CheckerError, match=r"\$\.cells\[0\]\.evidence\.top\[0\]") as caught:
        manifest.validate(bad)
    assert secret not in str(caught.value)


def test_other_kinds_need_only_the_envelope(record: Record) -> None:
    envelope = {k: record[k] for k in manifest.SCHEMA["required"]}
    model = envelope | {"kind": "model", "output_type": "regression", "coefficients": [1.5]}
    manifest.validate(model)
    with pytest.raises(CheckerError, match="missing required key 'summary'"):
        manifest.validate({k: v for k, v in model.items() if k != "summary"})


def test_filled_suppression_and_intervals_validate(record: Record) -> None:
    def suppress(r: Record) -> None:
        r["suppression"] = {"method": "optimal", "cells": [0]}
        r["cells"][0].update(suppressed=True, interval=[0.0, 25.5])

    manifest.validate(mutate(record, suppress))


# ----- files --------------------------------------------------------------------------------------
def test_write_and_read_round_trip(tmp_path: Path, record: Record) -> None:
    path = tmp_path / "manifest.json"
    manifest.write_json(path, record)
    assert manifest.read_json(path) == json.loads(json.dumps(record))
    other = check_table(frame(), "a").to_dict()
    manifest.write_json(path, [record, other])
    assert [r["output"] for r in manifest.read_json(path)] == [record["output"], other["output"]]


def test_invalid_record_writes_nothing(tmp_path: Path, record: Record) -> None:
    path = tmp_path / "manifest.json"
    manifest.write_json(path, record)
    before = path.read_bytes()
    with pytest.raises(CheckerError, match=r"record 1: manifest record invalid at \$\.status"):
        manifest.write_json(path, [record, record | {"status": "ok"}])
    nan = mutate(record, lambda r: r["cells"][0].update(value=float("nan")))
    with pytest.raises(CheckerError, match="cannot be written as JSON"):
        manifest.write_json(path, nan)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failed_write_leaves_the_old_file(
    tmp_path: Path, record: Record, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "manifest.json"
    manifest.write_json(path, record)
    before = path.read_bytes()

    def boom(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manifest.os, failing, boom)
    with pytest.raises(CheckerError, match=r"cannot write manifest\.json: No space left"):
        manifest.write_json(path, check_table(frame(), "a").to_dict())
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temp file left


def test_new_file_is_not_created_on_failure(
    tmp_path: Path, record: Record, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def interrupted(src: str, dst: str) -> None:
        calls.append(dst)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(manifest.os, "replace", interrupted)
    with pytest.raises(CheckerError):
        manifest.write_json(tmp_path / "new.json", record)
    assert calls and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{broken", "is not valid JSON"),
        ('{"value": NaN}', "NaN is not valid JSON"),
        ('{"schema": 1}', "invalid at $: missing required key 'schema_version'"),
        ("[{}]", "record 0: manifest record invalid at $: missing required key"),
    ],
)
def test_read_json_refuses_bad_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(CheckerError) as caught:
        manifest.read_json(path)
    assert message in str(caught.value)


def test_read_json_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckerError, match=r"manifest file not found: none\.json"):
        manifest.read_json(tmp_path / "none.json")


# ----- cells are validated once per shape: the shortcut must stay sound ---------------------------
SUBSCHEMA = ("items", "additionalProperties", "propertyNames", "prefixItems", "oneOf")


def _keywords(node: Any, defs: dict[str, Any], out: list[tuple[str, Any]]) -> None:
    """Collect every (keyword, value) a subschema uses, following $refs and subschemas."""
    if isinstance(node, list):
        for item in node:
            _keywords(item, defs, out)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        out.append((key, value))
        if key == "$ref":
            _keywords(defs[value.split("/")[-1]], defs, out)
        elif key == "properties":
            for sub in value.values():
                _keywords(sub, defs, out)
        elif key in SUBSCHEMA:
            _keywords(value, defs, out)


def test_cell_schema_only_tells_numbers_apart_by_type_and_sign() -> None:
    # manifest._shape keeps keys, strings outside labels, and each number's sign and
    # integrality: a cell schema that looked at more would make the shortcut unsound
    defs = manifest.SCHEMA["$defs"]
    used: list[tuple[str, Any]] = []
    _keywords(defs["cell"], defs, used)
    allowed = {
        "type", "required", "properties", "additionalProperties", "items", "minItems",
        "maxItems", "enum", "oneOf", "uniqueItems", "propertyNames", "$ref", "minimum",
        "dependentRequired",
    }  # fmt: skip
    assert {key for key, _ in used} <= allowed
    assert {value for key, value in used if key == "minimum"} == {0}
    # uniqueItems only on arrays of enumerated strings (whose shape is the strings themselves)
    unique = [
        node for node in [defs["cell"]["properties"]["rules_failed"]] if "uniqueItems" in node
    ]
    assert len([k for k, _ in used if k == "uniqueItems"]) == len(unique) == 1


def big_record() -> Record:
    rng = np.random.default_rng(9)
    n = 20_000
    df = pd.DataFrame(
        {"a": rng.integers(0, 40, n), "b": rng.integers(0, 50, n), "v": rng.lognormal(3, 1, n)}
    )
    return check_table(df, "a", "b", values="v", aggfunc="sum").to_dict()


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda c: c["evidence"].update(n_rows=-1), "$.cells[1500].evidence.n_rows"),
        (lambda c: c.update(value="12"), "$.cells[1500].value"),
        (lambda c: c["checks"]["nk"].update({"ratio_1,50": True}), "$.cells[1500].checks.nk"),
        (lambda c: c.update(index=[["nested"]]), "$.cells[1500].index[0]"),
        (lambda c: c.update(rules_failed=["nk", "nk"]), "$.cells[1500].rules_failed"),
    ],
)
def test_a_late_odd_cell_is_found(change: Callable[[dict], object], path: str) -> None:
    record = big_record()
    assert len(record["cells"]) == 2000
    manifest.validate(record)
    change(record["cells"][1500])
    with pytest.raises(CheckerError, match=re.escape(path)):
        manifest.validate(record)
