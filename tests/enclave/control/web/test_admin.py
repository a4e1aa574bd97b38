"""The admin pages end to end through the forms: each action changes state through the
service layer, refusals are flashed next to the form and change nothing, a wrong role gets 403
and changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.service import grants, people, projects
from tests.enclave.control.factories import (
    World,
    audit_tail,
    counts,
    make_project,
    propose,
)
from tests.enclave.control.web.conftest import Web


def test_admin_provisions_people_and_projects(web: Web, ctx: Context, world: World) -> None:
    web.login_as("admin")
    today = ctx.today()
    response = web.post(
        "/admin/people",
        {
            "email": "Newcomer@Uni.example",
            "name": "New Comer",
            "organisation": "University",
            "role": ["researcher", "datalab_client"],
        },
    )
    assert response.status_code == 303
    person_page = response.headers["Location"]
    person = people.get_person(ctx, world.admin, "newcomer@uni.example")
    assert person_page == f"/admin/people/{person.uuid}"
    assert person.roles == ("datalab_client", "researcher")
    assert "Created newcomer@uni.example." in web.page(person_page)

    response = web.post(
        f"{person_page}/accreditations",
        {
            "scheme": "Safe Researcher",
            "reference": "SR-9",
            "issued_on": str(today - timedelta(days=1)),
            "expires_on": str(today + timedelta(days=700)),
        },
    )
    assert response.headers["Location"] == person_page
    assert "SR-9" in web.page(person_page)

    response = web.post(
        "/admin/projects",
        {
            "slug": "beds",
            "title": "Hospital bed use",
            "lay_summary": "How long people stay in hospital",
            "public_benefit": "Better planning",
            "organisation": "University",
            "purpose": "health_research",
            "start_date": str(today),
            "end_date": str(today + timedelta(days=365)),
            "legal_basis": "Statistics Act s.1",
            "ethics_reference": "ETH-7",
            "dsa_reference": "DSA-7",
        },
    )
    assert response.headers["Location"] == "/admin/projects/beds"
    for word, state in (("approve", "approved"), ("activate", "active")):
        assert (
            web.post(f"/admin/projects/beds/{word}").headers["Location"] == "/admin/projects/beds"
        )
        assert projects.get_project(ctx, world.admin, "beds").state == state
    response = web.post(
        "/admin/projects/beds/members",
        {
            "email": "newcomer@uni.example",
            "role": "researcher",
            "expires_on": str(today + timedelta(days=30)),
        },
    )
    assert response.status_code == 303
    page = web.page("/admin/projects/beds")
    assert "Added newcomer@uni.example as researcher." in page
    assert '<strong id="project-state">active</strong>' in page
    web.post("/admin/projects/beds/suspend", {"reason": "incident 4"})
    web.post("/admin/projects/beds/close", {"reason": "study complete"})
    assert projects.get_project(ctx, world.admin, "beds").state == "closed"
    assert audit_tail(ctx, 2) == [("suspend_project", "ok", ""), ("close_project", "ok", "")]
    assert {e.actor for e in audit.records(ctx.engine)[-2:]} == {world.admin}


def test_datasets_and_grants_need_two_people(
    web: Web, ctx: Context, world: World, client: FlaskClient
) -> None:
    propose(ctx, world, "study")
    projects.approve_project(ctx, world.admin, "study")
    web.login_as("admin")
    response = web.post(
        "/admin/datasets",
        {
            "slug": "census",
            "name": "Census extract",
            "source_agency": "Statistics Office",
            "description": "Household records",
            "version": "ef" * 32,
            "custodian": world.custodian,
            "purpose": ["health_research", "social_research"],
            # without the header line, which the form adds when it is missing
            "variables": "person_id,direct_identifier,\nage,quasi_identifier,years\ntenure,other,",
        },
    )
    assert response.headers["Location"] == "/admin/datasets/census"
    page = web.page("/admin/datasets/census")
    assert "direct_identifier" in page and "tenure" in page

    response = web.post(
        "/admin/grants",
        {
            "project": "study",
            "dataset": "census",
            "variables": "age, tenure",
            "expires_on": str(ctx.today() + timedelta(days=90)),
        },
    )
    assert response.headers["Location"] == "/admin/projects/study"
    (grant,) = grants.list_grants(ctx, world.admin, project="study")
    assert grant.state == "requested" and grant.variables == ("age", "tenure")

    # The admin cannot approve: the dataset's custodian decides.
    before = counts(ctx)
    response = web.post(f"/admin/grants/{grant.uuid}/approve")
    assert response.status_code == 403
    assert counts(ctx) == before
    web.post("/logout")

    web.login_as("data_custodian")
    assert "study asks for census" in web.page("/admin/")
    response = web.post(f"/admin/grants/{grant.uuid}/approve")
    assert response.headers["Location"] == "/admin/grants"
    assert grants.get_grant(ctx, world.admin, grant.uuid).state == "approved"
    assert audit_tail(ctx) == [("approve_grant", "ok", "")]


@pytest.mark.parametrize(
    ("data", "rule", "message"),
    [
        ({"variables": "nhs_number"}, "direct_identifier", "direct identifiers are never granted"),
        ({"variables": "no_such"}, "unknown_variable", "has no variable(s) no_such"),
        ({"expires_on": "31/12/2026"}, "invalid_date", "is not a date"),
        ({"dataset": "missing"}, "unknown_dataset", "unknown dataset"),
    ],
)
def test_refusals_are_flashed_and_change_nothing(
    web: Web, ctx: Context, world: World, data: dict[str, str], rule: str, message: str
) -> None:
    propose(ctx, world, "study")
    projects.approve_project(ctx, world.admin, "study")
    web.login_as("admin")
    form = {
        "project": "study",
        "dataset": world.dataset,
        "variables": "age_band",
        "expires_on": str(ctx.today() + timedelta(days=30)),
        **data,
    }
    before = counts(ctx)
    response = web.post("/admin/grants", form)
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/projects/study"
    page = web.page(response.headers["Location"])
    assert message in page and 'role="alert"' in page
    assert counts(ctx) == before
    if rule != "invalid_date":  # bad input refused before the transaction is not audited
        assert audit_tail(ctx) == [("request_grant", "refused", rule)]


def test_purpose_binding_refusal_is_shown(web: Web, ctx: Context, world: World) -> None:
    propose(ctx, world, "schools", purpose="education_research")
    projects.approve_project(ctx, world.admin, "schools")
    web.login_as("admin")
    form = {
        "project": "schools",
        "dataset": world.dataset,
        "variables": "age_band",
        "expires_on": str(ctx.today() + timedelta(days=30)),
    }
    page = web.page(web.post("/admin/grants", form).headers["Location"])
    assert "purpose binding" in page
    assert grants.list_grants(ctx, world.admin, project="schools") == []


WRONG_ROLE = [
    ("researcher", "GET", "/admin/people", {}),
    ("data_custodian", "GET", "/admin/people", {}),
    ("researcher", "POST", "/admin/people", {"email": "x@y.org", "name": "X", "organisation": "O"}),
    ("data_custodian", "POST", "/admin/projects/study/approve", {}),
    ("output_checker", "POST", "/admin/projects/study/close", {"reason": "because"}),
    (
        "researcher",
        "POST",
        "/admin/projects/study/members",
        {"email": "researcher@example.org", "role": "researcher", "expires_on": "2026-12-01"},
    ),
    (
        "data_custodian",
        "POST",
        "/admin/grants",
        {
            "project": "study",
            "dataset": "hospital-episodes",
            "variables": "age_band",
            "expires_on": "2026-12-01",
        },
    ),
    (
        "researcher",
        "POST",
        "/admin/projects",
        {
            "slug": "mine",
            "title": "T",
            "lay_summary": "L",
            "public_benefit": "P",
            "organisation": "O",
            "purpose": "health_research",
            "start_date": "2026-07-01",
            "end_date": "2027-01-01",
        },
    ),
]


@pytest.mark.parametrize(
    ("role", "method", "url", "data"), WRONG_ROLE, ids=[f"{r} {m} {u}" for r, m, u, _ in WRONG_ROLE]
)
def test_wrong_role_gets_403_and_nothing_changes(
    web: Web,
    client: FlaskClient,
    ctx: Context,
    world: World,
    role: str,
    method: str,
    url: str,
    data: dict[str, str],
) -> None:
    propose(ctx, world, "study")
    web.login_as(role)
    before = counts(ctx)
    if method == "GET":
        response = client.get(url)
    else:
        response = web.post(url, data)
    assert response.status_code == 403
    assert "requires the role" in response.get_data(as_text=True)
    assert counts(ctx) == before
    assert audit_tail(ctx)[0][1:] == ("refused", "role")


def test_custodian_of_another_dataset_cannot_approve(
    web: Web, client: FlaskClient, ctx: Context, world: World
) -> None:
    make_project(ctx, world, "study", "approved", grant="requested", member=False)
    (pending,) = grants.list_grants(ctx, world.admin, project="study")
    people.create_person(
        ctx,
        world.admin,
        email="other@agency.example",
        name="Oth",
        organisation="A",
        roles=["data_custodian"],
    )
    web.secrets.clear()
    web.login("other@agency.example")
    response = web.post(f"/admin/grants/{pending.uuid}/approve")
    assert response.status_code == 403
    assert "only the custodian" in response.get_data(as_text=True)
    assert grants.get_grant(ctx, world.admin, pending.uuid).state == "requested"


def test_unknown_things_are_404(web: Web, client: FlaskClient) -> None:
    web.login_as("admin")
    assert client.get("/admin/projects/nope").status_code == 404
    assert client.get("/admin/datasets/nope").status_code == 404
    assert client.get("/admin/people/00000000-0000-4000-8000-000000000000").status_code == 404
    assert client.get("/admin/nope").status_code == 404


def test_state_changes_are_post_only(
    web: Web, client: FlaskClient, ctx: Context, world: World
) -> None:
    propose(ctx, world, "study")
    web.login_as("admin")
    assert client.get("/admin/projects/study/approve").status_code == 405
    assert projects.get_project(ctx, world.admin, "study").state == "proposed"


def test_project_page_offers_only_allowed_actions(web: Web, ctx: Context, world: World) -> None:
    make_project(ctx, world, "study", "active", grant="requested")
    web.login_as("admin")
    page = web.page("/admin/projects/study")
    assert 'action="/admin/projects/study/suspend"' in page
    assert 'action="/admin/projects/study/close"' in page
    assert 'action="/admin/projects/study/approve"' not in page
    assert 'action="/admin/projects/study/activate"' not in page
    assert '<label for="suspend-reason">' in page
