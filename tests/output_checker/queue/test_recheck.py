"""The server's own verdicts: rules re-run on a record's evidence agree with the checker,
forged verdicts and forged files are caught, recipes re-derive tables from the data, and
anything else is not machine-checkable."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from output_checker import check_table
from output_checker.models import check_model
from output_checker.parameters import Parameters
from output_checker.queue.errors import InvalidInput
from output_checker.queue.evidence_recheck import recheck_table_record
from output_checker.queue.recheck import csv_difference, recheck_output, record_frame
from output_checker.queue.recipes import parse_recipe
from output_checker.queue.workflow import CheckStatus, Recheck
from output_checker.status import Status


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 600
    return pd.DataFrame(
        {
            "region": rng.choice(["n", "s", "e", "w"], n, p=[0.5, 0.3, 0.17, 0.03]),
            "sex": rng.choice(["f", "m"], n),
            "band": rng.choice(["a", "b", "c"], n),
            "year": rng.integers(2015, 2025, n),
            "income": rng.lognormal(10, 1, n),
            "person": rng.integers(0, 250, n),
        }
    )


TABLES: list[dict[str, Any]] = [
    {"index": "region"},
    {"index": "region", "columns": "sex"},
    {"index": "region", "columns": "sex", "margins": True},
    {"index": ["region", "band"], "columns": "sex"},
    {"index": ["region", "band"], "columns": "sex", "hierarchical": True},
    {"index": "region", "columns": "sex", "entity": "person", "margins": True},
    {"index": "region", "columns": "sex", "values": "income", "aggfunc": "mean"},
    {"index": "region", "columns": "sex", "values": "income", "aggfunc": "sum", "margins": True},
    {"index": "region", "values": "income", "aggfunc": "median"},
    {"index": "region", "columns": "sex", "values": "income", "aggfunc": "max"},
    {"index": "region", "columns": "sex", "values": "income", "aggfunc": "std"},
    {"index": "region", "values": "income", "aggfunc": "mean", "entity": "person"},
]


@pytest.mark.parametrize("spec", TABLES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_rules_rerun_on_the_evidence_agree_with_the_checker(spec: dict[str, Any]) -> None:
    record = check_table(_frame(), **spec).to_dict()
    verdict = recheck_table_record(record, Parameters())
    assert verdict.status.label == record["status"], verdict.summary
    for rule, counts in record["rules"].items():
        if counts["fail"]:
            assert f"{rule}: {counts['fail']} fail" in verdict.summary


def test_what_the_record_cannot_support_goes_to_review_never_pass() -> None:
    entity = check_table(_frame(), "region", "sex", entity="person").to_dict()
    verdict = recheck_table_record(entity, Parameters())
    assert verdict.status is not Status.PASS
    assert "class_disclosure: 8 review" in verdict.summary  # every cell, none passed
    assert "class_disclosure not re-evaluated" in verdict.summary
    weighted = check_table(_frame(), "region", values="income", aggfunc="sum").to_dict()
    weighted["request"]["weights"] = "w"
    assert recheck_table_record(weighted, Parameters()).status is not Status.PASS
    deeper = check_table(_frame(), "region", values="income", aggfunc="sum").to_dict()
    strict = Parameters().tightened(nk_rules=[[1, 50.0], [2, 85.0], [3, 90.0]])
    verdict = recheck_table_record(deeper, strict)
    assert verdict.status is not Status.PASS and "fewer than 3 top" in verdict.summary


def test_a_forged_pass_is_caught() -> None:
    record = check_table(_frame(), ["region", "band"], "sex").to_dict()
    assert record["status"] == "fail"
    forged = copy.deepcopy(record)
    forged["status"] = "pass"
    for cell in forged["cells"]:
        cell["status"], cell["rules_failed"], cell["primary"] = "pass", [], False
        for check in cell["checks"].values():
            check["status"] = "pass"
    assert recheck_table_record(forged, Parameters()).status is Status.FAIL


def test_the_server_uses_the_projects_parameters() -> None:
    record = check_table(_frame(), "region").to_dict()
    assert recheck_table_record(record, Parameters()).status is Status.PASS
    strict = Parameters().tightened(threshold=100)
    assert recheck_table_record(record, strict).status is Status.FAIL


def _csv(spec: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    result = check_table(_frame(), **spec)
    return result.to_frame().to_csv().encode(), result.to_dict()


def test_a_file_whose_numbers_are_not_the_records_fails(tmp_path: Path) -> None:
    content, record = _csv({"index": "region", "columns": "sex"})
    assert csv_difference(record_frame(record).to_csv(), content) == ""
    tampered = content.replace(b",", b",1", 1)
    verdict = recheck_output(tampered, "csv", record, None, Parameters(), tmp_path)
    assert verdict.status is CheckStatus.FAIL and "not the manifest's" in verdict.summary
    assert verdict.recheck is Recheck.NOT_MACHINE_CHECKABLE


def _recipe(path: Path, **extra: Any) -> dict[str, Any]:
    version = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return {"dataset": "survey", "version": version, "grouping": {"index": ["region"]}, **extra}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    _frame().to_parquet(tmp_path / "survey.parquet")
    return tmp_path


def test_a_recipe_rederives_the_table(data_dir: Path) -> None:
    frame = _frame()
    result = check_table(frame[frame.year >= 2020], "region")
    content = result.to_frame().to_csv().encode()
    recipe = parse_recipe(
        _recipe(
            data_dir / "survey.parquet", filters=[{"column": "year", "op": ">=", "value": 2020}]
        )
    )
    verdict = recheck_output(content, "csv", None, recipe, Parameters(), data_dir)
    assert verdict.recheck is Recheck.MATCHES
    assert verdict.status.value == result.status.label


def test_numbers_that_are_not_the_datas_do_not_match(data_dir: Path) -> None:
    frame = _frame()
    content = check_table(frame[frame.year >= 2021], "region").to_frame().to_csv().encode()
    recipe = parse_recipe(
        _recipe(
            data_dir / "survey.parquet", filters=[{"column": "year", "op": ">=", "value": 2020}]
        )
    )
    verdict = recheck_output(content, "csv", None, recipe, Parameters(), data_dir)
    assert (verdict.recheck, verdict.status) == (Recheck.DOES_NOT_MATCH, CheckStatus.FAIL)


def test_another_version_of_the_data_does_not_match(data_dir: Path) -> None:
    content, _ = _csv({"index": "region"})
    recipe = parse_recipe({**_recipe(data_dir / "survey.parquet"), "version": "sha256:" + "1" * 64})
    verdict = recheck_output(content, "csv", None, recipe, Parameters(), data_dir)
    assert verdict.recheck is Recheck.DOES_NOT_MATCH and "version" in verdict.summary
    missing = parse_recipe({**_recipe(data_dir / "survey.parquet"), "dataset": "absent"})
    verdict = recheck_output(content, "csv", None, missing, Parameters(), data_dir)
    assert verdict.recheck is Recheck.DOES_NOT_MATCH and "not in the project" in verdict.summary
    bad_column = parse_recipe(
        {**_recipe(data_dir / "survey.parquet"), "values": "salary", "aggregation": "mean"}
    )
    verdict = recheck_output(content, "csv", None, bad_column, Parameters(), data_dir)
    assert verdict.recheck is Recheck.DOES_NOT_MATCH


@pytest.mark.parametrize(
    ("op", "value", "keep"),
    [
        ("==", "n", lambda f: f.region == "n"),
        ("!=", "n", lambda f: f.region != "n"),
        ("in", ["n", "s"], lambda f: f.region.isin(["n", "s"])),
        ("not_in", ["n"], lambda f: ~f.region.isin(["n"])),
    ],
)
def test_recipe_filters(data_dir: Path, op: str, value: Any, keep: Any) -> None:
    frame = _frame()
    content = check_table(frame[keep(frame)], "sex").to_frame().to_csv().encode()
    raw = _recipe(
        data_dir / "survey.parquet", filters=[{"column": "region", "op": op, "value": value}]
    )
    raw["grouping"] = {"index": ["sex"]}
    verdict = recheck_output(content, "csv", None, parse_recipe(raw), Parameters(), data_dir)
    assert verdict.recheck is Recheck.MATCHES


def test_free_form_outputs_are_not_machine_checkable(tmp_path: Path) -> None:
    verdict = recheck_output(b"# notes\n", "md", None, None, Parameters(), tmp_path)
    assert (verdict.status, verdict.recheck) == (
        CheckStatus.REVIEW,
        Recheck.NOT_MACHINE_CHECKABLE,
    )
    claimed_pass = {"kind": "model", "status": "pass"}
    verdict = recheck_output(b"x", "txt", claimed_pass, None, Parameters(), tmp_path)
    assert verdict.status is CheckStatus.REVIEW  # a session's pass is never believed
    claimed_fail = {"kind": "model", "status": "fail"}
    verdict = recheck_output(b"x", "txt", claimed_fail, None, Parameters(), tmp_path)
    assert verdict.status is CheckStatus.FAIL


def test_model_records_are_rechecked_from_their_evidence(tmp_path: Path) -> None:
    exog = sm.add_constant(np.random.default_rng(3).normal(size=(200, 2)))
    endog = exog @ np.array([1.0, 2.0, -1.0]) + np.random.default_rng(4).normal(size=200)
    result = check_model(sm.OLS(endog, exog).fit())
    content = result.evidence.coefficients_csv.encode()
    verdict = recheck_output(content, "csv", result.to_dict(), None, Parameters(), tmp_path)
    assert (verdict.status, verdict.recheck) == (CheckStatus.PASS, Recheck.NOT_MACHINE_CHECKABLE)
    assert "not re-fitted" in verdict.summary
    strict = Parameters(dof_threshold=1_000)
    verdict = recheck_output(content, "csv", result.to_dict(), None, strict, tmp_path)
    assert verdict.status is CheckStatus.FAIL and "df_resid" in verdict.summary


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ([], r"\$"),
        (
            {"dataset": "../x", "version": "sha256:" + "0" * 64, "grouping": {"index": ["a"]}},
            r"\$.dataset",
        ),
        ({"dataset": "d", "version": "md5:1", "grouping": {"index": ["a"]}}, r"\$.version"),
        (
            {"dataset": "d", "version": "sha256:" + "0" * 64, "grouping": {"index": []}},
            r"grouping.index",
        ),
        (
            {
                "dataset": "d",
                "version": "sha256:" + "0" * 64,
                "grouping": {"index": ["a"]},
                "filters": [{"column": "a", "op": "eval", "value": "1"}],
            },
            r"filters\[0\].op",
        ),
        (
            {
                "dataset": "d",
                "version": "sha256:" + "0" * 64,
                "grouping": {"index": ["a"]},
                "filters": [{"column": "a", "op": "in", "value": "x"}],
            },
            r"filters\[0\].value",
        ),
        (
            {
                "dataset": "d",
                "version": "sha256:" + "0" * 64,
                "grouping": {"index": ["a"]},
                "code": "import os",
            },
            "unexpected key",
        ),
        *(
            (
                {
                    "dataset": "d",
                    "version": "sha256:" + "0" * 64,
                    "grouping": {"index": ["a"]},
                    "round": base,
                },
                r"\$\.round",
            )
            for base in (1, 0, -5, 2.5, True, "10")
        ),
    ],
)
def test_malformed_recipes_are_refused(raw: Any, where: str) -> None:
    with pytest.raises(InvalidInput, match=f"recipe invalid at .*{where}"):
        parse_recipe(raw)
