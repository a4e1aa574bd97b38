"""What every service function shares: the transaction-per-action runner that audits refusals,
row lookups that raise NotFound, authorisation, and input cleaning.

Private to ``enclave.control.service``; faces call the public functions of its modules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import (
    Conflict,
    ControlError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RuleViolation,
)
from enclave.control.models import Dataset, Grant, Person, Project
from enclave.control.rules import Action, Role, check_role, check_state
from enclave.control.service.standing import check_not_sanctioned

T = TypeVar("T")

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def perform(
    ctx: Context,
    actor: str,
    action: Action,
    work: Callable[[Session, Person], T],
    *,
    target: str = "",
    project: str | None = None,
) -> T:
    """Run ``work(session, actor_row)`` in one write transaction and return its result.

    ``work`` checks the rules, changes rows and appends its own audit event. If anything raises
    ControlError, the transaction is rolled back (nothing changed) and the refusal is audited in
    a transaction of its own, then the error is re-raised.
    """
    try:
        try:
            with transaction(ctx.engine) as session:
                appeal = action is Action.LODGE_APPEAL  # the one thing a sanctioned person may do
                return work(session, load_actor(session, actor, appeal=appeal))
        except IntegrityError as error:  # a constraint caught what the checks missed
            raise Conflict("that record already exists", detail=str(error.orig)) from error
    except ControlError as error:
        audit_refusal(ctx, actor, action, error, target=target, project=project)
        raise


def read_as(
    ctx: Context,
    actor: str,
    action: Action,
    work: Callable[[Session, Person], T],
    *,
    target: str = "",
    project: str | None = None,
) -> T:
    """Run ``work(session, actor_row)`` read-only; a refusal is audited as in ``perform``."""
    try:
        with transaction(ctx.engine, readonly=True) as session:
            return work(session, load_actor(session, actor))
    except ControlError as error:
        audit_refusal(ctx, actor, action, error, target=target, project=project)
        raise


def read(ctx: Context, work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` in a read-only transaction (reads are not audited)."""
    with transaction(ctx.engine, readonly=True) as session:
        return work(session)


def audit_refusal(
    ctx: Context,
    actor: str,
    action: str,
    error: ControlError,
    *,
    target: str = "",
    project: str | None = None,
) -> None:
    """Record a refused action, with the rule that refused it, in its own transaction."""
    with transaction(ctx.engine) as session:
        audit.append(
            session,
            at=ctx.now(),
            actor=actor,
            action=str(action),
            outcome="refused",
            target=target,
            project=project,
            detail={"rule": error.rule, "reason": error.message},
        )


def record(
    session: Session,
    ctx: Context,
    actor: Person | str,
    action: str,
    *,
    target: str = "",
    project: str | None = None,
    outcome: str = "ok",
    **detail: Any,
) -> None:
    """Append the audit event of a successful action inside its transaction."""
    audit.append(
        session,
        at=ctx.now(),
        actor=actor.email if isinstance(actor, Person) else actor,
        action=action,
        outcome=outcome,
        target=target,
        project=project,
        detail=detail,
    )


def load_actor(session: Session, email: str, *, appeal: bool = False) -> Person:
    """The acting person; NotFound (``unknown_actor``) or PermissionDenied (``inactive``, or
    ``sanctioned`` unless the action is the person's ``appeal`` against it)."""
    person = session.scalar(select(Person).where(Person.email == email.strip().lower()))
    if person is None:
        raise NotFound(f"no person with email {email!r} may act here", rule="unknown_actor")
    if not person.active:
        raise PermissionDenied(f"the account {person.email} is suspended", rule="inactive")
    if not appeal:
        check_not_sanctioned(session, person)
    return person


def authorize(actor: Person, action: Action, project: Project | None = None) -> None:
    """Raise PermissionDenied unless the actor's roles (and the project's state) allow it."""
    check_role(actor.role_names, action)
    if project is not None:
        check_state(action, project.state)


def person_row(session: Session, email: str) -> Person:
    """The person with ``email``; NotFound (``unknown_person``) otherwise."""
    person = session.scalar(select(Person).where(Person.email == email.strip().lower()))
    if person is None:
        raise NotFound(f"unknown person: no one has the email {email!r}", rule="unknown_person")
    return person


def person_with_role(session: Session, email: str, role: Role) -> Person:
    """The person with ``email``, who must hold ``role``; RuleViolation (``role_required``)."""
    person = person_row(session, email)
    if role not in person.role_names:
        raise RuleViolation(
            f"{person.email} does not hold the role {role.value}", rule="role_required"
        )
    return person


def email_of(session: Session, person_id: int | None) -> str | None:
    """The email of the person with internal id ``person_id`` (None for None or no one)."""
    if person_id is None:
        return None
    return session.scalar(select(Person.email).where(Person.id == person_id))


def project_row(session: Session, slug: str) -> Project:
    """The project with ``slug``; NotFound (``unknown_project``) otherwise."""
    project = session.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        raise NotFound(f"unknown project {slug!r}", rule="unknown_project")
    return project


def dataset_row(session: Session, slug: str) -> Dataset:
    """The dataset with ``slug``; NotFound (``unknown_dataset``) otherwise."""
    dataset = session.scalar(select(Dataset).where(Dataset.slug == slug))
    if dataset is None:
        raise NotFound(f"unknown dataset {slug!r}", rule="unknown_dataset")
    return dataset


def grant_row(session: Session, grant_uuid: str) -> Grant:
    """The grant with ``grant_uuid``; NotFound (``unknown_grant``) otherwise."""
    grant = session.scalar(select(Grant).where(Grant.uuid == grant_uuid))
    if grant is None:
        raise NotFound(f"unknown grant {grant_uuid!r}", rule="unknown_grant")
    return grant


def clean_text(value: str, field: str, max_len: int, *, required: bool = True) -> str:
    """Stripped single-line text; InvalidInput if empty (when required), too long or multi-line."""
    text = (value or "").strip()
    if required and not text:
        raise InvalidInput(f"{field} is required")
    if len(text) > max_len:
        raise InvalidInput(f"{field} is longer than {max_len} characters")
    if CONTROL_CHARS.search(text):
        raise InvalidInput(f"{field} must be a single line of text")
    return text


def clean_paragraph(value: str, field: str, max_len: int = 10_000, *, required: bool = True) -> str:
    """Stripped free text that may span lines."""
    text = (value or "").strip()
    if required and not text:
        raise InvalidInput(f"{field} is required")
    if len(text) > max_len:
        raise InvalidInput(f"{field} is longer than {max_len} characters")
    return text


def clean_email(value: str) -> str:
    """Lower-cased address; InvalidInput (``invalid_email``) if it does not look like one."""
    email = (value or "").strip().lower()
    if len(email) > 320 or not EMAIL.match(email):
        raise InvalidInput(f"invalid email address {value!r}", rule="invalid_email")
    return email


def clean_slug(value: str, field: str) -> str:
    """A URL-safe identifier: lower-case letters, digits and inner hyphens, at most 64."""
    slug = (value or "").strip()
    if not SLUG.match(slug):
        raise InvalidInput(
            f"{field} {value!r} must be 1-64 lower-case letters, digits or inner hyphens",
            rule="invalid_slug",
        )
    return slug


def parse_date(value: date | str, field: str) -> date:
    """A date, or an ISO ``YYYY-MM-DD`` string; InvalidInput (``invalid_date``) otherwise."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(
            f"{field} {value!r} is not a date (YYYY-MM-DD)", rule="invalid_date"
        ) from None


def without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping less its None values (for audit details)."""
    return {key: value for key, value in values.items() if value is not None}
