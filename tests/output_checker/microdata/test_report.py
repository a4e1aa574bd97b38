"""The HTML report: self-contained, escaped, aggregates only, atomically written."""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

import pandas as pd
import pytest

from output_checker.microdata.problem import MicrodataProblem, RiskTarget
from output_checker.microdata.recipe import Recipe
from output_checker.microdata.report import render_report, write_report
from output_checker.microdata.workflow import Workflow

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "microdata-recipe.toml"


@pytest.fixture(scope="module")
def testdata(sdcmicro_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sdcmicro_dir / "testdata.csv")


@pytest.fixture(scope="module")
def treated(testdata: pd.DataFrame) -> tuple[Workflow, str]:
    recipe = Recipe.load(EXAMPLE)
    workflow = Workflow(testdata, recipe.problem)
    result = workflow.treat_until(recipe.target, recipe)
    return workflow, render_report(workflow, recipe.target, result)


def test_report_has_the_sections_and_the_verdict(treated: tuple[Workflow, str]) -> None:
    workflow, html = treated
    for heading in ("Target", "Problem", "Steps applied", "Risk before and after",
                    "Information loss"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in html
    assert "The target holds." in html
    for k in (2, 3, 5):
        assert f"records violating {k}-anonymity" in html
    assert "household global risk" in html
    assert html.count("data:image/png;base64,") == 2  # risk histogram, suppressions chart
    for step in workflow.history:
        assert f"<td>{step.method}</td>" in html


def test_report_is_self_contained(treated: tuple[Workflow, str]) -> None:
    _, html = treated
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"(src|href)=\"(?!data:)", html)
    for encoded in re.findall(r"base64,([A-Za-z0-9+/=]+)", html):
        assert base64.b64decode(encoded).startswith(b"\x89PNG")


def test_report_holds_no_record_values(
    testdata: pd.DataFrame, treated: tuple[Workflow, str]
) -> None:
    workflow, html = treated
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", html)  # the charts are pictures, not text
    # values that occur once in the data: the largest expenditure and savings, a rare age
    for column in ("expend", "savings"):
        top = testdata[column].max()
        assert (testdata[column] == top).sum() == 1
        assert str(top) not in text and f"{top:g}" not in text
    age_counts = testdata["age"].value_counts()
    rare_age = int(age_counts.index[age_counts == 1].max())
    assert f">{rare_age}<" not in text
    # no category labels either: recoded age classes are values, only counts are shown
    labels = set(map(str, workflow.data["age"].dropna().unique()))
    assert labels and not any(label in text for label in labels)


def test_names_are_escaped(testdata: pd.DataFrame) -> None:
    data = testdata.rename(columns={"roof": "<b>roof&</b>"})
    problem = MicrodataProblem(keys=["urbrur", "<b>roof&</b>"])
    workflow = Workflow(data, problem)
    target = RiskTarget(k=2, max_global_risk=0.5)
    html = render_report(workflow, target, title="<i>report</i>")
    assert "<b>roof" not in html and "<i>report" not in html
    assert "&lt;b&gt;roof&amp;&lt;/b&gt;" in html
    assert "&lt;i&gt;report&lt;/i&gt;" in html
    assert "No step applied." in html


def test_failures_are_listed(testdata: pd.DataFrame) -> None:
    problem = MicrodataProblem(keys=["urbrur", "roof", "walls", "water", "sex"])
    workflow = Workflow(testdata, problem)
    target = RiskTarget(k=3, max_global_risk=1e-4)
    html = render_report(workflow, target)
    assert "The target does not hold" in html
    failures = target.check(workflow.risk(1e-4), weighted=False)
    assert failures and not any("global risk" in failure for failure in failures)
    for failure in failures:
        assert f"<li>{escape(failure)}</li>" in html


def test_write_report_replaces_the_file_atomically(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("old")
    write_report(out, "<html>new</html>")
    assert out.read_text() == "<html>new</html>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary left over
