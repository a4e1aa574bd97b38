"""Session management (ACRO's calls) and the module-level default session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import enclave.analysis as ea
from enclave.analysis import AnalysisError, Session
from output_checker.parameters import Parameters
from output_checker.status import Status
from tests.enclave.analysis.conftest import PROJECT, Echo


def test_module_level_calls_use_the_default_session(
    data_dir: Path, charities: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ea, "_default", None)
    monkeypatch.setenv("ENCLAVE_PROJECT", PROJECT)
    monkeypatch.setenv("ENCLAVE_OUTBOX", str(data_dir / "outbox"))
    monkeypatch.setenv("ENCLAVE_DATASETS", str(data_dir / "projects" / PROJECT / "data"))
    df = ea.load("charities")
    table = ea.crosstab(df.year, df.grant_type)
    assert table.shape == (6, 4)
    assert ea.session().project == PROJECT
    assert "output_0 (crosstab): pass" in ea.print_outputs()
    path = ea.finalise(title="env")
    assert path.parent == data_dir / "outbox"
    mine = ea.init(project="other", outbox=data_dir / "o2", quiet=True)
    assert ea.session() is mine


def test_acro_style_constructor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENCLAVE_OUTBOX", str(tmp_path))
    acro = ea.ACRO(suppress=False, quiet=True)
    assert isinstance(acro, Session) and acro.suppress is False
    with pytest.raises(AnalysisError, match="config"):
        ea.ACRO(config="strict")


def test_rename_remove_comment_exception(
    session: Session, charities: pd.DataFrame, echo: Echo
) -> None:
    session.crosstab(charities.year, charities.grant_type)
    session.crosstab(charities.survivor, charities.grant_type)
    session.rename_output("output_0", "by_year")
    session.add_comments("by_year", "Counts of charities.")
    session.add_exception("output_1", "Needed for the report.")
    session.remove_output("output_1")
    assert [o.name for o in session.outputs] == ["by_year"]
    text = session.print_outputs()
    assert "comment: Counts of charities." in text and "output_1" not in text
    session.crosstab(charities.year, charities.survivor)
    assert [o.name for o in session.outputs] == ["by_year", "output_2"]  # names never reused
    for bad in (
        lambda: session.rename_output("by_year", "../evil"),
        lambda: session.rename_output("nope", "x"),
        lambda: session.rename_output("by_year", "output_2"),
        lambda: session.add_comments("by_year", "  "),
        lambda: session.add_exception("missing", "reason"),
    ):
        with pytest.raises(AnalysisError):
            bad()


def test_custom_output_is_review(session: Session, tmp_path: Path) -> None:
    notes = tmp_path / "methods.md"
    notes.write_text("# Methods\nAll counts are of charities.\n")
    assert session.custom_output(notes, "methods note") is True
    output = session.outputs.get("output_0")
    assert output.status is Status.REVIEW
    assert output.comments == ("methods note",)
    assert output.files[0].data == notes.read_bytes()
    with pytest.raises(AnalysisError, match="not found"):
        session.custom_output(tmp_path / "missing.csv")


def test_quiet_sessions_print_nothing(data_dir: Path, charities: pd.DataFrame) -> None:
    seen: list[str] = []
    quiet = Session(PROJECT, data_dir / "o", quiet=True, echo=seen.append)
    quiet.crosstab(charities.year, charities.grant_type)
    assert seen == []


def test_session_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="project slug"):
        Session("Bad Project", tmp_path)
    with pytest.raises(AnalysisError, match="conventions"):
        Session("p", tmp_path, conventions="strict")


def test_session_entity_must_be_in_the_data(data_dir: Path, charities: pd.DataFrame) -> None:
    session = Session(PROJECT, data_dir / "o", entity="person_id", quiet=True)
    with pytest.raises(AnalysisError, match="no such column"):
        session.pivot_table(charities, "inc_grants", "year")
    session.pivot_table(charities, "inc_grants", "year", entity="charity_id")
    record = session.outputs.get("output_0").files[0].record
    assert record is not None and record["request"]["entity"] == "charity_id"


def test_entity_from_the_dataset_counts_people_not_rows(session: Session) -> None:
    df = session.load("cohort-outcomes", entity="person_id")
    table = session.crosstab(df.group, df.sex, values=df.benefit_amount, aggfunc="sum")
    record = session.outputs.get("output_0").files[0].record
    assert record is not None
    cell = record["cells"][0]
    assert cell["evidence"]["n_entities"] * 5 == cell["evidence"]["n_rows"]
    assert table.notna().all().all()


def test_record_level_outputs_are_held_to_the_microdata_policy(data_dir: Path) -> None:
    people = pd.DataFrame({"sex": ["F", "M"] * 30, "area": ["AB"] * 59 + ["ZZ"]})
    strict = Parameters().tightened(quasi_identifiers=["sex", "area"])
    session = Session(PROJECT, data_dir / "records", parameters=strict, quiet=True)
    verdict = session.record_level_output(people, "one row per person")
    assert verdict.startswith("fail") and "1 record(s) violate 5-anonymity" in verdict
    refused = session.outputs.get("output_0")
    assert refused.status is Status.FAIL and refused.comments == ("one row per person",)
    assert refused.files[0].data == people.to_csv(index=False).encode()
    safe = people.assign(area="AB")
    assert session.record_level_output(safe).startswith("review")
    assert session.outputs.get("output_1").status is Status.REVIEW
    # without declared quasi-identifiers nothing record-level can be measured, so nothing leaves
    plain = Session(PROJECT, data_dir / "plain", quiet=True)
    assert "declares no quasi-identifiers" in plain.record_level_output(safe)
    with pytest.raises(AnalysisError, match="non-empty DataFrame"):
        plain.record_level_output(pd.DataFrame())
