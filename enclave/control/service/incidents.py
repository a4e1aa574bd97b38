"""Breach handling (SATRE 2.6.04, 1.2.09): suspend or bar a person across every project at once,
the appeal and its decision, and the one-command incident freeze of a project or the whole
enclave.

Each action is one transaction, audited, that writes a ``Sanction`` or ``Freeze`` row; the
standing check (``enclave.control.service.standing``) reads those rows and refuses session
starts, logins and releases (rules ``sanctioned`` and ``frozen``). A sanction also revokes the
person's API tokens in the same transaction.

Running sessions are stopped at once *after* the commit (``service.session_stop``): the row is
the authority, so a hub that cannot be reached never blocks a sanction or a freeze, and the
hub's access enforcer stops whatever the immediate stop missed on its next pass, because the
standing check now refuses those sessions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    RuleViolation,
)
from enclave.control.models import ApiToken, Freeze, Person, Project, Sanction
from enclave.control.rules import Action
from enclave.control.service._base import (
    authorize,
    clean_paragraph,
    clean_text,
    email_of,
    perform,
    person_row,
    project_row,
    read_as,
    record,
)
from enclave.control.service.session_stop import SessionStopper, StopOutcome, stop_sessions

SUSPENDED, BARRED = "suspended", "barred"
UPHELD, OVERTURNED = "upheld", "overturned"
APPEAL_OUTCOMES = (UPHELD, OVERTURNED)
MAX_REASON = 2000


# -- sanctions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SanctionView:
    """A sanction and its appeal; ``in_force`` while it has not been lifted."""

    uuid: str
    email: str
    kind: str
    reason: str
    imposed_at: datetime
    imposed_by: str
    lifted_at: datetime | None
    lifted_by: str | None
    lift_reason: str
    appeal: str
    appealed_at: datetime | None
    appeal_outcome: str
    appeal_decided_at: datetime | None
    appeal_decided_by: str | None

    @property
    def in_force(self) -> bool:
        return self.lifted_at is None


@dataclass(frozen=True)
class SanctionResult:
    """A new sanction, how many API tokens it revoked, and the immediate session stop."""

    sanction: SanctionView
    tokens_revoked: int
    sessions: StopOutcome


def _sanction_view(session: Session, row: Sanction) -> SanctionView:
    return SanctionView(
        uuid=row.uuid,
        email=email_of(session, row.person_id) or "",
        kind=row.kind,
        reason=row.reason,
        imposed_at=row.imposed_at,
        imposed_by=email_of(session, row.imposed_by_id) or "",
        lifted_at=row.lifted_at,
        lifted_by=email_of(session, row.lifted_by_id),
        lift_reason=row.lift_reason,
        appeal=row.appeal,
        appealed_at=row.appealed_at,
        appeal_outcome=row.appeal_outcome,
        appeal_decided_at=row.appeal_decided_at,
        appeal_decided_by=email_of(session, row.appeal_decided_by_id),
    )


def _sanction_row(session: Session, sanction_uuid: str) -> Sanction:
    row = session.scalar(select(Sanction).where(Sanction.uuid == (sanction_uuid or "").strip()))
    if row is None:
        raise NotFound(f"unknown sanction {sanction_uuid!r}", rule="unknown_sanction")
    return row


def _in_force(session: Session, person: Person) -> list[Sanction]:
    query = select(Sanction).where(Sanction.person_id == person.id, Sanction.lifted_at.is_(None))
    return list(session.scalars(query))


def suspend_person(
    ctx: Context,
    actor: str,
    email: str,
    reason: str,
    *,
    stopper: SessionStopper | None = None,
) -> SanctionResult:
    """Suspend ``email`` in every project at once, until lifted (``suspend_person``)."""
    return _sanction(ctx, actor, email, reason, SUSPENDED, stopper)


def bar_person(
    ctx: Context,
    actor: str,
    email: str,
    reason: str,
    *,
    stopper: SessionStopper | None = None,
) -> SanctionResult:
    """Bar ``email`` from every project for good (``bar_person``): only an appeal decided
    ``overturned`` lifts it."""
    return _sanction(ctx, actor, email, reason, BARRED, stopper)


def _sanction(
    ctx: Context,
    actor: str,
    email: str,
    reason: str,
    kind: str,
    stopper: SessionStopper | None,
) -> SanctionResult:
    action = Action.SUSPEND_PERSON if kind == SUSPENDED else Action.BAR_PERSON
    why = clean_paragraph(reason, "reason", MAX_REASON)

    def work(session: Session, me: Person) -> tuple[SanctionView, int, str]:
        authorize(me, action)
        person = person_row(session, email)
        if person.id == me.id:
            raise RuleViolation("you cannot sanction yourself", rule="self_sanction")
        kinds = {s.kind for s in _in_force(session, person)}
        if BARRED in kinds or kind in kinds:
            raise Conflict(
                f"{person.email} is already {BARRED if BARRED in kinds else kind}",
                rule="already_sanctioned",
            )
        now = ctx.now()
        row = Sanction(
            uuid=str(uuid.uuid4()),
            person_id=person.id,
            kind=kind,
            reason=why,
            imposed_at=now,
            imposed_by_id=me.id,
        )
        session.add(row)
        tokens = session.scalars(
            select(ApiToken).where(ApiToken.person_id == person.id, ApiToken.revoked_at.is_(None))
        ).all()
        for token in tokens:
            token.revoked_at = now
        session.flush()
        record(
            session,
            ctx,
            me,
            action,
            target=row.uuid,
            email=person.email,
            reason=why,
            tokens_revoked=len(tokens),
        )
        return _sanction_view(session, row), len(tokens), person.username

    view, revoked, username = perform(ctx, actor, action, work, target=email)
    stop = stop_sessions(ctx, stopper, f"{kind}: {view.uuid}", username=username)
    return SanctionResult(view, revoked, stop)


def lift_sanction(ctx: Context, actor: str, sanction_uuid: str, reason: str) -> SanctionView:
    """Lift a suspension (``lift_sanction``). A bar is lifted only by an appeal decided
    ``overturned`` (rule ``bar_final``)."""
    why = clean_paragraph(reason, "reason", MAX_REASON)

    def work(session: Session, me: Person) -> SanctionView:
        authorize(me, Action.LIFT_SANCTION)
        row = _sanction_row(session, sanction_uuid)
        if row.kind == BARRED:
            raise RuleViolation(
                "a bar is lifted only by an appeal decided overturned", rule="bar_final"
            )
        if row.lifted_at is not None:
            raise Conflict("this sanction was already lifted", rule="not_in_force")
        row.lifted_at, row.lifted_by_id, row.lift_reason = ctx.now(), me.id, why
        session.flush()
        view = _sanction_view(session, row)
        record(
            session, ctx, me, Action.LIFT_SANCTION, target=row.uuid, email=view.email, reason=why
        )
        return view

    return perform(ctx, actor, Action.LIFT_SANCTION, work, target=sanction_uuid)


def lodge_appeal(ctx: Context, actor: str, sanction_uuid: str, statement: str) -> SanctionView:
    """Record the appeal against a sanction in force (``lodge_appeal``): by the sanctioned
    person, or an admin on their behalf. One appeal per sanction."""
    text = clean_paragraph(statement, "statement", 10_000)

    def work(session: Session, me: Person) -> SanctionView:
        row = _sanction_row(session, sanction_uuid)
        if row.person_id != me.id:
            authorize(me, Action.LODGE_APPEAL)
        if row.lifted_at is not None:
            raise RuleViolation("this sanction is no longer in force", rule="not_in_force")
        if row.appealed_at is not None:
            raise Conflict("an appeal against this sanction was already lodged", rule="appealed")
        row.appeal, row.appealed_at = text, ctx.now()
        session.flush()
        view = _sanction_view(session, row)
        # The statement is the person's own words: kept on the sanction, not in the log.
        record(session, ctx, me, Action.LODGE_APPEAL, target=row.uuid, email=view.email)
        return view

    return perform(ctx, actor, Action.LODGE_APPEAL, work, target=sanction_uuid)


def decide_appeal(
    ctx: Context, actor: str, sanction_uuid: str, outcome: str, reason: str
) -> SanctionView:
    """Decide a lodged appeal (``decide_appeal``): ``upheld`` keeps the sanction,
    ``overturned`` lifts it. The admin who imposed the sanction may not decide its appeal
    (rule ``separation_of_duties``)."""
    verdict = (outcome or "").strip().lower()
    if verdict not in APPEAL_OUTCOMES:
        raise InvalidInput(
            f"outcome {outcome!r} must be upheld or overturned", rule="invalid_outcome"
        )
    why = clean_paragraph(reason, "reason", MAX_REASON)

    def work(session: Session, me: Person) -> SanctionView:
        authorize(me, Action.DECIDE_APPEAL)
        row = _sanction_row(session, sanction_uuid)
        if me.id in (row.imposed_by_id, row.person_id):
            raise RuleViolation(
                "an appeal is decided by an admin who neither imposed the sanction nor is "
                "subject to it",
                rule="separation_of_duties",
            )
        if row.appealed_at is None:
            raise RuleViolation("no appeal was lodged against this sanction", rule="no_appeal")
        if row.appeal_outcome:
            raise Conflict(f"the appeal was already {row.appeal_outcome}", rule="decided")
        now = ctx.now()
        row.appeal_outcome, row.appeal_decided_at, row.appeal_decided_by_id = verdict, now, me.id
        if verdict == OVERTURNED and row.lifted_at is None:
            row.lifted_at, row.lifted_by_id = now, me.id
            row.lift_reason = f"appeal overturned: {why}"
        session.flush()
        view = _sanction_view(session, row)
        record(
            session,
            ctx,
            me,
            Action.DECIDE_APPEAL,
            target=row.uuid,
            email=view.email,
            outcome_of_appeal=verdict,
            reason=why,
        )
        return view

    return perform(ctx, actor, Action.DECIDE_APPEAL, work, target=sanction_uuid)


def list_sanctions(
    ctx: Context, actor: str, *, email: str | None = None, in_force_only: bool = False
) -> list[SanctionView]:
    """Sanctions (of ``email``, or everyone's), newest first; admins only."""

    def work(session: Session, me: Person) -> list[SanctionView]:
        authorize(me, Action.LIST_PEOPLE)
        query = select(Sanction).order_by(Sanction.imposed_at.desc(), Sanction.id.desc())
        if email:
            query = query.where(Sanction.person_id == person_row(session, email).id)
        if in_force_only:
            query = query.where(Sanction.lifted_at.is_(None))
        return [_sanction_view(session, row) for row in session.scalars(query)]

    return read_as(ctx, actor, Action.LIST_PEOPLE, work, target=email or "")


# -- freezes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreezeView:
    """A freeze of one project, or (``project`` None) of the whole enclave."""

    uuid: str
    project: str | None
    reason: str
    started_at: datetime
    started_by: str
    ended_at: datetime | None
    ended_by: str | None

    @property
    def in_force(self) -> bool:
        return self.ended_at is None

    @property
    def scope(self) -> str:
        return self.project or "the whole enclave"


@dataclass(frozen=True)
class FreezeResult:
    freeze: FreezeView
    sessions: StopOutcome


def _freeze_view(session: Session, row: Freeze) -> FreezeView:
    slug = None
    if row.project_id is not None:
        slug = session.scalar(select(Project.slug).where(Project.id == row.project_id))
    return FreezeView(
        uuid=row.uuid,
        project=slug,
        reason=row.reason,
        started_at=row.started_at,
        started_by=email_of(session, row.started_by_id) or "",
        ended_at=row.ended_at,
        ended_by=email_of(session, row.ended_by_id),
    )


def freeze(
    ctx: Context,
    actor: str,
    reason: str,
    project: str | None = None,
    *,
    stopper: SessionStopper | None = None,
) -> FreezeResult:
    """The incident freeze (``freeze``): stop every session of ``project`` (None: of the
    whole enclave) at once and hold its releases, until ``unfreeze``."""
    why = clean_paragraph(reason, "reason", MAX_REASON)
    slug = clean_text(project, "project", 64) if project is not None else None

    def work(session: Session, me: Person) -> FreezeView:
        authorize(me, Action.FREEZE)
        project_id = project_row(session, slug).id if slug is not None else None
        open_query = select(Freeze.uuid).where(
            Freeze.ended_at.is_(None),
            Freeze.project_id.is_(None) if project_id is None else Freeze.project_id == project_id,
        )
        if (existing := session.scalar(open_query)) is not None:
            raise Conflict(
                f"{slug or 'the whole enclave'} is already frozen (freeze {existing})",
                rule="already_frozen",
            )
        row = Freeze(
            uuid=str(uuid.uuid4()),
            project_id=project_id,
            reason=why,
            started_at=ctx.now(),
            started_by_id=me.id,
        )
        session.add(row)
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.FREEZE,
            target=row.uuid,
            project=slug,
            scope=slug or "enclave",
            reason=why,
        )
        return _freeze_view(session, row)

    view = perform(ctx, actor, Action.FREEZE, work, target=slug or "enclave", project=slug)
    stop = stop_sessions(ctx, stopper, f"frozen: {view.uuid}", project=slug)
    return FreezeResult(view, stop)


def unfreeze(ctx: Context, actor: str, freeze_uuid: str, reason: str) -> FreezeView:
    """End a freeze (``unfreeze``): sessions may start and releases resume."""
    why = clean_paragraph(reason, "reason", MAX_REASON)

    def work(session: Session, me: Person) -> FreezeView:
        authorize(me, Action.UNFREEZE)
        row = session.scalar(select(Freeze).where(Freeze.uuid == (freeze_uuid or "").strip()))
        if row is None:
            raise NotFound(f"unknown freeze {freeze_uuid!r}", rule="unknown_freeze")
        if row.ended_at is not None:
            raise Conflict("this freeze has already ended", rule="not_in_force")
        row.ended_at, row.ended_by_id = ctx.now(), me.id
        session.flush()
        view = _freeze_view(session, row)
        record(
            session,
            ctx,
            me,
            Action.UNFREEZE,
            target=row.uuid,
            project=view.project,
            scope=view.project or "enclave",
            reason=why,
        )
        return view

    return perform(ctx, actor, Action.UNFREEZE, work, target=freeze_uuid)


def list_freezes(ctx: Context, actor: str, *, in_force_only: bool = True) -> list[FreezeView]:
    """Freezes, newest first (those in force only, by default); admins only."""

    def work(session: Session, me: Person) -> list[FreezeView]:
        authorize(me, Action.FREEZE)
        query = select(Freeze).order_by(Freeze.started_at.desc(), Freeze.id.desc())
        if in_force_only:
            query = query.where(Freeze.ended_at.is_(None))
        return [_freeze_view(session, row) for row in session.scalars(query)]

    return read_as(ctx, actor, Action.FREEZE, work)
