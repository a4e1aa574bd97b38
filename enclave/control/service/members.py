"""Project memberships: who works on which project, in which role, until when."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.errors import Conflict, InvalidInput, NotFound, RuleViolation
from enclave.control.models import Membership, Person
from enclave.control.rules import MEMBERSHIP_ROLES, Action, Role
from enclave.control.service._base import (
    authorize,
    clean_text,
    parse_date,
    perform,
    person_row,
    project_row,
    read_as,
    record,
)
from enclave.control.views import MembershipView, membership_view

# A person may not hold both roles of a pair in one project: checkers never review their own
# project's outputs.
INCOMPATIBLE = {Role.RESEARCHER: Role.OUTPUT_CHECKER, Role.OUTPUT_CHECKER: Role.RESEARCHER}


def check_accredited(person: Person, day: date) -> None:
    """Raise RuleViolation (``accreditation``) unless an accreditation covers ``day``."""
    if not any(a.issued_on <= day <= a.expires_on for a in person.accreditations):
        latest = max((a.expires_on for a in person.accreditations), default=None)
        state = f"expired on {latest.isoformat()}" if latest else "missing"
        raise RuleViolation(
            f"accreditation of {person.email} is {state}: renew it first", rule="accreditation"
        )


def _membership_role(role: str) -> Role:
    if role not in MEMBERSHIP_ROLES:
        known = ", ".join(sorted(MEMBERSHIP_ROLES))
        raise InvalidInput(f"unknown membership role {role!r}; known: {known}", rule="unknown_role")
    return Role(role)


def _open_memberships(session: Session, project_id: int, person_id: int) -> list[Membership]:
    query = select(Membership).where(
        Membership.project_id == project_id,
        Membership.person_id == person_id,
        Membership.removed_at.is_(None),
    )
    return list(session.scalars(query))


def add_member(
    ctx: Context,
    actor: str,
    *,
    project: str,
    email: str,
    role: str,
    expires_on: date | str,
) -> MembershipView:
    """Add a person to a project in a role until ``expires_on`` (at most the project's end).

    Refused when the person lacks the standing role (``role_required``), their accreditation
    does not cover today (``accreditation``), they already hold the role (``duplicate``) or the
    opposite one (``separation_of_duties``).
    """
    member_role = _membership_role(role)
    until = parse_date(expires_on, "expires_on")

    def work(session: Session, me: Person) -> MembershipView:
        authorize(me, Action.ADD_MEMBER)
        row = project_row(session, project)
        authorize(me, Action.ADD_MEMBER, row)
        person = person_row(session, email)
        if member_role not in person.role_names:
            raise RuleViolation(
                f"{person.email} does not hold the role {member_role.value}", rule="role_required"
            )
        check_accredited(person, ctx.today())
        if not ctx.today() <= until <= row.end_date:
            raise InvalidInput(
                f"invalid dates: expires_on must be between today and the project's end "
                f"({row.end_date.isoformat()})",
                rule="invalid_date",
            )
        held = {m.role for m in _open_memberships(session, row.id, person.id)}
        if member_role in held:
            raise Conflict(
                f"{person.email} is already {member_role.value} on {project}",
                rule="duplicate_membership",
            )
        if member_role in INCOMPATIBLE and INCOMPATIBLE[member_role] in held:
            raise RuleViolation(
                f"{person.email} is {INCOMPATIBLE[member_role].value} on {project} and cannot "
                f"also be {member_role.value}",
                rule="separation_of_duties",
            )
        membership = Membership(
            project_id=row.id,
            person_id=person.id,
            role=member_role.value,
            expires_on=until,
            added_at=ctx.now(),
            added_by_id=me.id,
        )
        session.add(membership)
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.ADD_MEMBER,
            target=person.uuid,
            project=project,
            email=person.email,
            role=member_role.value,
            expires_on=until.isoformat(),
        )
        return membership_view(membership)

    return perform(ctx, actor, Action.ADD_MEMBER, work, target=email, project=project)


def remove_member(
    ctx: Context, actor: str, *, project: str, email: str, role: str, reason: str
) -> MembershipView:
    """End a membership at once (kept on record with ``removed_at``)."""
    member_role = _membership_role(role)
    why = clean_text(reason, "reason", 500)

    def work(session: Session, me: Person) -> MembershipView:
        authorize(me, Action.REMOVE_MEMBER)
        row = project_row(session, project)
        authorize(me, Action.REMOVE_MEMBER, row)
        person = person_row(session, email)
        found = [m for m in _open_memberships(session, row.id, person.id) if m.role == member_role]
        if not found:
            raise NotFound(
                f"{person.email} is not {member_role.value} on {project}", rule="unknown_membership"
            )
        found[0].removed_at = ctx.now()
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.REMOVE_MEMBER,
            target=person.uuid,
            project=project,
            role=member_role.value,
            reason=why,
        )
        return membership_view(found[0])

    return perform(ctx, actor, Action.REMOVE_MEMBER, work, target=email, project=project)


def list_members(
    ctx: Context, actor: str, project: str, *, include_removed: bool = False
) -> list[MembershipView]:
    """A project's memberships, for staff (LIST_PROJECTS) or the project's own members."""

    def work(session: Session, me: Person) -> list[MembershipView]:
        row = project_row(session, project)
        rows = session.scalars(
            select(Membership).where(Membership.project_id == row.id).order_by(Membership.id)
        ).all()
        is_member = any(m.person_id == me.id and m.removed_at is None for m in rows)
        if not is_member:
            authorize(me, Action.LIST_PROJECTS)
        return [membership_view(m) for m in rows if include_removed or m.removed_at is None]

    return read_as(ctx, actor, Action.LIST_PROJECTS, work, target=project, project=project)
