"""Access decisions: who may start a session with which data, and output releases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.errors import ControlError
from enclave.control.service import access, grants, members, people, projects
from tests.enclave.control.factories import (
    VERSION,
    FakeClock,
    World,
    audit_tail,
    make_project,
    propose,
)


def test_allowed_session_carries_the_granted_data(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    projects.set_disclosure(ctx, world.admin, "p1", {"threshold": 15})
    decision = access.authorize_session(ctx, email=world.researcher, project="p1")
    assert decision.allowed and decision.rule is None
    assert decision.username == "researcher"
    assert [(m.dataset, m.version, m.variables) for m in decision.data] == [
        (world.dataset, VERSION, ("age_band",))
    ]
    assert decision.disclosure == {"threshold": 15}
    assert decision.valid_until == ctx.today() + timedelta(days=365)
    event = audit.records(ctx.engine)[-1]
    assert (event.action, event.outcome, event.detail["datasets"]) == (
        "start_session",
        "allowed",
        [world.dataset],
    )


def _refused(ctx: Context, email: str, rule: str, project: str = "p1") -> None:
    decision = access.authorize_session(ctx, email=email, project=project)
    assert not decision.allowed
    assert decision.rule == rule, decision.reason
    assert decision.data == ()
    assert audit_tail(ctx) == [("start_session", "refused", rule)]


def test_suspension_revokes_access_at_once(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    assert access.authorize_session(ctx, email=world.researcher, project="p1").allowed
    projects.suspend_project(ctx, world.admin, "p1", "incident")
    _refused(ctx, world.researcher, "project_state")


def test_expired_accreditation_blocks_sessions(
    ctx: Context, world: World, clock: FakeClock
) -> None:
    propose(ctx, world, "p1", end=ctx.today() + timedelta(days=800))
    members.add_member(
        ctx,
        world.admin,
        project="p1",
        email=world.researcher,
        role="researcher",
        expires_on=ctx.today() + timedelta(days=700),
    )
    projects.approve_project(ctx, world.admin, "p1")
    projects.activate_project(ctx, world.admin, "p1")
    clock.advance(days=401)
    _refused(ctx, world.researcher, "accreditation")


def test_sessions_only_within_project_dates(ctx: Context, world: World, clock: FakeClock) -> None:
    propose(ctx, world, "early", start=ctx.today() + timedelta(days=10))
    members.add_member(
        ctx,
        world.admin,
        project="early",
        email=world.researcher,
        role="researcher",
        expires_on=ctx.today() + timedelta(days=30),
    )
    projects.approve_project(ctx, world.admin, "early")
    projects.activate_project(ctx, world.admin, "early")
    _refused(ctx, world.researcher, "project_dates", "early")
    clock.advance(days=12)
    assert access.authorize_session(ctx, email=world.researcher, project="early").allowed
    clock.advance(days=30)  # membership over
    _refused(ctx, world.researcher, "membership_expired", "early")
    clock.advance(days=400)  # project over
    _refused(ctx, world.researcher, "project_dates", "early")


@pytest.mark.parametrize(
    ("who", "project", "rule"),
    [
        ("nobody@example.org", "p1", "role"),
        ("ghost@example.org", "p1", "unknown_actor"),
        ("researcher@example.org", "nope", "unknown_project"),
    ],
)
def test_refusals_name_the_rule(
    ctx: Context, world: World, who: str, project: str, rule: str
) -> None:
    make_project(ctx, world, "p1", "active")
    _refused(ctx, who, rule, project)


def test_non_member_and_removed_member_are_refused(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active", member=False)
    _refused(ctx, world.researcher, "membership")
    make_project(ctx, world, "p2", "active")
    members.remove_member(
        ctx, world.admin, project="p2", email=world.researcher, role="researcher", reason="left"
    )
    _refused(ctx, world.researcher, "membership", "p2")


def test_suspended_account_is_refused(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    people.set_active(ctx, world.admin, world.researcher, active=False, reason="investigation")
    _refused(ctx, world.researcher, "inactive")


def test_revoked_and_expired_grants_are_not_mounted(
    ctx: Context, world: World, clock: FakeClock
) -> None:
    make_project(ctx, world, "p1", "active")
    granted = grants.list_grants(ctx, world.admin, project="p1")[0]
    clock.advance(days=201)  # the factory's grant lasts 200 days
    decision = access.authorize_session(ctx, email=world.researcher, project="p1")
    assert decision.allowed and decision.data == ()
    clock.advance(days=-201)
    grants.revoke_grant(ctx, world.admin, granted.uuid, "withdrawn")
    assert access.authorize_session(ctx, email=world.researcher, project="p1").data == ()


def test_session_stop_is_audited(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    access.record_session_stop(ctx, email=world.researcher, project="p1", reason="culled")
    assert audit_tail(ctx) == [("session_stop", "ok", "")]


def test_releases_are_counted_and_separated_from_research(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    view = access.release_output(
        ctx, world.checker, "p1", request_id="req-7", files=["table1.csv", "model.json"]
    )
    assert view.outputs_released == 1
    event = audit.records(ctx.engine)[-1]
    assert (event.action, event.target, event.detail["files"]) == (
        "release_output",
        "req-7",
        ["table1.csv", "model.json"],
    )
    people.set_roles(ctx, world.admin, world.researcher, ["researcher", "output_checker"])
    with pytest.raises(ControlError) as error:
        access.release_output(ctx, world.researcher, "p1", request_id="req-8", files=["t.csv"])
    assert error.value.rule == "separation_of_duties"
    projects.suspend_project(ctx, world.admin, "p1", "incident")
    with pytest.raises(ControlError) as error:
        access.release_output(ctx, world.checker, "p1", request_id="req-9", files=["t.csv"])
    assert error.value.rule == "project_state"
    assert projects.get_project(ctx, world.admin, "p1").outputs_released == 1
