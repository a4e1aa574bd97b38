"""Compliance that expires (SATRE 1.4.01-02, 1.6.04), organisation assurance and the user
agreement (1.5.01): recording them, and the report of what expires soon or has lapsed.

A project's items (data-sharing agreement, ethics approval, funding, DPIA) and a person's
training are ``ComplianceRecord`` rows, each valid from one date to another. Recording an
item supersedes the current record of the same kind (for training: of the same course); the
older row is kept with ``superseded_at`` set, so the history stays. What the records mean for
sessions and releases is ``enclave.control.standing``; every action here is audited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.errors import InvalidInput, PermissionDenied, RuleViolation
from enclave.control.models import (
    AgreementAcceptance,
    ComplianceRecord,
    Organisation,
    Person,
    Project,
)
from enclave.control.rules import Action, ProjectState, Role
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
from enclave.control.service.standing import person_facts, project_facts
from enclave.control.standing import (
    PROJECT_KINDS,
    TRAINING,
    ItemState,
    ItemStatus,
    OrganisationFact,
    PersonFacts,
    StandingPolicy,
    organisation_state,
    record_states,
)

# Projects whose compliance still matters: not yet decided ones and finished ones are left out.
RECORDABLE_STATES = frozenset(
    {ProjectState.PROPOSED, ProjectState.APPROVED, ProjectState.ACTIVE, ProjectState.SUSPENDED}
)
REPORTED_STATES = frozenset({ProjectState.APPROVED, ProjectState.ACTIVE, ProjectState.SUSPENDED})
MAX_REPORT_DAYS = 3650


@dataclass(frozen=True)
class ComplianceView:
    """One compliance record: of a project (``project``) or a person (``person``, a uuid)."""

    uuid: str
    kind: str
    reference: str
    detail: str
    valid_from: date
    expires_on: date
    project: str | None
    person: str | None
    superseded: str | None  # the uuid of the record this one replaced


@dataclass(frozen=True)
class OrganisationView:
    name: str
    assurance_scheme: str
    assurance_reference: str
    assured_until: date
    withdrawn: bool


@dataclass(frozen=True)
class ReportLine:
    """One item that expires within the report's window, or has lapsed.

    ``subject_kind`` is project, person or organisation; ``subject`` the project's slug, the
    person's email or the organisation's name; ``item`` the compliance kind, training course
    or ``assurance``."""

    subject_kind: str
    subject: str
    item: str
    status: str
    reference: str
    expires_on: date | None
    required: bool


def _check_period(valid_from: date, expires_on: date) -> None:
    if expires_on < valid_from:
        raise InvalidInput(
            f"invalid dates: expires_on {expires_on.isoformat()} is before valid_from "
            f"{valid_from.isoformat()}",
            rule="invalid_date",
        )


def add_record(
    session: Session,
    ctx: Context,
    me: Person,
    *,
    kind: str,
    reference: str,
    valid_from: date,
    expires_on: date,
    project: Project | None = None,
    person: Person | None = None,
    detail: str = "",
) -> tuple[ComplianceRecord, ComplianceRecord | None]:
    """Add a record inside the caller's transaction, superseding the current one of the same
    kind (and, for training, course). Returns the new record and the superseded one. Checks
    only the dates: callers authorise and audit."""
    _check_period(valid_from, expires_on)
    query = select(ComplianceRecord).where(
        ComplianceRecord.kind == kind, ComplianceRecord.superseded_at.is_(None)
    )
    if project is not None:
        query = query.where(ComplianceRecord.project_id == project.id)
    else:
        assert person is not None
        query = query.where(
            ComplianceRecord.person_id == person.id, ComplianceRecord.reference == reference
        )
    older = session.scalars(query).first()
    now = ctx.now()
    if older is not None:
        older.superseded_at = now
    row = ComplianceRecord(
        uuid=str(uuid.uuid4()),
        project_id=project.id if project else None,
        person_id=person.id if person else None,
        kind=kind,
        reference=reference,
        detail=detail,
        valid_from=valid_from,
        expires_on=expires_on,
        recorded_at=now,
        recorded_by_id=me.id,
    )
    session.add(row)
    session.flush()
    return row, older


def _view(row: ComplianceRecord, older: ComplianceRecord | None, subject: str) -> ComplianceView:
    return ComplianceView(
        uuid=row.uuid,
        kind=row.kind,
        reference=row.reference,
        detail=row.detail,
        valid_from=row.valid_from,
        expires_on=row.expires_on,
        project=subject if row.project_id else None,
        person=subject if row.person_id else None,
        superseded=older.uuid if older else None,
    )


def _audit_record(
    session: Session,
    ctx: Context,
    me: Person,
    row: ComplianceRecord,
    older: ComplianceRecord | None,
    **where: Any,
) -> None:
    record(
        session,
        ctx,
        me,
        Action.RECORD_COMPLIANCE,
        kind=row.kind,
        record=row.uuid,
        reference=row.reference,
        detail=row.detail,
        valid_from=row.valid_from.isoformat(),
        expires_on=row.expires_on.isoformat(),
        superseded=older.uuid if older else None,
        **where,
    )


def record_compliance(
    ctx: Context,
    actor: str,
    *,
    project: str,
    kind: str,
    reference: str,
    valid_from: date | str,
    expires_on: date | str,
) -> ComplianceView:
    """Record (or renew) a project's compliance item: ``kind`` one of dsa, ethics, funding,
    dpia. Admins only; not for a closed or rejected project."""
    if kind not in PROJECT_KINDS:
        raise InvalidInput(
            f"unknown compliance kind {kind!r}; known: {', '.join(PROJECT_KINDS)}",
            rule="unknown_kind",
        )
    text = clean_text(reference, "reference", 200)
    start, end = parse_date(valid_from, "valid_from"), parse_date(expires_on, "expires_on")

    def work(session: Session, me: Person) -> ComplianceView:
        authorize(me, Action.RECORD_COMPLIANCE)
        row = project_row(session, project)
        if row.state not in RECORDABLE_STATES:
            raise PermissionDenied(
                f"record_compliance is not allowed while the project is {row.state}",
                rule="project_state",
            )
        new, older = add_record(
            session,
            ctx,
            me,
            kind=kind,
            reference=text,
            valid_from=start,
            expires_on=end,
            project=row,
        )
        _audit_record(session, ctx, me, new, older, target=row.slug, project=row.slug)
        return _view(new, older, row.slug)

    return perform(ctx, actor, Action.RECORD_COMPLIANCE, work, target=project, project=project)


def record_training(
    ctx: Context,
    actor: str,
    *,
    email: str,
    course: str,
    version: str,
    completed_on: date | str,
    expires_on: date | str,
) -> ComplianceView:
    """Record (or renew) a person's training in ``course`` (its ``version``), valid from
    ``completed_on`` to ``expires_on``. Admins only."""
    name = clean_text(course, "course", 200)
    edition = clean_text(version, "course version", 100)
    start, end = parse_date(completed_on, "completed_on"), parse_date(expires_on, "expires_on")

    def work(session: Session, me: Person) -> ComplianceView:
        authorize(me, Action.RECORD_COMPLIANCE)
        person = person_row(session, email)
        new, older = add_record(
            session,
            ctx,
            me,
            kind=TRAINING,
            reference=name,
            valid_from=start,
            expires_on=end,
            person=person,
            detail=edition,
        )
        _audit_record(session, ctx, me, new, older, target=person.uuid)
        return _view(new, older, person.uuid)

    return perform(ctx, actor, Action.RECORD_COMPLIANCE, work, target=email)


def _organisation_view(row: Organisation) -> OrganisationView:
    return OrganisationView(
        row.name,
        row.assurance_scheme,
        row.assurance_reference,
        row.assured_until,
        row.withdrawn_at is not None,
    )


def record_organisation(
    ctx: Context,
    actor: str,
    *,
    name: str,
    scheme: str,
    reference: str,
    assured_until: date | str,
) -> OrganisationView:
    """Record or renew an organisation's assurance (a renewal also ends a withdrawal). The
    organisation is matched on its people's ``organisation``; the audit log keeps every
    earlier assurance. Admins only."""
    org_name = clean_text(name, "organisation", 200)
    fields = {
        "assurance_scheme": clean_text(scheme, "assurance scheme", 100),
        "assurance_reference": clean_text(reference, "assurance reference", 100),
    }
    until = parse_date(assured_until, "assured_until")

    def work(session: Session, me: Person) -> OrganisationView:
        authorize(me, Action.RECORD_ORGANISATION)
        row = session.scalar(select(Organisation).where(Organisation.name == org_name))
        before = None if row is None else _organisation_view(row)
        if row is None:
            row = Organisation(name=org_name)
            session.add(row)
        row.assurance_scheme = fields["assurance_scheme"]
        row.assurance_reference = fields["assurance_reference"]
        row.assured_until, row.withdrawn_at = until, None
        row.recorded_at, row.recorded_by_id = ctx.now(), me.id
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.RECORD_ORGANISATION,
            target=org_name,
            change="renewed" if before else "recorded",
            scheme=row.assurance_scheme,
            reference=row.assurance_reference,
            assured_until=until.isoformat(),
            before_until=before.assured_until.isoformat() if before else None,
        )
        return _organisation_view(row)

    return perform(ctx, actor, Action.RECORD_ORGANISATION, work, target=org_name)


def withdraw_organisation(ctx: Context, actor: str, *, name: str, reason: str) -> OrganisationView:
    """Withdraw an organisation's assurance at once: its people can neither log in nor start
    sessions until it is recorded again. Admins only."""
    org_name = clean_text(name, "organisation", 200)
    why = clean_text(reason, "reason", 500)

    def work(session: Session, me: Person) -> OrganisationView:
        authorize(me, Action.RECORD_ORGANISATION)
        row = session.scalar(select(Organisation).where(Organisation.name == org_name))
        if row is None:
            raise InvalidInput(
                f"no assurance is recorded for the organisation {org_name!r}",
                rule="unknown_organisation",
            )
        if row.withdrawn_at is None:
            row.withdrawn_at = ctx.now()
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.RECORD_ORGANISATION,
            target=org_name,
            change="withdrawn",
            reason=why,
        )
        return _organisation_view(row)

    return perform(ctx, actor, Action.RECORD_ORGANISATION, work, target=org_name)


def accept_agreement(ctx: Context, actor: str, *, version: str | None = None) -> str:
    """The actor accepts the current user agreement for themselves; returns its version.
    ``version``, when given, must be the current one (so a person accepts what they read).
    Accepting again changes nothing but is audited."""

    def work(session: Session, me: Person) -> str:
        authorize(me, Action.ACCEPT_AGREEMENT)
        current = ctx.policy.user_agreement_version
        if not current:
            raise RuleViolation("no user agreement is in force", rule="user_agreement")
        if version is not None and version.strip() != current:
            raise RuleViolation(
                f"the user agreement in force is version {current}, not {version.strip()!r}",
                rule="user_agreement",
            )
        known = session.scalar(
            select(AgreementAcceptance.id).where(
                AgreementAcceptance.person_id == me.id, AgreementAcceptance.version == current
            )
        )
        if known is None:
            session.add(
                AgreementAcceptance(person_id=me.id, version=current, accepted_at=ctx.now())
            )
            session.flush()
        record(
            session,
            ctx,
            me,
            Action.ACCEPT_AGREEMENT,
            target=me.uuid,
            version=current,
            again=known is not None,
        )
        return current

    return perform(ctx, actor, Action.ACCEPT_AGREEMENT, work, target=actor)


@dataclass(frozen=True)
class AgreementStatus:
    """The user agreement in force (``version``, "" for none) and whether one has accepted it."""

    version: str
    accepted: bool


def agreement_status(ctx: Context, actor: str) -> AgreementStatus:
    """The version in force and whether the actor has accepted it (for the acceptance page)."""

    def work(session: Session, me: Person) -> AgreementStatus:
        current = ctx.policy.user_agreement_version
        found = session.scalar(
            select(AgreementAcceptance.id).where(
                AgreementAcceptance.person_id == me.id, AgreementAcceptance.version == current
            )
        )
        return AgreementStatus(current, bool(current) and found is not None)

    return read_as(ctx, actor, Action.ACCEPT_AGREEMENT, work)


def _lines(
    kind: str, subject: str, states: tuple[ItemState, ...], label: str | None = None
) -> list[ReportLine]:
    return [
        ReportLine(
            kind,
            subject,
            label or s.item,
            s.status.value,
            s.reference,
            s.expires_on,
            s.required,
        )
        for s in states
        if s.status is not ItemStatus.VALID
    ]


def _report(session: Session, ctx: Context, policy: StandingPolicy) -> list[ReportLine]:
    today, days = ctx.today(), policy.warning_days
    lines: list[ReportLine] = []
    states = [s.value for s in REPORTED_STATES]
    for project in session.scalars(
        select(Project).where(Project.state.in_(states)).order_by(Project.slug)
    ):
        facts = project_facts(session, project)
        found = record_states(facts.records, policy.required_project_items, today, days)
        lines += _lines("project", project.slug, found)
    for person in session.scalars(
        select(Person).where(Person.active.is_(True)).order_by(Person.email)
    ):
        facts_p = person_facts(session, person)
        needed = policy.required_training if Role.RESEARCHER in person.role_names else ()
        lines += _lines(
            "person", person.email, record_states(facts_p.training, needed, today, days)
        )
        org = organisation_state(facts_p, today, policy)
        if org is not None and org.status is ItemStatus.MISSING:
            lines += _lines("person", person.email, (org,), "organisation assurance")
    for org_row in session.scalars(select(Organisation).order_by(Organisation.name)):
        found_org = organisation_state(
            _org_facts(org_row), today, StandingPolicy(warning_days=days)
        )
        assert found_org is not None
        lines += _lines("organisation", org_row.name, (found_org,), "assurance")
    return lines


def _org_facts(row: Organisation) -> PersonFacts:
    return PersonFacts(
        row.name, OrganisationFact(row.name, row.assured_until, row.withdrawn_at is not None)
    )


def compliance_report(
    ctx: Context, actor: str, *, within_days: int | None = None
) -> list[ReportLine]:
    """Every item that expires within ``within_days`` (default: the policy's warning window)
    or has lapsed (expired, withdrawn, or missing though required): projects that are
    approved, active or suspended; active people (training, and missing organisation
    assurance); every recorded organisation. Admins only; the warnings before the lapse."""
    days = ctx.policy.warning_days if within_days is None else within_days
    if not 0 <= days <= MAX_REPORT_DAYS:
        raise InvalidInput(
            f"within_days must be between 0 and {MAX_REPORT_DAYS}; got {days}", rule="invalid_days"
        )
    policy = replace(ctx.policy, warning_days=days)

    def work(session: Session, me: Person) -> list[ReportLine]:
        authorize(me, Action.COMPLIANCE_REPORT)
        return _report(session, ctx, policy)

    return read_as(ctx, actor, Action.COMPLIANCE_REPORT, work)


def default_expiry(given: date | str | None, field: str, end: date) -> date:
    """An explicit expiry date, or the project's end date."""
    if given is None or given == "":
        return end
    return parse_date(given, field)
