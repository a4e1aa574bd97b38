"""Custodian egress rights (SATRE 3.1.06) in the control plane: who may set a dataset's
policy, name delegates and grant or revoke egress rights (every role, and the custodian of
another dataset, a delegate, a removed delegate), the rules each action enforces, and what
the queue reads (``egress_requirements``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import ControlError
from enclave.control.models import Person, Project
from enclave.control.service import egress, grants, members, people, projects
from tests.enclave.control.factories import (
    World,
    audit_tail,
    counts,
    make_project,
    request,
)

OTHER_CUSTODIAN = "keeper@example.org"
DELEGATE = "delegate@example.org"
SLUG = "study"


def _setup(ctx: Context, world: World) -> None:
    """Project ``study`` (active, the dataset granted, the researcher a member), another
    custodian, and a delegate (an output checker) of the world's dataset."""
    make_project(ctx, world, SLUG, "active")
    people.create_person(
        ctx,
        world.admin,
        email=OTHER_CUSTODIAN,
        name="Other Keeper",
        organisation="Org",
        roles=["data_custodian"],
    )
    people.create_person(
        ctx,
        world.admin,
        email=DELEGATE,
        name="Del Egate",
        organisation="Org",
        roles=["output_checker"],
    )
    egress.add_delegate(ctx, world.custodian, world.dataset, DELEGATE)


def _actor(world: World, who: str) -> str:
    return {
        "admin": world.admin,
        "custodian": world.custodian,
        "other_custodian": OTHER_CUSTODIAN,
        "delegate": DELEGATE,
        "checker": world.checker,
        "researcher": world.researcher,
        "client": world.client,
        "nobody": world.nobody,
    }[who]


def _prepare(ctx: Context, world: World, action: str) -> None:
    if action == "revoke_egress_right":
        egress.grant_egress_right(ctx, world.custodian, world.dataset, SLUG, world.researcher)


ACTIONS: dict[str, Callable[[Context, World, str], object]] = {
    "set_egress_policy": lambda ctx, w, a: egress.set_egress_policy(ctx, a, w.dataset, True),
    "add_delegate": lambda ctx, w, a: egress.add_delegate(ctx, a, w.dataset, w.checker),
    "remove_delegate": lambda ctx, w, a: egress.remove_delegate(ctx, a, w.dataset, DELEGATE),
    "grant_egress_right": lambda ctx, w, a: egress.grant_egress_right(
        ctx, a, w.dataset, SLUG, w.researcher
    ),
    "revoke_egress_right": lambda ctx, w, a: egress.revoke_egress_right(
        ctx, a, w.dataset, SLUG, w.researcher
    ),
}
OK = ""
# actor -> action -> "" (allowed) or the rule that refuses
EXPECTED: dict[str, dict[str, str]] = {
    "admin": {
        "set_egress_policy": OK,
        "add_delegate": "role",
        "remove_delegate": "role",
        "grant_egress_right": "role",
        "revoke_egress_right": "role",
    },
    "custodian": dict.fromkeys(ACTIONS, OK),
    "other_custodian": {
        "set_egress_policy": "custodian_only",
        "add_delegate": "custodian_only",
        "remove_delegate": "custodian_only",
        "grant_egress_right": "custodian_or_delegate",
        "revoke_egress_right": "custodian_or_delegate",
    },
    "delegate": {
        "set_egress_policy": "role",
        "add_delegate": "role",
        "remove_delegate": "role",
        "grant_egress_right": OK,
        "revoke_egress_right": OK,
    },
    "checker": {
        "set_egress_policy": "role",
        "add_delegate": "role",
        "remove_delegate": "role",
        "grant_egress_right": "custodian_or_delegate",
        "revoke_egress_right": "custodian_or_delegate",
    },
    "researcher": dict.fromkeys(ACTIONS, "role"),
    "client": dict.fromkeys(ACTIONS, "role"),
    "nobody": dict.fromkeys(ACTIONS, "role"),
}
CASES = [
    pytest.param(who, action, rule, id=f"{who}-{action}")
    for who, row in EXPECTED.items()
    for action, rule in row.items()
]


@pytest.mark.parametrize(("who", "action", "rule"), CASES)
def test_permission_matrix(ctx: Context, world: World, who: str, action: str, rule: str) -> None:
    _setup(ctx, world)
    _prepare(ctx, world, action)
    before = counts(ctx)
    if rule == OK:
        ACTIONS[action](ctx, world, _actor(world, who))
        assert audit_tail(ctx) == [(action, "ok", "")]
        return
    with pytest.raises(ControlError) as refused:
        ACTIONS[action](ctx, world, _actor(world, who))
    assert refused.value.rule == rule
    assert audit_tail(ctx) == [(action, "refused", rule)]
    assert counts(ctx) == before


def test_the_matrix_covers_every_egress_action() -> None:
    from enclave.control.rules import PERMISSIONS, Action

    egress_actions = {a for a in Action if "egress" in a.value or "delegate" in a.value}
    assert {a.value for a in egress_actions} == set(ACTIONS)
    for who, row in EXPECTED.items():
        assert set(row) == set(ACTIONS), who
    assert all(a in PERMISSIONS for a in egress_actions)


def _refused(rule: str, call: Callable[[], object], ctx: Context) -> None:
    before = counts(ctx)
    with pytest.raises(ControlError) as refused:
        call()
    assert refused.value.rule == rule, refused.value
    assert audit_tail(ctx)[0][1:] == ("refused", rule)
    assert counts(ctx) == before


def test_policy_is_set_and_reported(ctx: Context, world: World) -> None:
    _setup(ctx, world)
    view = egress.set_egress_policy(ctx, world.custodian, world.dataset, True)
    assert view.signoff and view.custodian == world.custodian
    assert view.delegates == (DELEGATE,)
    assert egress.egress_policy(ctx, world.researcher, world.dataset).signoff
    assert not egress.set_egress_policy(ctx, world.admin, world.dataset, False).signoff
    _refused(
        "unknown_dataset",
        lambda: egress.set_egress_policy(ctx, world.admin, "no-such-data", True),
        ctx,
    )


def test_delegate_rules(ctx: Context, world: World) -> None:
    _setup(ctx, world)
    c, d = world.custodian, world.dataset
    _refused("role_required", lambda: egress.add_delegate(ctx, c, d, world.researcher), ctx)
    _refused("self_delegate", lambda: egress.add_delegate(ctx, c, d, c), ctx)
    _refused("duplicate_delegate", lambda: egress.add_delegate(ctx, c, d, DELEGATE), ctx)
    _refused("unknown_person", lambda: egress.add_delegate(ctx, c, d, "who@example.org"), ctx)
    _refused("unknown_delegate", lambda: egress.remove_delegate(ctx, c, d, world.checker), ctx)
    removed = egress.remove_delegate(ctx, c, d, DELEGATE)
    assert removed.removed_at is not None
    assert egress.egress_policy(ctx, world.admin, d).delegates == ()
    # a removed delegate grants nothing any more
    _refused(
        "custodian_or_delegate",
        lambda: egress.grant_egress_right(ctx, DELEGATE, d, SLUG, world.researcher),
        ctx,
    )
    # a delegate may be named again after removal
    assert egress.add_delegate(ctx, c, d, DELEGATE).removed_at is None


def test_a_delegate_cannot_delegate_for_another_dataset(ctx: Context, world: World) -> None:
    _setup(ctx, world)
    _refused(
        "custodian_or_delegate",
        lambda: egress.grant_egress_right(
            ctx, DELEGATE, world.other_dataset, SLUG, world.researcher
        ),
        ctx,
    )


def test_grant_rules(ctx: Context, world: World) -> None:
    _setup(ctx, world)
    c, d = world.custodian, world.dataset
    # not a member of the project
    _refused("membership", lambda: egress.grant_egress_right(ctx, c, d, SLUG, world.client), ctx)
    # the project holds no approved grant of the other dataset
    _refused(
        "no_grant",
        lambda: egress.grant_egress_right(ctx, c, world.other_dataset, SLUG, world.researcher),
        ctx,
    )
    right = egress.grant_egress_right(ctx, c, d, SLUG, world.researcher)
    assert (right.email, right.granted_by, right.revoked_at) == (world.researcher, c, None)
    _refused(
        "duplicate_right",
        lambda: egress.grant_egress_right(ctx, DELEGATE, d, SLUG, world.researcher),
        ctx,
    )
    revoked = egress.revoke_egress_right(ctx, DELEGATE, d, SLUG, world.researcher)
    assert revoked.revoked_at is not None and revoked.granted_by == c
    _refused(
        "unknown_right",
        lambda: egress.revoke_egress_right(ctx, c, d, SLUG, world.researcher),
        ctx,
    )


def test_a_pending_grant_is_not_enough(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p2", "active", grant="requested")
    _refused(
        "no_grant",
        lambda: egress.grant_egress_right(
            ctx, world.custodian, world.dataset, "p2", world.researcher
        ),
        ctx,
    )


def test_nobody_grants_a_right_to_themselves(ctx: Context, world: World) -> None:
    _setup(ctx, world)
    dual = "dual@example.org"
    people.create_person(
        ctx,
        world.admin,
        email=dual,
        name="Dual",
        organisation="Org",
        roles=["researcher", "data_custodian"],
    )
    today = ctx.today()
    people.accredit(
        ctx,
        world.admin,
        dual,
        scheme="SR",
        reference="SR-dual",
        issued_on=today - timedelta(days=1),
        expires_on=today + timedelta(days=300),
    )
    members.add_member(
        ctx,
        world.admin,
        project=SLUG,
        email=dual,
        role="researcher",
        expires_on=today + timedelta(days=100),
    )
    egress.add_delegate(ctx, world.custodian, world.dataset, dual)
    _refused(
        "two_person",
        lambda: egress.grant_egress_right(ctx, dual, world.dataset, SLUG, dual),
        ctx,
    )


def test_grant_needs_an_open_project_but_revocation_does_not(ctx: Context, world: World) -> None:
    _setup(ctx, world)
    egress.grant_egress_right(ctx, world.custodian, world.dataset, SLUG, world.researcher)
    projects.suspend_project(ctx, world.admin, SLUG, "incident 9")
    _refused(
        "project_state",
        lambda: egress.grant_egress_right(ctx, DELEGATE, world.dataset, SLUG, world.researcher),
        ctx,
    )
    egress.revoke_egress_right(ctx, DELEGATE, world.dataset, SLUG, world.researcher)
    assert audit_tail(ctx) == [("revoke_egress_right", "ok", "")]


def _requirements(ctx: Context, slug: str, email: str) -> tuple[egress.EgressRequirement, ...]:
    with transaction(ctx.engine, readonly=True) as session:
        project = session.scalars(select(Project).where(Project.slug == slug)).one()
        person = session.scalars(select(Person).where(Person.email == email)).one()
        return egress.egress_requirements(session, project, person)


def test_requirements_follow_policy_rights_delegates_and_grants(ctx: Context, world: World) -> None:
    _setup(ctx, world)
    assert _requirements(ctx, SLUG, world.researcher) == ()  # no policy: today's flow
    egress.set_egress_policy(ctx, world.custodian, world.dataset, True)
    egress.set_egress_policy(ctx, world.custodian, world.other_dataset, True)  # not granted
    needed = _requirements(ctx, SLUG, world.researcher)
    assert needed == (egress.EgressRequirement(world.dataset, False, (world.custodian, DELEGATE)),)
    egress.grant_egress_right(ctx, DELEGATE, world.dataset, SLUG, world.researcher)
    assert _requirements(ctx, SLUG, world.researcher)[0].has_right
    egress.remove_delegate(ctx, world.custodian, world.dataset, DELEGATE)
    assert _requirements(ctx, SLUG, world.researcher)[0].signers == (world.custodian,)
    # a grant revoked after approval still counts: its data may be in earlier outputs
    grant = grants.list_grants(ctx, world.admin, project=SLUG)[0]
    grants.revoke_grant(ctx, world.admin, grant.uuid, "ended early")
    assert [r.dataset for r in _requirements(ctx, SLUG, world.researcher)] == [world.dataset]


def test_a_requested_grant_does_not_count(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p3", "active", grant=None)
    request(ctx, world, "p3")
    egress.set_egress_policy(ctx, world.custodian, world.dataset, True)
    assert _requirements(ctx, "p3", world.researcher) == ()
