"""Memberships: accreditation, standing roles, dates and separation of duties."""

from __future__ import annotations

from datetime import timedelta

import pytest

from enclave.control.context import Context
from enclave.control.errors import ControlError
from enclave.control.service import members, people
from tests.enclave.control.factories import FakeClock, World, audit_tail, counts, propose


def _add(ctx: Context, world: World, email: str, role: str = "researcher", days: int = 60) -> None:
    members.add_member(
        ctx,
        world.admin,
        project="p1",
        email=email,
        role=role,
        expires_on=ctx.today() + timedelta(days=days),
    )


def test_member_is_added_and_listed(ctx: Context, world: World) -> None:
    propose(ctx, world, "p1")
    _add(ctx, world, world.researcher)
    listed = members.list_members(ctx, world.researcher, "p1")
    assert [(m.email, m.role) for m in listed] == [(world.researcher, "researcher")]
    assert audit_tail(ctx) == [("add_member", "ok", "")]


def test_expired_accreditation_blocks_membership(
    ctx: Context, world: World, clock: FakeClock
) -> None:
    propose(ctx, world, "p1", end=ctx.today() + timedelta(days=900))
    clock.advance(days=401)  # past the world's accreditation expiry
    before = counts(ctx)
    with pytest.raises(ControlError, match=r"accreditation of researcher@example\.org is expired"):
        _add(ctx, world, world.researcher)
    assert counts(ctx) == before
    assert audit_tail(ctx) == [("add_member", "refused", "accreditation")]


def test_missing_accreditation_blocks_membership(ctx: Context, world: World) -> None:
    people.create_person(
        ctx, world.admin, email="new@example.org", name="N", organisation="O", roles=["researcher"]
    )
    propose(ctx, world, "p1")
    with pytest.raises(ControlError, match="is missing") as error:
        _add(ctx, world, "new@example.org")
    assert error.value.rule == "accreditation"


@pytest.mark.parametrize(
    ("email_of", "role", "days", "rule"),
    [
        ("custodian", "researcher", 60, "role_required"),
        ("researcher", "admin", 60, "unknown_role"),
        ("researcher", "researcher", 9999, "invalid_date"),
        ("researcher", "researcher", -1, "invalid_date"),
        ("ghost", "researcher", 60, "unknown_person"),
    ],
)
def test_bad_memberships_are_refused(
    ctx: Context, world: World, email_of: str, role: str, days: int, rule: str
) -> None:
    propose(ctx, world, "p1")
    email = getattr(world, email_of, "ghost@example.org")
    before = counts(ctx)
    with pytest.raises(ControlError) as error:
        _add(ctx, world, email, role, days)
    assert error.value.rule == rule
    assert counts(ctx) == before


def test_duplicate_and_conflicting_roles(ctx: Context, world: World) -> None:
    propose(ctx, world, "p1")
    people.set_roles(ctx, world.admin, world.checker, ["output_checker", "researcher"])
    _add(ctx, world, world.checker, "output_checker")
    with pytest.raises(ControlError) as error:
        _add(ctx, world, world.checker, "output_checker")
    assert error.value.rule == "duplicate_membership"
    with pytest.raises(ControlError) as error:
        _add(ctx, world, world.checker, "researcher")
    assert error.value.rule == "separation_of_duties"


def test_removal_ends_membership_but_keeps_the_record(ctx: Context, world: World) -> None:
    propose(ctx, world, "p1")
    _add(ctx, world, world.researcher)
    members.remove_member(
        ctx, world.admin, project="p1", email=world.researcher, role="researcher", reason="left"
    )
    assert members.list_members(ctx, world.admin, "p1") == []
    kept = members.list_members(ctx, world.admin, "p1", include_removed=True)
    assert kept[0].removed_at is not None
    with pytest.raises(ControlError) as error:
        members.remove_member(
            ctx, world.admin, project="p1", email=world.researcher, role="researcher", reason="x"
        )
    assert error.value.rule == "unknown_membership"
    with pytest.raises(ControlError):  # no longer a member, not staff
        members.list_members(ctx, world.researcher, "p1")
