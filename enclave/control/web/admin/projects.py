"""Admin pages for projects: list, propose, view, move through the state machine, add members.

The transition views are generated from ``TRANSITIONS``: one POST route per action
(``/admin/projects/<slug>/approve``...), each calling its one service function.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, g, render_template, request, url_for
from flask.typing import ResponseReturnValue

from enclave.control.rules import MEMBERSHIP_ROLES, PURPOSES, Action, ProjectState, can
from enclave.control.service import datasets, grants, members, projects
from enclave.control.web.actions import PROJECT_TRANSITIONS
from enclave.control.web.forms import act, actor, field
from enclave.control.web.state import context

bp = Blueprint("projects", __name__, url_prefix="/projects")


@bp.get("")
def index() -> ResponseReturnValue:
    """Projects (optionally ``?state=``), with the form to propose one."""
    state = request.args.get("state") or None
    return render_template(
        "admin/projects.html",
        projects=projects.list_projects(context(), actor(), state=state),
        states=list(ProjectState),
        state=state,
        purposes=PURPOSES,
    )


@bp.post("")
def create() -> ResponseReturnValue:
    """Propose a project (state ``proposed``)."""
    return act(
        lambda: projects.create_project(
            context(),
            actor(),
            slug=field("slug"),
            title=field("title"),
            lay_summary=field("lay_summary"),
            public_benefit=field("public_benefit"),
            organisation=field("organisation"),
            purpose=field("purpose"),
            start_date=field("start_date"),
            end_date=field("end_date"),
            legal_basis=field("legal_basis"),
            ethics_reference=field("ethics_reference"),
            dsa_reference=field("dsa_reference"),
        ),
        back=url_for(".index"),
        done=lambda project: f"Proposed project {project.slug}.",
        to=lambda project: url_for(".show", slug=project.slug),
    )


@bp.get("/<slug>")
def show(slug: str) -> ResponseReturnValue:
    """One project: state and actions, members, grants, and the forms that change them."""
    ctx, me = context(), actor()
    project = projects.get_project(ctx, me, slug)
    roles = g.user.roles
    return render_template(
        "admin/project.html",
        project=project,
        members=members.list_members(ctx, me, slug),
        grants=grants.list_grants(ctx, me, project=slug) if can(roles, Action.LIST_GRANTS) else [],
        datasets=datasets.list_datasets(ctx, me) if can(roles, Action.REQUEST_GRANT) else [],
        transitions=PROJECT_TRANSITIONS,
        membership_roles=sorted(MEMBERSHIP_ROLES),
    )


def _transition_view(word: str) -> Callable[[str], ResponseReturnValue]:
    call, needs_reason = PROJECT_TRANSITIONS[word]

    def view(slug: str) -> ResponseReturnValue:
        return act(
            lambda: call(context(), actor(), slug, field("reason") if needs_reason else ""),
            back=url_for(".show", slug=slug),
            done=lambda project: f"Project {project.slug} is now {project.state}.",
            mirror=True,
        )

    view.__doc__ = f"{word.capitalize()} the project (POST only)."
    return view


for _word in PROJECT_TRANSITIONS:
    bp.add_url_rule(
        f"/<slug>/{_word}", endpoint=_word, view_func=_transition_view(_word), methods=["POST"]
    )


@bp.post("/<slug>/members")
def add_member(slug: str) -> ResponseReturnValue:
    """Add a person to the project in a role until a date."""
    return act(
        lambda: members.add_member(
            context(),
            actor(),
            project=slug,
            email=field("email"),
            role=field("role"),
            expires_on=field("expires_on"),
        ),
        back=url_for(".show", slug=slug),
        done=lambda membership: f"Added {membership.email} as {membership.role}.",
        mirror=True,
    )
