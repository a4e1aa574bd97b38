"""Access decisions (Safe Settings): may this person start a session on this project, with
which data; session stops; output releases. Every decision, allowed or refused, is audited."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import ControlError, PermissionDenied, RuleViolation
from enclave.control.models import Grant, Membership, Person, Project
from enclave.control.rules import Action, GrantState, Role
from enclave.control.service._base import (
    authorize,
    clean_text,
    load_actor,
    perform,
    project_row,
    record,
    without_none,
)
from enclave.control.service.members import check_accredited
from enclave.control.service.standing import person_standing_of, project_standing_of, raise_unless
from enclave.control.views import ProjectView, project_view


@dataclass(frozen=True)
class DataMount:
    """One granted dataset: what the spawner mounts read-only into the session."""

    dataset: str
    version: str
    variables: tuple[str, ...]
    grant: str
    expires_on: date


@dataclass(frozen=True)
class AccessDecision:
    """The answer to "may ``email`` start a session on ``project``?".

    When refused, ``rule`` and ``reason`` say why. When allowed, ``data`` lists the grants in
    force, ``disclosure`` the project's checker overrides and ``valid_until`` the last day the
    decision holds (project end, membership, accreditation or compliance expiry, whichever
    comes first).
    """

    allowed: bool
    email: str
    project: str
    rule: str | None
    reason: str
    username: str | None = None
    data: tuple[DataMount, ...] = ()
    disclosure: dict[str, Any] = field(default_factory=dict)
    valid_until: date | None = None


def _open_researcher_membership(session: Session, person: Person, project: Project) -> Membership:
    query = select(Membership).where(
        Membership.project_id == project.id,
        Membership.person_id == person.id,
        Membership.role == Role.RESEARCHER.value,
        Membership.removed_at.is_(None),
    )
    membership = session.scalars(query).first()
    if membership is None:
        raise PermissionDenied(
            f"{person.email} is not a researcher on {project.slug}", rule="membership"
        )
    return membership


def _mounts(session: Session, project: Project, today: date) -> tuple[DataMount, ...]:
    query = (
        select(Grant)
        .where(
            Grant.project_id == project.id,
            Grant.state == GrantState.APPROVED.value,
            Grant.expires_on >= today,
        )
        .order_by(Grant.id)
    )
    return tuple(
        DataMount(
            g.dataset.slug,
            g.dataset.version,
            tuple(v.name for v in g.variables),
            g.uuid,
            g.expires_on,
        )
        for g in session.scalars(query).unique()
    )


def _evaluate(session: Session, ctx: Context, email: str, slug: str) -> AccessDecision:
    today = ctx.today()
    try:
        person = load_actor(session, email)
        authorize(person, Action.START_SESSION)
        project = project_row(session, slug)
        authorize(person, Action.START_SESSION, project)
        if not project.start_date <= today <= project.end_date:
            raise RuleViolation(
                f"project {slug} runs from {project.start_date.isoformat()} to "
                f"{project.end_date.isoformat()}",
                rule="project_dates",
            )
        membership = _open_researcher_membership(session, person, project)
        if membership.expires_on < today:
            raise RuleViolation(
                f"membership of {person.email} on {slug} expired on "
                f"{membership.expires_on.isoformat()}",
                rule="membership_expired",
            )
        check_accredited(person, today)
        # compliance, organisation, agreement, sanctions, freezes (service/standing.py)
        standings = (
            person_standing_of(session, person, today, ctx.policy),
            project_standing_of(session, project, today, ctx.policy),
        )
        for standing in standings:
            raise_unless(standing)
    except ControlError as error:
        return AccessDecision(False, email, slug, error.rule, error.message)
    accredited_until = max(
        a.expires_on for a in person.accreditations if a.issued_on <= today <= a.expires_on
    )
    compliant_until = [i.expires_on for s in standings for i in s.items if i.expires_on]
    return AccessDecision(
        allowed=True,
        email=person.email,
        project=slug,
        rule=None,
        reason="allowed",
        username=person.username,
        data=_mounts(session, project, today),
        disclosure=json.loads(project.disclosure),
        valid_until=min(
            project.end_date, membership.expires_on, accredited_until, *compliant_until
        ),
    )


def authorize_session(ctx: Context, *, email: str, project: str) -> AccessDecision:
    """Decide whether a session may start, and audit the decision (``start_session``).

    Never raises for a refusal: the hub turns a refused decision into its own error.
    """
    with transaction(ctx.engine) as session:
        decision = _evaluate(session, ctx, email, project)
        _record_decision(session, ctx, email, decision)
    return decision


def authorize_session_for_username(ctx: Context, *, username: str, project: str) -> AccessDecision:
    """``authorize_session`` for the person with this login name: the hub knows people by
    username. An unknown username is refused with rule ``unknown_user``; audited either way."""
    name = username.strip().lower()[:64]
    with transaction(ctx.engine) as session:
        email, decision = _decide_for_username(session, ctx, name, project)
        _record_decision(session, ctx, email or name or "(none)", decision)
    return decision


def session_access_for_username(ctx: Context, *, username: str, project: str) -> AccessDecision:
    """The decision ``authorize_session_for_username`` would take now, read-only and not
    audited: for re-checking sessions that already run. The hub's access enforcer asks this
    for every running server every minute; auditing each answer would bury the session starts
    in the log, so only the stops it makes are audited (``record_session_stop``)."""
    with transaction(ctx.engine, readonly=True) as session:
        return _decide_for_username(session, ctx, username.strip().lower()[:64], project)[1]


def _decide_for_username(
    session: Session, ctx: Context, name: str, project: str
) -> tuple[str | None, AccessDecision]:
    """The email of the account called ``name`` (None if there is none) and the decision."""
    email = session.scalar(select(Person.email).where(Person.username == name)) if name else None
    if email is None:
        return None, AccessDecision(
            False, "", project, "unknown_user", "no account has this username"
        )
    return email, _evaluate(session, ctx, email, project)


def _record_decision(session: Session, ctx: Context, actor: str, decision: AccessDecision) -> None:
    record(
        session,
        ctx,
        actor,
        Action.START_SESSION,
        outcome="allowed" if decision.allowed else "refused",
        target=actor,
        project=decision.project,
        rule=decision.rule,
        reason=decision.reason,
        datasets=[m.dataset for m in decision.data],
        # the usage report ends a session that was never stopped here (service/usage.py)
        **without_none({"valid_until": decision.valid_until and decision.valid_until.isoformat()}),
    )


def record_session_stop(
    ctx: Context, *, email: str, project: str, reason: str = "", cpu_seconds: float | None = None
) -> None:
    """Audit the end of a session (``session_stop``): by the user, at expiry or by a cull;
    with the CPU time its cgroup used, when the spawner could read it (usage data)."""
    with transaction(ctx.engine) as session:
        record(
            session,
            ctx,
            email,
            "session_stop",
            target=email,
            project=project,
            reason=clean_text(reason, "reason", 500, required=False),
            **without_none({"cpu_seconds": cpu_seconds}),
        )


def release_output(
    ctx: Context, actor: str, project: str, *, request_id: str, files: Sequence[str]
) -> ProjectView:
    """Record that reviewed outputs left the enclave (``release_output``) and count them for
    the public register. The releasing checker may not be a researcher on the project, and the
    project must be active (a suspended project releases nothing)."""
    request = clean_text(request_id, "request id", 100)
    names = [clean_text(f, "file name", 500) for f in files]

    def work(session: Session, me: Person) -> ProjectView:
        authorize(me, Action.RELEASE_OUTPUT)
        row = project_row(session, project)
        authorize(me, Action.RELEASE_OUTPUT, row)
        researcher = session.scalar(
            select(Membership.id).where(
                Membership.project_id == row.id,
                Membership.person_id == me.id,
                Membership.role == Role.RESEARCHER.value,
                Membership.removed_at.is_(None),
            )
        )
        if researcher is not None:
            raise RuleViolation(
                f"{me.email} is a researcher on {project} and cannot release its outputs",
                rule="separation_of_duties",
            )
        row.outputs_released += 1
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.RELEASE_OUTPUT,
            target=request,
            project=project,
            files=names,
        )
        return project_view(row)

    return perform(ctx, actor, Action.RELEASE_OUTPUT, work, target=request_id, project=project)
