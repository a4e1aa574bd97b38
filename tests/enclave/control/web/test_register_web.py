"""The public transparency register over HTTP: approved, active, suspended and closed
projects with their datasets and outputs released; nothing about proposals or rejections, no
personal data; the same in HTML, JSON and CSV, without login."""

from __future__ import annotations

import csv
import io

import pytest
from flask.testing import FlaskClient

from enclave.control.context import Context
from enclave.control.service import access, projects
from enclave.control.service.register import CSV_COLUMNS
from tests.enclave.control.factories import World, make_project, propose


@pytest.fixture
def populated(ctx: Context, world: World) -> World:
    propose(ctx, world, "secret-proposal")
    make_project(ctx, world, "turned-down", "rejected")
    make_project(ctx, world, "running", "active")
    make_project(ctx, world, "waiting", "approved", grant="requested")
    make_project(ctx, world, "finished", "closed")
    access.release_output(ctx, world.checker, "running", request_id="r1", files=["t.csv"])
    access.release_output(ctx, world.checker, "running", request_id="r2", files=["m.csv"])
    return world


PRIVATE = (
    "secret-proposal",
    "turned-down",
    "Study secret-proposal",
    "Study turned-down",
    "admin@example.org",
    "researcher@example.org",
    "custodian@example.org",
    "Rae Researcher",
    "Cas Custodian",
    "ETH-1",
    "DSA-1",
    "age_band",
    "nhs_number",
)


def test_html_register(client: FlaskClient, populated: World) -> None:
    response = client.get("/register")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for shown in ("Study running", "Study waiting", "Study finished"):
        assert shown in page
    running = page[page.index('id="project-running"') :]
    running = running[: running.index("</article>")]
    assert "Hospital Episode Statistics (Health Agency)" in running
    assert "<dt>Outputs released</dt><dd>2</dd>" in running
    assert "Statistics Act s.1" in running
    for hidden in PRIVATE:
        assert hidden not in page


def test_json_register(client: FlaskClient, populated: World) -> None:
    response = client.get("/register.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    entries = {e["slug"]: e for e in response.json["projects"]}
    assert set(entries) == {"running", "waiting", "finished"}
    assert entries["running"]["datasets"] == [
        {"name": "Hospital Episode Statistics", "source_agency": "Health Agency"}
    ]
    assert entries["running"]["outputs_released"] == 2
    assert entries["waiting"]["datasets"] == [], "a grant not yet approved is not use"
    assert entries["finished"]["status"] == "closed"
    assert entries["running"]["start_date"].count("-") == 2  # ISO dates
    for hidden in PRIVATE:
        assert hidden not in response.get_data(as_text=True)


def test_csv_register(client: FlaskClient, populated: World) -> None:
    response = client.get("/register.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [tuple(r) for r in rows[:1]] == [CSV_COLUMNS]
    by_slug = {r["slug"]: r for r in rows}
    assert set(by_slug) == {"running", "waiting", "finished"}
    assert by_slug["running"]["datasets"] == "Hospital Episode Statistics (Health Agency)"
    assert by_slug["running"]["outputs_released"] == "2"
    for hidden in PRIVATE:
        assert hidden not in response.get_data(as_text=True)


def test_csv_cells_cannot_become_spreadsheet_formulas(
    client: FlaskClient, ctx: Context, world: World
) -> None:
    projects.create_project(
        ctx,
        world.admin,
        slug="formula",
        title='=HYPERLINK("http://evil.example","click")',
        lay_summary="+1 benefits",
        public_benefit="@SUM(A1)",
        organisation="-Org",
        purpose="health_research",
        start_date=ctx.today(),
        end_date=ctx.today().replace(year=ctx.today().year + 1),
        legal_basis="Act",
        ethics_reference="E",
        dsa_reference="D",
    )
    projects.approve_project(ctx, world.admin, "formula")
    (row,) = csv.DictReader(io.StringIO(client.get("/register.csv").get_data(as_text=True)))
    for column in ("title", "lay_summary", "public_benefit", "organisation"):
        assert row[column].startswith("'"), column
    assert client.get("/register.json").json["projects"][0]["title"].startswith("=HYPERLINK")


def test_empty_register(client: FlaskClient, ctx: Context, world: World) -> None:
    propose(ctx, world, "only-proposed")
    assert "No project has been approved yet." in client.get("/register").get_data(as_text=True)
    assert client.get("/register.json").json == {"projects": []}
    assert client.get("/register.csv").get_data(as_text=True).count("\n") == 1
