"""``enclave datalab evaluate`` end to end on synthetic ministries, and the validation of
the organisation's cohort file: problems named by file and line (never by value), repeats
merged, refusals with counts and no files written, and no identifier in the estimates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from enclave.cli import main
from enclave.control.audit import AuditRecord, records
from enclave.datalab.cohort import CohortInvalid, check_cohort
from enclave.datalab.locate import AUDIT_ACTION
from tests.enclave.datalab.test_pipeline import (
    ADMIN,
    TODAY,
    JusticeEnclave,
    provider_rows,
    write_cohort,
)

HEADER = "forename,surname,date of birth,sex,intervention start,end date,postcode\n"


def _destroyed(enclave: JusticeEnclave) -> list[AuditRecord]:
    ctx = enclave.context()
    try:
        return records(ctx.engine, action=AUDIT_ACTION)
    finally:
        ctx.close()


def _run(enclave: JusticeEnclave, cohort: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "datalab", "evaluate", "--cohort", str(cohort), "--json", str(out / "est.json"),
            "--data-dir", str(enclave.data_dir), "--programme", "mentoring", "--quiet", *extra,
        ]
    )  # fmt: skip


def test_evaluate_writes_the_estimates_without_identifiers(
    enclave: JusticeEnclave, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = provider_rows(enclave)
    out = tmp_path / "out"
    out.mkdir()
    audited = len(_destroyed(enclave))
    assert _run(enclave, write_cohort(rows, tmp_path / "cohort.csv"), out, "--as", ADMIN) == 0
    events = _destroyed(enclave)
    assert len(events) == audited + 1
    assert events[-1].actor == ADMIN and events[-1].detail["people"] == len(rows)
    assert [p.name for p in out.iterdir()] == ["est.json"]  # no temporary file left behind
    text = (out / "est.json").read_text(encoding="utf-8")
    estimates = json.loads(text)
    rate = estimates["measures"][0]
    assert rate["measure"] == "rate"
    assert rate["ci_low"] * 100 <= enclave.effect["true_att_pp"] <= rate["ci_high"] * 100
    for key in ("n_treated", "n_comparison", "effective_n", "p_value", "difference"):
        assert key in estimates or key in rate
    assert estimates["validation"]["rows_accepted"] == len(rows)
    assert [s["stage"] for s in estimates["attrition"]][:3] == [
        "submitted",
        "identified",
        "index sentence located",
    ]
    assert {c["covariate"] for c in estimates["balance"]["covariates"]} >= {"age_at_index"}
    # attack: no name, date of birth, postcode or offender id of the cohort in the output
    values = pd.concat(
        [rows[c] for c in ("Surname", "Date of birth", "Postcode", "National offender id")]
    )
    values = pd.concat([values, rows["Forename"][rows["Forename"].str.len() >= 5]])
    leaked = {v for v in values if v and re.search(rf"\b{re.escape(v)}\b", text, re.I)}
    assert not leaked
    assert "reoffending rate difference" in capsys.readouterr().out


def test_fewer_than_60_is_refused_with_counts_and_no_files(
    enclave: JusticeEnclave, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cohort = write_cohort(provider_rows(enclave).head(40), tmp_path / "cohort.csv")
    code = _run(enclave, cohort, out, "--report", str(out / "report.pdf"))
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "fewer than 60" in error
    assert re.search(r"refused: \d+ .* \(of \d+ in the cohort\)", error)
    assert not list(out.iterdir())


def test_the_report_is_written_whole_with_every_count_passing_the_checker(
    enclave: JusticeEnclave, tmp_path: Path
) -> None:
    """A handful of people lost at identification is folded into the next stage of the
    attrition annex rather than printed (or refusing the report)."""
    out = tmp_path / "out"
    out.mkdir()
    cohort = write_cohort(provider_rows(enclave), tmp_path / "cohort.csv")
    assert _run(enclave, cohort, out, "--report", str(out / "report.html")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["est.json", "report.html"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "</html>" in html.lower() and 'id="annex-attrition"' in html
    estimates = json.loads((out / "est.json").read_text(encoding="utf-8"))
    assert estimates["n_treated"] >= 60


def test_bad_rows_are_named_by_file_and_line_and_nothing_is_written(
    enclave: JusticeEnclave, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort = tmp_path / "cohort.csv"
    cohort.write_text(
        HEADER
        + "Ann,Smith,01/02/1980,F,2021-03-04,,\n"
        + "Bob,Jones,31/02/1980,M,2021-03-04,,\n"  # no 31 February
        + "Cy,Brown,1980-01-01,X,2021-03-04,,\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    out.mkdir()
    assert _run(enclave, cohort, out) == 2
    err = capsys.readouterr().err
    assert "cohort.csv:3: date_of_birth:" in err
    assert "cohort.csv:4: sex:" in err
    assert "Jones" not in err and "31/02/1980" not in err
    assert not list(out.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--report", "out/report.docx"], "--report must end in .pdf or .html"),
        (["--json", "missing/est.json"], "no such directory"),
        (["--threshold", "1.5"], "--threshold must be a match probability"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "out").mkdir()
    cohort = tmp_path / "c.csv"
    cohort.write_text(HEADER, encoding="utf-8")
    base = ["datalab", "evaluate", "--cohort", str(cohort), "--json", str(tmp_path / "out/e.json")]
    fixed = [str(tmp_path / a) if "/" in a else a for a in args]
    assert main([*base, *fixed, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_an_empty_data_directory_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort = tmp_path / "c.csv"
    cohort.write_text(HEADER + "Ann,Smith,01/02/1980,F,2021-03-04,,\n", encoding="utf-8")
    code = main(
        ["datalab", "evaluate", "--cohort", str(cohort), "--json", str(tmp_path / "e.json"),
         "--data-dir", str(tmp_path / "nothing")]
    )  # fmt: skip
    assert code == 2
    assert "enclave link run" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()


def _check(tmp_path: Path, body: str, header: str = HEADER) -> CohortInvalid:
    path = tmp_path / "cohort.csv"
    path.write_text(header + body, encoding="utf-8")
    with pytest.raises(CohortInvalid) as caught:
        check_cohort(path, today=TODAY)
    return caught.value


def test_validation_names_every_problem_without_values(tmp_path: Path) -> None:
    error = _check(
        tmp_path,
        "Ann,Smith,01/02/1980,F,2021-03-04,,\n"  # line 2: fine
        "Bob,,01/02/1980,M,2021-03-04,,\n"  # 3: no surname
        "Cyd,Brown,01/02/2030,M,2021-03-04,,\n"  # 4: born in the future
        "Dee,Green,01/02/1980,F,2027-01-01,,\n"  # 5: starts after today
        "Eve,White,01/02/1980,F,1979-01-01,,\n"  # 6: starts before birth
        "Fay,Black,01/02/1980,F,2021-03-04,2021-01-01,\n"  # 7: ends before it starts
        "Gus,Grey,01/02/1980,M\n"  # 8: too few fields
        "Hal,--,01/02/1980,M,2021-03-04,,\n",  # 9: nothing to match on
    )
    found = {(p.line, p.column) for p in error.report.problems}
    assert found == {
        (3, "surname"),
        (4, "date_of_birth"),
        (5, "intervention_start"),
        (6, "intervention_start"),
        (7, "intervention_end"),
        (8, ""),
        (9, "surname"),
    }
    assert str(error).startswith("7 problems in the cohort file: cohort.csv:3: surname:")
    assert "\n" not in str(error)
    text = json.dumps(error.report.to_json())
    for value in ("Bob", "2030", "2027", "1979", "Gus"):
        assert value not in text
    assert error.report.rows_accepted == 0 and error.report.rows_read == 8


def test_missing_and_unexpected_columns_are_reported_on_the_header(tmp_path: Path) -> None:
    error = _check(tmp_path, "Ann,Smith,F,x\n", header="forename,surname,sex,shoe size\n")
    found = {(p.line, p.column, p.message) for p in error.report.problems}
    assert (1, "shoe size", "unexpected column") in found
    assert (1, "date_of_birth", "required column is missing") in found
    assert (1, "intervention_start", "required column is missing") in found


def test_repeated_people_are_merged_into_their_earliest_intervention(tmp_path: Path) -> None:
    path = tmp_path / "cohort.csv"
    path.write_text(
        "First name,Last name,DOB,Gender,Start date,National offender id\n"
        "Ann,Smith,01/02/1980,F,2021-06-01,\n"
        "ANN,smith ,1980-02-01,female,2021-03-04,ab-123\n"
        "Bob,Jones,1981-05-05,M,2021-03-04,\n",
        encoding="utf-8",
    )
    cohort = check_cohort(path, today=TODAY)
    report = cohort.report
    assert (report.rows_read, report.rows_accepted, report.duplicates_merged) == (3, 2, 1)
    note = "the same person as line 3: merged, keeping the earliest intervention"
    assert [str(n) for n in report.notes] == [f"cohort.csv:2: {note}"]
    ann = cohort.people.iloc[0]
    assert ann["intervention_start"] == pd.Timestamp("2021-03-04")
    assert ann["offender_id"] == "AB123" and ann["sex"] == "f"
    assert report.to_json()["notes"] == [{"line": 2, "column": "", "message": note}]


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    error = _check(tmp_path, "", header="")
    assert str(error) == "1 problem in the cohort file: cohort.csv:1: the file is empty"
