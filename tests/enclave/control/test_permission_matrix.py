"""The permission matrix, driven through the service layer: every role x project-scoped action
x project state, allowed exactly when ``PERMISSIONS`` and ``ALLOWED_STATES`` say so, and every
outcome audited with the rule that refused it.

Each state's world is built once per worker through the services and copied per test (SQLite
file copy), so the 400-odd cases stay fast. The rules are plain Python above the database, so
one backend suffices here; the other service tests run on every backend.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.control.errors import ControlError
from enclave.control.rules import ALLOWED_STATES, PERMISSIONS, Action, ProjectState, Role
from enclave.control.service import (
    access,
    compliance,
    datasets,
    egress,
    grants,
    members,
    packages,
    people,
    projects,
    quotas,
    tokens,
    usage,
)
from enclave.control.standing import StandingPolicy
from enclave.control.varspec import variable
from tests.enclave.control.factories import FakeClock, World, make_project, make_world

ROLES = [*(r.value for r in Role), "none"]
SLUG = "study"


def _pending_grant(ctx: Context) -> str:
    """The uuid of the matrix project's grant (left ``requested`` by the factory)."""
    return audit.records(ctx.engine, action="request_grant")[0].target


def _grant_egress_right(ctx: Context, world: World, actor: str) -> None:
    """The checker made a delegate and, where the state allows, the grant approved first, so
    that the custodian and the delegate succeed wherever the tables allow the action."""
    egress.add_delegate(ctx, world.custodian, world.dataset, world.checker)
    if projects.get_project(ctx, world.admin, SLUG).state in ("approved", "active"):
        grants.approve_grant(ctx, world.custodian, _pending_grant(ctx))
    egress.grant_egress_right(ctx, actor, world.dataset, SLUG, world.researcher)


def _act(action: Action, ctx: Context, world: World, actor: str) -> None:
    end = ctx.today() + timedelta(days=100)
    calls: dict[Action, Callable[[], object]] = {
        Action.APPROVE_PROJECT: lambda: projects.approve_project(ctx, actor, SLUG),
        Action.REJECT_PROJECT: lambda: projects.reject_project(ctx, actor, SLUG, "no"),
        Action.ACTIVATE_PROJECT: lambda: projects.activate_project(ctx, actor, SLUG),
        Action.SUSPEND_PROJECT: lambda: projects.suspend_project(ctx, actor, SLUG, "incident"),
        Action.CLOSE_PROJECT: lambda: projects.close_project(ctx, actor, SLUG, "done"),
        Action.SET_DISCLOSURE: lambda: projects.set_disclosure(ctx, actor, SLUG, {"threshold": 12}),
        Action.SET_LIMITS: lambda: quotas.set_limits(ctx, actor, SLUG, pids=256),
        Action.ADD_MEMBER: lambda: members.add_member(
            ctx, actor, project=SLUG, email=world.checker, role="output_checker", expires_on=end
        ),
        Action.REMOVE_MEMBER: lambda: members.remove_member(
            ctx, actor, project=SLUG, email=world.researcher, role="researcher", reason="left"
        ),
        Action.REQUEST_GRANT: lambda: grants.request_grant(
            ctx,
            actor,
            project=SLUG,
            dataset=world.other_dataset,
            variables=["benefit"],
            expires_on=end,
        ),
        Action.APPROVE_GRANT: lambda: grants.approve_grant(ctx, actor, _pending_grant(ctx)),
        Action.REJECT_GRANT: lambda: grants.reject_grant(ctx, actor, _pending_grant(ctx), "no"),
        Action.REVOKE_GRANT: lambda: grants.revoke_grant(ctx, actor, _pending_grant(ctx), "no"),
        Action.GRANT_EGRESS_RIGHT: lambda: _grant_egress_right(ctx, world, actor),
        Action.RELEASE_OUTPUT: lambda: access.release_output(
            ctx, actor, SLUG, request_id="req-1", files=["table.csv"]
        ),
        Action.REQUEST_PACKAGE: lambda: packages.request_package(
            ctx, actor, SLUG, "tiny-pkg", why="mixed models"
        ),
    }
    if action is Action.START_SESSION:
        decision = access.authorize_session(ctx, email=actor, project=SLUG)
        if not decision.allowed:
            raise ControlError(decision.reason, rule=decision.rule)
        return
    calls[action]()


PROJECT_ACTIONS = sorted(ALLOWED_STATES, key=str)
GRANT_ACTIONS = {Action.APPROVE_GRANT, Action.REJECT_GRANT, Action.REVOKE_GRANT}
# A grant can only be requested once a project is approved: in these states there is none to
# decide on, so the grant actions have no case there.
NO_GRANT_STATES = {ProjectState.PROPOSED, ProjectState.REJECTED}
CASES = [
    pytest.param(role, action, state, id=f"{role}-{action.value}-{state.value}")
    for role in ROLES
    for action in PROJECT_ACTIONS
    for state in ProjectState
    if not (action in GRANT_ACTIONS and state in NO_GRANT_STATES)
]


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """state -> a SQLite file holding the world and a project ``study`` in that state."""
    built: dict[str, Path] = {}

    def template(state: str) -> Path:
        if state not in built:
            folder = tmp_path_factory.mktemp(f"template-{state}")
            path = folder / "enclave.sqlite3"
            engine = make_engine(f"sqlite:///{path}")
            upgrade(engine)
            ctx = Context(engine=engine, data_dir=folder / "data", clock=FakeClock())
            make_project(ctx, make_world(ctx), SLUG, state, grant="requested")
            engine.dispose()  # checkpoints the WAL into the file
            built[state] = path
        return built[state]

    yield template


def _context(template: Path, tmp_path: Path) -> Context:
    path = tmp_path / "enclave.sqlite3"
    shutil.copyfile(template, path)
    return Context(engine=make_engine(f"sqlite:///{path}"), data_dir=tmp_path, clock=FakeClock())


@pytest.mark.parametrize(("role", "action", "state"), CASES)
def test_project_action_matrix(
    templates: Callable[[str], Path], tmp_path: Path, role: str, action: Action, state: str
) -> None:
    ctx = _context(templates(state), tmp_path)
    world = World()
    role_ok = role in PERMISSIONS[action]
    state_ok = state in ALLOWED_STATES[action]
    try:
        if role_ok and state_ok:
            _act(action, ctx, world, world.by_role(role))
            last = audit.records(ctx.engine)[-1]
            assert (last.action, last.outcome) in {(action.value, "ok"), (action.value, "allowed")}
        else:
            with pytest.raises(ControlError) as refused:
                _act(action, ctx, world, world.by_role(role))
            expected = "role" if not role_ok else "project_state"
            assert refused.value.rule == expected
            last = audit.records(ctx.engine)[-1]
            assert (last.action, last.outcome, last.detail["rule"]) == (
                action.value,
                "refused",
                expected,
            )
        assert audit.verify(ctx.engine).ok
    finally:
        ctx.close()


def _someone_else(world: World, actor: str) -> str:
    """A person other than the actor (acting on oneself is always allowed for credentials)."""
    return world.client if actor == world.nobody else world.nobody


END = "2027-06-01"  # a valid-from and expiry date for a compliance record
GLOBAL_ACTIONS: dict[Action, Callable[[Context, World, str], object]] = {
    Action.CREATE_PERSON: lambda ctx, w, a: people.create_person(
        ctx, a, email="new@example.org", name="New", organisation="Org", roles=["researcher"]
    ),
    Action.SET_ROLES: lambda ctx, w, a: people.set_roles(ctx, a, w.client, ["researcher"]),
    Action.ACCREDIT: lambda ctx, w, a: people.accredit(
        ctx, a, w.client, scheme="S", reference="R", issued_on="2026-01-01", expires_on="2027-01-01"
    ),
    Action.SET_CREDENTIALS: lambda ctx, w, a: people.set_password(
        ctx, a, _someone_else(w, a), "a long enough password"
    ),
    Action.ISSUE_TOKEN: lambda ctx, w, a: tokens.issue_token(
        ctx, a, _someone_else(w, a), label="ci"
    ),
    Action.LIST_PEOPLE: lambda ctx, w, a: people.list_people(ctx, a),
    Action.LIST_PROJECTS: lambda ctx, w, a: projects.get_project(ctx, a, "other"),
    Action.REGISTER_DATASET: lambda ctx, w, a: datasets.register_dataset(
        ctx,
        a,
        slug="census",
        name="Census",
        source_agency="Stats Agency",
        description="Census extract",
        version="ef" * 32,
        custodian=w.custodian,
        permitted_purposes=["official_statistics"],
        variables=[variable("age", "quasi_identifier")],
    ),
    Action.LIST_DATASETS: lambda ctx, w, a: datasets.list_datasets(ctx, a),
    Action.LIST_GRANTS: lambda ctx, w, a: grants.list_grants(ctx, a),
    Action.SET_EGRESS_POLICY: lambda ctx, w, a: egress.set_egress_policy(ctx, a, w.dataset, True),
    Action.ADD_DELEGATE: lambda ctx, w, a: egress.add_delegate(ctx, a, w.dataset, w.checker),
    Action.VIEW_USAGE: lambda ctx, w, a: usage.usage_report(ctx, a),
    # compliance (service/compliance.py), on the template's proposed project
    Action.RECORD_COMPLIANCE: lambda ctx, w, a: compliance.record_compliance(
        ctx, a, project=SLUG, kind="dpia", reference="D", valid_from=END, expires_on=END
    ),
    Action.RECORD_ORGANISATION: lambda ctx, w, a: compliance.record_organisation(
        ctx, a, name="Org", scheme="DSPT", reference="8J1", assured_until="2027-01-01"
    ),
    Action.ACCEPT_AGREEMENT: lambda ctx, w, a: compliance.accept_agreement(
        dataclasses.replace(ctx, policy=StandingPolicy(user_agreement_version="v1")), a
    ),
    Action.COMPLIANCE_REPORT: lambda ctx, w, a: compliance.compliance_report(ctx, a),
    Action.LIST_PACKAGES: lambda ctx, w, a: packages.list_packages(ctx, a),
}


@pytest.mark.parametrize("action", sorted(GLOBAL_ACTIONS, key=str))
@pytest.mark.parametrize("role", ROLES)
def test_global_action_matrix(
    templates: Callable[[str], Path], tmp_path: Path, role: str, action: Action
) -> None:
    """Actions outside any project (LIST_PROJECTS is checked on a project the actor is not a
    member of, which only staff may see)."""
    ctx = _context(templates(ProjectState.PROPOSED), tmp_path)
    world = World()
    try:
        if action is Action.LIST_PROJECTS:
            projects.create_project(
                ctx,
                world.admin,
                slug="other",
                title="Other",
                lay_summary="x",
                public_benefit="y",
                organisation="Org",
                purpose="health_research",
                start_date=ctx.today(),
                end_date=ctx.today() + timedelta(days=5),
            )
        before = len(audit.records(ctx.engine))
        if role in PERMISSIONS[action]:
            GLOBAL_ACTIONS[action](ctx, world, world.by_role(role))
        else:
            with pytest.raises(ControlError) as refused:
                GLOBAL_ACTIONS[action](ctx, world, world.by_role(role))
            assert refused.value.rule in {"role", "unknown_project"}
            last = audit.records(ctx.engine)[-1]
            assert (last.action, last.outcome) == (action.value, "refused")
            assert len(audit.records(ctx.engine)) == before + 1
    finally:
        ctx.close()


def test_every_action_is_in_the_permission_table() -> None:
    assert set(PERMISSIONS) == set(Action)
    assert {a for a in Action if a in ALLOWED_STATES} == set(PROJECT_ACTIONS)
