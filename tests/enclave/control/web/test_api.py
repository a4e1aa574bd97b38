"""The JSON API: bearer tokens (none, bad, revoked, expired, good), actions audited under the
token's owner, refusals as 403 with the rule's message, bad bodies as 400, and responses that
match the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from werkzeug.test import TestResponse

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.service import grants, projects, tokens
from tests.enclave.control.factories import FakeClock, World, audit_tail, counts, make_project
from tests.enclave.control.mfa import fresh_code


class Api:
    """A client that sends one person's bearer token and checks responses against the
    OpenAPI document's schemas."""

    def __init__(self, client: FlaskClient, token: str | None) -> None:
        self.client, self.token = client, token
        self.document = client.get("/api/openapi.json").json

    def call(self, method: str, url: str, body: Any = None) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.client.open(url, method=method, json=body, headers=headers)

    def check(self, response: TestResponse, schema: str, *, many: bool = False) -> Any:
        """The response's JSON, after validating it against components/schemas/``schema``
        (or, with ``many``, a list of them as ``{"items": [...]}``)."""
        ref = {"$ref": f"#/components/schemas/{schema}"}
        shape = {"type": "object", "properties": {"items": {"type": "array", "items": ref}}}
        root = {**self.document, **(shape if many else ref)}
        Draft202012Validator(root).validate(response.json)
        return response.json


def api_for(client: FlaskClient, ctx: Context, world: World, who: str) -> Api:
    code = fresh_code(ctx, world.admin)
    return Api(client, tokens.issue_token(ctx, world.admin, who, label="test", totp=code).token)


def project_body(ctx: Context, slug: str = "api-study") -> dict[str, Any]:
    return {
        "slug": slug,
        "title": "Made by automation",
        "lay_summary": "Counting things",
        "public_benefit": "Knowing how many",
        "organisation": "University",
        "purpose": "health_research",
        "start_date": str(ctx.today()),
        "end_date": str(ctx.today() + timedelta(days=200)),
        "legal_basis": "Statistics Act",
        "ethics_reference": "ETH-9",
        "dsa_reference": "DSA-9",
        "disclosure": {"threshold": 15},
    }


@pytest.mark.parametrize("problem", ["none", "not bearer", "unknown", "revoked", "expired"])
def test_bad_tokens_get_401(
    client: FlaskClient, ctx: Context, world: World, clock: FakeClock, problem: str
) -> None:
    issued = tokens.issue_token(
        ctx,
        world.admin,
        world.admin,
        label="ci",
        lifetime=timedelta(hours=1),
        totp=fresh_code(ctx, world.admin),
    )
    headers = {"Authorization": f"Bearer {issued.token}"}
    if problem == "none":
        headers = {}
    elif problem == "not bearer":
        headers = {"Authorization": f"Basic {issued.token}"}
    elif problem == "unknown":
        headers = {"Authorization": f"Bearer {issued.token[:-3]}abc"}
    elif problem == "revoked":
        tokens.revoke_token(ctx, world.admin, issued.info.uuid)
    else:
        clock.advance(hours=2)
    before = counts(ctx)
    response = client.post("/api/projects", json=project_body(ctx), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json["rule"] in ("token", "token_missing")
    assert counts(ctx) == before
    if problem in ("unknown", "revoked", "expired"):
        assert audit_tail(ctx) == [("token_auth", "refused", "")]
    assert "Set-Cookie" not in response.headers


def test_good_token_creates_a_project_and_it_is_audited(
    client: FlaskClient, ctx: Context, world: World
) -> None:
    api = api_for(client, ctx, world, world.admin)
    response = api.call("POST", "/api/projects", project_body(ctx))
    assert response.status_code == 201
    created = api.check(response, "Project")
    assert created["state"] == "proposed" and created["disclosure"] == {"threshold": 15}
    (event,) = audit.records(ctx.engine, action="create_project")
    assert (event.actor, event.outcome, event.project) == (world.admin, "ok", "api-study")
    assert projects.get_project(ctx, world.admin, "api-study").title == "Made by automation"
    assert "Set-Cookie" not in response.headers, "the API never starts a session"

    for word, state in (("approve", "approved"), ("activate", "active")):
        response = api.call("POST", f"/api/projects/api-study/{word}")
        assert api.check(response, "Project")["state"] == state
    response = api.call("POST", "/api/projects/api-study/suspend", {"reason": "incident"})
    assert response.json["state"] == "suspended"
    listed = api.check(api.call("GET", "/api/projects?state=suspended"), "Project", many=True)
    assert [p["slug"] for p in listed["items"]] == ["api-study"]


def test_refusal_is_403_with_the_rule_message(
    client: FlaskClient, ctx: Context, world: World
) -> None:
    api = api_for(client, ctx, world, world.custodian)
    before = counts(ctx)
    response = api.call("POST", "/api/projects", project_body(ctx))
    assert response.status_code == 403
    assert response.json == {"error": "create_project requires the role admin", "rule": "role"}
    api.check(response, "Error")
    assert counts(ctx) == before
    assert audit_tail(ctx) == [("create_project", "refused", "role")]


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"purpose": "deportation"}, 400, "purpose: 'deportation' is not one of"),
        ({"extra": 1}, 400, "Additional properties are not allowed"),
        ({"start_date": "soon"}, 400, "is not a date"),
        ({"slug": "study"}, 409, "already exists"),
    ],
)
def test_bad_bodies(
    client: FlaskClient,
    ctx: Context,
    world: World,
    change: dict[str, Any],
    status: int,
    fragment: str,
) -> None:
    make_project(ctx, world, "study", "proposed", member=False)
    api = api_for(client, ctx, world, world.admin)
    before = counts(ctx)
    response = api.call("POST", "/api/projects", {**project_body(ctx), **change})
    assert response.status_code == status
    assert fragment in response.json["error"]
    assert counts(ctx) == before


def test_not_json_is_400(client: FlaskClient, ctx: Context, world: World) -> None:
    api = api_for(client, ctx, world, world.admin)
    headers = {"Authorization": f"Bearer {api.token}"}
    response = client.post("/api/projects", data="slug=x", headers=headers)
    assert response.status_code == 400 and response.json["rule"] == "invalid_body"


def test_people_datasets_members_and_grants(
    client: FlaskClient, ctx: Context, world: World
) -> None:
    admin = api_for(client, ctx, world, world.admin)
    custodian = api_for(client, ctx, world, world.custodian)
    response = admin.call(
        "POST",
        "/api/people",
        {"email": "rob@uni.example", "name": "Rob", "organisation": "Uni", "roles": ["researcher"]},
    )
    person = admin.check(response, "Person")
    assert response.status_code == 201 and person["roles"] == ["researcher"]
    issued, expires = str(ctx.today()), str(ctx.today() + timedelta(days=300))
    until = str(ctx.today() + timedelta(days=100))  # within the project's dates
    response = admin.call(
        "POST",
        f"/api/people/{person['uuid']}/accreditations",
        {"scheme": "SR", "reference": "SR-1", "issued_on": issued, "expires_on": expires},
    )
    assert admin.check(response, "Person")["accredited_until"] == expires
    assert any(
        p["email"] == "rob@uni.example" for p in admin.call("GET", "/api/people").json["items"]
    )
    assert admin.check(admin.call("GET", "/api/me"), "Person")["email"] == world.admin

    response = custodian.call(
        "POST",
        "/api/datasets",
        {
            "slug": "births",
            "name": "Births",
            "source_agency": "Registry",
            "description": "Birth registrations",
            "version": "12" * 32,
            "custodian": world.custodian,
            "permitted_purposes": ["health_research"],
            "variables": [
                {"name": "mother_id", "sensitivity": "direct_identifier"},
                {"name": "weight", "sensitivity": "other", "description": "grams"},
            ],
        },
    )
    assert response.status_code == 201
    assert [v["name"] for v in custodian.check(response, "Dataset")["variables"]] == [
        "mother_id",
        "weight",
    ]
    admin.check(admin.call("GET", "/api/datasets/births"), "Dataset")

    admin.call("POST", "/api/projects", project_body(ctx, "births-study"))
    admin.call("POST", "/api/projects/births-study/approve")
    response = admin.call(
        "POST",
        "/api/projects/births-study/members",
        {
            "email": "rob@uni.example",
            "role": "researcher",
            "expires_on": until,
        },
    )
    assert response.status_code == 201, response.json
    members = admin.check(
        admin.call("GET", "/api/projects/births-study/members"), "Membership", many=True
    )
    assert [m["email"] for m in members["items"]] == ["rob@uni.example"]

    grant_body = {
        "project": "births-study",
        "dataset": "births",
        "variables": ["mother_id"],
        "expires_on": until,
    }
    refused = admin.call("POST", "/api/grants", grant_body)
    assert refused.status_code == 403 and refused.json["rule"] == "direct_identifier"
    response = admin.call("POST", "/api/grants", {**grant_body, "variables": ["weight"]})
    grant = admin.check(response, "Grant")
    assert response.status_code == 201 and grant["state"] == "requested"
    assert admin.call("POST", f"/api/grants/{grant['uuid']}/approve").status_code == 403
    approved = custodian.call("POST", f"/api/grants/{grant['uuid']}/approve")
    assert custodian.check(approved, "Grant")["state"] == "approved"
    assert grants.get_grant(ctx, world.admin, grant["uuid"]).decided_by == world.custodian
    listed = custodian.check(
        custodian.call("GET", "/api/grants?project=births-study"), "Grant", many=True
    )
    assert [g["uuid"] for g in listed["items"]] == [grant["uuid"]]
    revoked = admin.call("POST", f"/api/grants/{grant['uuid']}/revoke", {"reason": "done"})
    assert revoked.json["state"] == "revoked"


def test_unknown_things_are_404_json(client: FlaskClient, ctx: Context, world: World) -> None:
    api = api_for(client, ctx, world, world.admin)
    assert api.call("GET", "/api/projects/nope").status_code == 404
    response = api.call("GET", "/api/grants/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404 and response.json["rule"] == "unknown_grant"
    response = api.call("GET", "/api/nothing-here")
    assert response.status_code == 404 and response.mimetype == "application/json"
