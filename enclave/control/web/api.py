"""The JSON API for automation, under ``/api``, with bearer tokens (``tokens.issue_token``).

The token's owner is the actor of every call; the gate (``security``) has already verified
the token and set ``g.api_actor``. The session cookie is never read here, which is why the
blueprint is exempt from CSRF. Each view validates its body against the documented schema,
calls one service function and returns its view as JSON; refusals become JSON errors in the
app's one handler. ``/api/openapi.json`` describes every route (``openapi``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from enclave.control.errors import NotFound
from enclave.control.service import datasets, grants, members, people, projects
from enclave.control.varspec import variable
from enclave.control.views import (
    DatasetView,
    GrantView,
    MembershipView,
    PersonView,
    ProjectView,
)
from enclave.control.web.actions import GRANT_DECISIONS, PROJECT_TRANSITIONS
from enclave.control.web.forms import mirror_hub
from enclave.control.web.jsonview import plain
from enclave.control.web.openapi import CONTRACT
from enclave.control.web.security import public
from enclave.control.web.state import context

operation, body = CONTRACT.operation, CONTRACT.body  # the decorator and the body reader
bp = Blueprint("api", __name__, url_prefix="/api")


def _actor() -> str:
    email: str = g.api_actor
    return email


def one(view: Any, status: int = 200) -> ResponseReturnValue:
    """One view as JSON."""
    return jsonify(plain(view)), status


def mirrored(result: ResponseReturnValue) -> ResponseReturnValue:
    """``result`` after mirroring memberships to the hub (if configured); a hub failure does
    not undo the change and is reported in a ``Warning`` header."""
    warning = mirror_hub(_actor())
    if warning is None:
        return result
    response = current_app.make_response(result)
    text = " ".join(warning.split()).replace('"', "'")  # one header line, quoted
    response.headers["Warning"] = f'199 enclave "{text}"'
    return response


def many(views: list[Any]) -> ResponseReturnValue:
    """A list of views as ``{"items": [...]}``."""
    return jsonify(items=plain(views))


@bp.get("/openapi.json")
@public
@operation("This document", None, public=True)
def openapi_document() -> ResponseReturnValue:
    """The OpenAPI 3.1 description of this API (public: it holds no data)."""
    return jsonify(CONTRACT.document(current_app))


@bp.get("/me")
@operation("The owner of the token", PersonView)
def me() -> ResponseReturnValue:
    """The person the token belongs to."""
    return one(people.get_person(context(), _actor(), _actor()))


@bp.get("/people")
@operation("List people (admins)", PersonView, many=True)
def list_people() -> ResponseReturnValue:
    return many(people.list_people(context(), _actor()))


@bp.post("/people")
@operation("Create a person (admins)", PersonView, body="PersonCreate", status=201)
def create_person() -> ResponseReturnValue:
    data = body("PersonCreate")
    return one(
        people.create_person(
            context(),
            _actor(),
            email=data["email"],
            name=data["name"],
            organisation=data["organisation"],
            roles=data.get("roles", []),
            username=data.get("username"),
        ),
        201,
    )


@bp.post("/people/<uuid:person_id>/accreditations")
@operation("Record an accreditation (admins)", PersonView, body="AccreditationCreate", status=201)
def accredit(person_id: UUID) -> ResponseReturnValue:
    data = body("AccreditationCreate")
    person = people.person_by_uuid(context(), str(person_id))
    if person is None:
        raise NotFound(f"unknown person {person_id}", rule="unknown_person")
    return one(people.accredit(context(), _actor(), person.email, **data), 201)


@bp.get("/projects")
@operation(
    "List projects (staff: all; others: their own)", ProjectView, many=True, query=("state",)
)
def list_projects() -> ResponseReturnValue:
    state = request.args.get("state") or None
    return many(projects.list_projects(context(), _actor(), state=state))


@bp.post("/projects")
@operation("Propose a project (admins)", ProjectView, body="ProjectCreate", status=201)
def create_project() -> ResponseReturnValue:
    data = body("ProjectCreate")
    return one(projects.create_project(context(), _actor(), **data), 201)


@bp.get("/projects/<slug>")
@operation("One project", ProjectView)
def get_project(slug: str) -> ResponseReturnValue:
    return one(projects.get_project(context(), _actor(), slug))


def _transition_view(word: str) -> Callable[[str], ResponseReturnValue]:
    call, needs_reason = PROJECT_TRANSITIONS[word]

    def view(slug: str) -> ResponseReturnValue:
        reason = body("Reason")["reason"] if needs_reason else ""
        return mirrored(one(call(context(), _actor(), slug, reason)))

    view.__doc__ = f"{word.capitalize()} a project."
    summary = f"{word.capitalize()} a project (admins)"
    return operation(summary, ProjectView, body="Reason" if needs_reason else None)(view)


for _word in PROJECT_TRANSITIONS:
    bp.add_url_rule(
        f"/projects/<slug>/{_word}",
        endpoint=f"{_word}_project",
        view_func=_transition_view(_word),
        methods=["POST"],
    )


@bp.get("/projects/<slug>/members")
@operation("A project's current members", MembershipView, many=True)
def list_members(slug: str) -> ResponseReturnValue:
    return many(members.list_members(context(), _actor(), slug))


@bp.post("/projects/<slug>/members")
@operation("Add a member (admins)", MembershipView, body="MemberCreate", status=201)
def add_member(slug: str) -> ResponseReturnValue:
    data = body("MemberCreate")
    return mirrored(one(members.add_member(context(), _actor(), project=slug, **data), 201))


@bp.get("/datasets")
@operation("List datasets", DatasetView, many=True)
def list_datasets() -> ResponseReturnValue:
    return many(datasets.list_datasets(context(), _actor()))


@bp.post("/datasets")
@operation("Register a dataset (admins, custodians)", DatasetView, body="DatasetCreate", status=201)
def register_dataset() -> ResponseReturnValue:
    data = body("DatasetCreate")
    specs = [
        variable(v["name"], v["sensitivity"], v.get("description", "")) for v in data["variables"]
    ]
    return one(datasets.register_dataset(context(), _actor(), **{**data, "variables": specs}), 201)


@bp.get("/datasets/<slug>")
@operation("One dataset", DatasetView)
def get_dataset(slug: str) -> ResponseReturnValue:
    return one(datasets.get_dataset(context(), _actor(), slug))


@bp.get("/grants")
@operation(
    "List grants (admins; custodians: their datasets')",
    GrantView,
    many=True,
    query=("project", "dataset"),
)
def list_grants() -> ResponseReturnValue:
    project, dataset = request.args.get("project") or None, request.args.get("dataset") or None
    return many(grants.list_grants(context(), _actor(), project=project, dataset=dataset))


@bp.post("/grants")
@operation("Request a grant (admins)", GrantView, body="GrantCreate", status=201)
def request_grant() -> ResponseReturnValue:
    data = body("GrantCreate")
    return one(grants.request_grant(context(), _actor(), **data), 201)


@bp.get("/grants/<uuid:grant_id>")
@operation("One grant", GrantView)
def get_grant(grant_id: UUID) -> ResponseReturnValue:
    return one(grants.get_grant(context(), _actor(), str(grant_id)))


def _decision_view(word: str) -> Callable[[UUID], ResponseReturnValue]:
    call, needs_reason = GRANT_DECISIONS[word]

    def view(grant_id: UUID) -> ResponseReturnValue:
        reason = body("Reason")["reason"] if needs_reason else ""
        return one(call(context(), _actor(), str(grant_id), reason))

    view.__doc__ = f"{word.capitalize()} a grant."
    who = "admins or the dataset's custodian" if word == "revoke" else "the dataset's custodian"
    summary = f"{word.capitalize()} a grant ({who})"
    return operation(summary, GrantView, body="Reason" if needs_reason else None)(view)


for _word in GRANT_DECISIONS:
    bp.add_url_rule(
        f"/grants/<uuid:grant_id>/{_word}",
        endpoint=f"{_word}_grant",
        view_func=_decision_view(_word),
        methods=["POST"],
    )
