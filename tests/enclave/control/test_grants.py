"""Grants: purpose binding, direct identifiers, the two-person rule and custodianship."""

from __future__ import annotations

from datetime import timedelta

import pytest

from enclave.control.context import Context
from enclave.control.errors import ControlError
from enclave.control.service import grants, people, projects
from tests.enclave.control.factories import (
    World,
    audit_tail,
    counts,
    make_project,
    propose,
    request,
)


def _request(ctx: Context, world: World, **change: object) -> None:
    values: dict[str, object] = {
        "project": "p1",
        "dataset": world.dataset,
        "variables": ["age_band", "diagnosis"],
        "expires_on": ctx.today() + timedelta(days=100),
    }
    grants.request_grant(ctx, world.admin, **{**values, **change})  # type: ignore[arg-type]


def test_request_then_custodian_approval(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "approved", grant=None)
    pending = request(ctx, world, "p1", ("age_band", "diagnosis"))
    assert pending.state == "requested" and pending.variables == ("age_band", "diagnosis")
    assert pending.requested_by == world.admin and pending.decided_by is None
    approved = grants.approve_grant(ctx, world.custodian, pending.uuid)
    assert approved.state == "approved" and approved.decided_by == world.custodian
    assert approved.in_force(ctx.today())
    assert audit_tail(ctx, 2) == [("request_grant", "ok", ""), ("approve_grant", "ok", "")]


@pytest.mark.parametrize(
    ("change", "rule", "message"),
    [
        ({"variables": ["nhs_number", "age_band"]}, "direct_identifier", "never granted"),
        ({"variables": ["shoe_size"]}, "unknown_variable", r"no variable\(s\) shoe_size"),
        ({"variables": []}, "unknown_variable", "at least one variable"),
        ({"dataset": "no-such-data"}, "unknown_dataset", "unknown dataset"),
        ({"project": "no-such-project"}, "unknown_project", "unknown project"),
        ({"expires_on": "2026-06-15"}, "invalid_date", "must expire after today"),
        ({"expires_on": "2099-01-01"}, "invalid_date", "by the project's end"),
        ({"expires_on": "15/06/2027"}, "invalid_date", "is not a date"),
    ],
)
def test_bad_requests_are_refused_and_nothing_changes(
    ctx: Context, world: World, change: dict[str, object], rule: str, message: str
) -> None:
    make_project(ctx, world, "p1", "approved", grant=None)
    before = counts(ctx)
    with pytest.raises(ControlError, match=message) as error:
        _request(ctx, world, **change)
    assert error.value.rule == rule
    assert counts(ctx) == before


def test_purpose_binding(ctx: Context, world: World) -> None:
    propose(ctx, world, "p1", purpose="education_research")
    projects.approve_project(ctx, world.admin, "p1")
    before = counts(ctx)
    with pytest.raises(ControlError, match="purpose binding: project p1 is for education_research"):
        _request(ctx, world)
    assert counts(ctx) == before
    assert audit_tail(ctx) == [("request_grant", "refused", "purpose_binding")]


def test_requester_cannot_approve_even_when_also_custodian(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "approved", grant=None)
    people.set_roles(ctx, world.admin, world.custodian, ["data_custodian", "admin"])
    pending = grants.request_grant(
        ctx,
        world.custodian,
        project="p1",
        dataset=world.dataset,
        variables=["age_band"],
        expires_on=ctx.today() + timedelta(days=10),
    )
    with pytest.raises(ControlError, match="two-person rule") as error:
        grants.approve_grant(ctx, world.custodian, pending.uuid)
    assert error.value.rule == "two_person"
    assert grants.list_grants(ctx, world.admin, project="p1")[0].state == "requested"


def test_only_the_datasets_custodian_decides(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "approved", grant=None)
    people.create_person(
        ctx,
        world.admin,
        email="c2@example.org",
        name="C2",
        organisation="O",
        roles=["data_custodian"],
    )
    pending = request(ctx, world, "p1")
    with pytest.raises(ControlError) as error:
        grants.approve_grant(ctx, "c2@example.org", pending.uuid)
    assert error.value.rule == "custodian_only"
    assert grants.list_grants(ctx, "c2@example.org") == []  # sees only grants of own datasets


def test_one_open_grant_per_dataset_and_decided_grants_stay_decided(
    ctx: Context, world: World
) -> None:
    make_project(ctx, world, "p1", "approved", grant=None)
    pending = request(ctx, world, "p1")
    with pytest.raises(ControlError) as error:
        request(ctx, world, "p1")
    assert error.value.rule == "duplicate_grant"
    rejected = grants.reject_grant(ctx, world.custodian, pending.uuid, "too broad")
    assert rejected.state == "rejected" and rejected.reason == "too broad"
    with pytest.raises(ControlError) as error:
        grants.approve_grant(ctx, world.custodian, pending.uuid)
    assert error.value.rule == "grant_state"
    again = request(ctx, world, "p1")  # a rejected request no longer blocks a new one
    assert again.state == "requested"


def test_revocation_is_immediate(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    granted = grants.list_grants(ctx, world.admin, project="p1")[0]
    revoked = grants.revoke_grant(ctx, world.custodian, granted.uuid, "agreement withdrawn")
    assert revoked.state == "revoked" and not revoked.in_force(ctx.today())
    with pytest.raises(ControlError) as error:
        grants.revoke_grant(ctx, world.admin, granted.uuid, "again")
    assert error.value.rule == "grant_state"
    with pytest.raises(ControlError) as error:
        grants.approve_grant(ctx, world.custodian, "not-a-grant")
    assert error.value.rule == "unknown_grant"


def test_get_grant_for_admin_and_its_custodian_only(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "approved", grant=None)
    pending = request(ctx, world, "p1")
    assert grants.get_grant(ctx, world.admin, pending.uuid) == pending
    assert grants.get_grant(ctx, world.custodian, pending.uuid).state == "requested"
    people.create_person(
        ctx,
        world.admin,
        email="c2@example.org",
        name="C2",
        organisation="O",
        roles=["data_custodian"],
    )
    with pytest.raises(ControlError) as error:
        grants.get_grant(ctx, "c2@example.org", pending.uuid)
    assert error.value.rule == "custodian_only"
    with pytest.raises(ControlError) as error:
        grants.get_grant(ctx, world.researcher, pending.uuid)
    assert error.value.rule == "role"
