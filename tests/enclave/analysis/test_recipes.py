"""Recipes: tables from a registered dataset carry one that the queue can re-derive; tables
from a frame the researcher changed are labelled as having none."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest

from enclave.analysis import AnalysisError, Session
from enclave.analysis.outputs import OutputFile
from enclave.analysis.recipes import NO_RECIPE_TRANSFORMED
from output_checker import Parameters
from output_checker.queue.filetypes import check_record
from output_checker.queue.recheck import Recheck, recheck_output
from output_checker.queue.recipes import derive, parse_recipe
from tests.enclave.analysis.conftest import PROJECT


def _data(data_dir: Path) -> Path:
    return data_dir / "projects" / PROJECT / "data"


def test_a_table_from_a_registered_dataset_is_re_derivable(
    session: Session, data_dir: Path
) -> None:
    df = session.load("cohort-outcomes", entity="person_id")
    year5 = session.where(df, "year", "==", 5)
    session.pivot_table(year5, "benefit_months", "group", "sex", aggfunc="mean")
    output = session.outputs.get("output_0")
    assert output.provenance.recipe and output.provenance.dataset == "cohort-outcomes"
    file = output.files[0]
    assert file.recipe is not None
    recipe = parse_recipe(file.recipe)  # the queue's own parser accepts it
    assert recipe.filters[0].column == "year" and recipe.entity == "person_id"
    again = derive(recipe, _data(data_dir), Parameters())
    assert again.to_frame().to_csv().encode() == file.data


def test_an_unrelated_change_keeps_the_recipe(session: Session) -> None:
    df = session.load("charities")
    session.pivot_table(df.assign(year=df.year + 1), "total_costs", "grant_type")
    assert session.outputs.get("output_0").provenance.recipe


def test_series_crosstab_and_copies_keep_the_recipe(session: Session) -> None:
    df = session.load("charities")
    copy = df.copy()[["survivor", "grant_type"]].sort_values("grant_type")
    table = session.crosstab(copy.survivor, copy.grant_type)
    assert not table.isna().any().any()
    provenance = session.outputs.get("output_0").provenance
    assert provenance.recipe and provenance.dataset == "charities"
    session.crosstab(copy.survivor, df.year)  # columns of one dataset, in different orders
    assert session.outputs.get("output_1").provenance.dataset == "charities"
    session.crosstab(copy.grant_type, df.year >= 0)
    label = session.outputs.get("output_2").provenance.label
    assert label == NO_RECIPE_TRANSFORMED  # a derived column is not the dataset's


@pytest.mark.parametrize(
    "change",
    [
        lambda df: df.assign(grant_type=df.grant_type.str.lower()),
        lambda df: df[df.year > 2010],
        lambda df: df.assign(total_costs=df.total_costs.where(df.index != 3, 0.0)),
    ],
)
def test_changed_frames_have_no_recipe(session: Session, change: object) -> None:
    df = session.load("charities")
    changed = change(df)  # type: ignore[operator]
    session.pivot_table(changed, "total_costs", "grant_type", aggfunc="mean")
    output = session.outputs.get("output_0")
    assert output.files[0].recipe is None
    assert output.provenance.label == NO_RECIPE_TRANSFORMED
    assert "no recipe" in output.summary


def test_an_edit_in_place_after_loading_is_detected(session: Session) -> None:
    df = session.load("charities")
    df.loc[0, "total_costs"] = 1.0
    session.pivot_table(df, "total_costs", "grant_type", aggfunc="mean")
    assert session.outputs.get("output_0").files[0].recipe is None


def test_required_recipes_refuse_unregistered_data(data_dir: Path, session: Session) -> None:
    strict = Session(PROJECT, data_dir / "outbox", _data(data_dir), require_recipes=True,
                     quiet=True)  # fmt: skip
    df = strict.load("charities")
    with pytest.raises(AnalysisError, match="requires tables built from a registered dataset"):
        strict.pivot_table(df.assign(x=1), "x", "grant_type", aggfunc="mean")
    with pytest.raises(AnalysisError, match="requires outputs built from a registered"):
        strict.ols(df.inc_activity * 2, df[["inc_grants"]])
    assert len(strict.outputs) == 0
    strict.pivot_table(df, "total_costs", "grant_type", aggfunc="mean")
    assert len(strict.outputs) == 1


def test_dataset_errors(session: Session, data_dir: Path) -> None:
    with pytest.raises(AnalysisError, match="no registered dataset named 'secret'"):
        session.load("secret")
    with pytest.raises(AnalysisError, match="dataset name"):
        session.load("../etc/passwd")
    with pytest.raises(AnalysisError, match="filter op"):
        session.load("charities", filters=[("year", "~", 3)])
    with pytest.raises(AnalysisError, match="column"):
        session.load("charities", columns=["nope"])
    assert session.list_datasets() == ["charities", "cohort-outcomes", "cohort-persons"]


def test_a_protected_table_keeps_its_recipe_and_the_queue_rederives_it(
    data_dir: Path, session: Session
) -> None:
    """Suppressed cells do not cost the recipe: the queue re-derives the table protected the
    same way and finds the same numbers and the same blanks."""
    df = session.load("charities")
    session.crosstab(df.year, df.grant_type, margins=True)
    (file,) = [f for f in session.outputs.get("output_0").files if f.extension == "csv"]
    assert file.record is not None and file.recipe is not None and file.recipe["protect"]
    assert any(cell["suppressed"] for cell in file.record["cells"])
    project_data = data_dir / "projects" / PROJECT / "data"
    verdict = recheck_output(
        file.data, "csv", file.record, parse_recipe(file.recipe), Parameters(), project_data
    )
    assert verdict.recheck is Recheck.MATCHES, verdict.summary


def _rounded_file(session: Session) -> OutputFile:
    df = session.load("charities")
    session.crosstab(df.year, df.grant_type, margins=True, round_to=10)
    (file,) = session.outputs.get("output_0").files
    assert file.record is not None and file.recipe is not None
    return file


def test_a_rounded_table_is_re_derived_rounded_by_the_queue(
    data_dir: Path, session: Session
) -> None:
    file = _rounded_file(session)
    recipe = parse_recipe(file.recipe)
    assert recipe.round == 10
    record = check_record("t.csv", file.record, file.sha256)  # bound to the rounded bytes
    verdict = recheck_output(file.data, "csv", record, recipe, Parameters(), _data(data_dir))
    assert verdict.recheck is Recheck.MATCHES, verdict.summary
    assert "rounded to base 10" in verdict.summary


def _rebound(file: OutputFile, data: bytes) -> dict[str, Any]:
    """The record an attacker would send with altered bytes: re-bound to them."""
    assert file.record is not None
    record = copy.deepcopy(file.record)
    record["output"]["sha256"] = hashlib.sha256(data).hexdigest()
    return record


def test_numbers_altered_after_rounding_do_not_match(data_dir: Path, session: Session) -> None:
    file = _rounded_file(session)
    lines = file.data.decode().splitlines()
    fields = lines[2].split(",")
    fields[2] = str(int(fields[2]) + 10)  # still a multiple of ten, but not the data's
    altered = "\n".join([*lines[:2], ",".join(fields), *lines[3:]]).encode() + b"\n"
    assert altered != file.data
    record = check_record("t.csv", _rebound(file, altered), hashlib.sha256(altered).hexdigest())
    verdict = recheck_output(
        altered, "csv", record, parse_recipe(file.recipe), Parameters(), _data(data_dir)
    )
    assert verdict.recheck is Recheck.DOES_NOT_MATCH and verdict.status.value == "fail"


def test_exact_numbers_claiming_to_be_rounded_do_not_match(
    data_dir: Path, session: Session
) -> None:
    """A recipe that says "round" gets its cells audited as intervals: the exact table under
    a rounded recipe would slip exact numbers past the ledger, so it is refused."""
    df = session.load("charities")
    session.crosstab(df.year, df.grant_type, margins=True)
    (exact,) = session.outputs.get("output_0").files
    assert exact.recipe is not None
    claimed = parse_recipe({**exact.recipe, "round": 10})
    verdict = recheck_output(
        exact.data, "csv", exact.record, claimed, Parameters(), _data(data_dir)
    )
    assert verdict.recheck is Recheck.DOES_NOT_MATCH
