"""Projects: proposal, the state machine (approve, reject, activate, suspend, close) and the
project's disclosure parameters (Safe Projects)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.audit import canonical_json
from enclave.control.context import Context
from enclave.control.errors import (
    Conflict,
    IntegrationError,
    InvalidInput,
    NotFound,
    RuleViolation,
)
from enclave.control.models import Grant, Membership, Person, Project
from enclave.control.rules import PURPOSES, TRANSITIONS, Action, GrantState, ProjectState, Role
from enclave.control.service import alerts, compliance, session_stop
from enclave.control.service._base import (
    authorize,
    clean_paragraph,
    clean_slug,
    clean_text,
    load_actor,
    parse_date,
    perform,
    person_with_role,
    project_row,
    read_as,
    record,
)
from enclave.control.service.certificates import close_on_disk
from enclave.control.views import ProjectView, project_view
from output_checker.errors import ParameterError
from output_checker.parameters import Parameters


@dataclass(frozen=True)
class ClosureReport:
    """What closing did: grants revoked, memberships ended, archive written, keys destroyed,
    audit events exported, certificate issued."""

    project: ProjectView
    grants_revoked: int
    memberships_ended: int
    archive: str | None
    archive_sha256: str | None
    keys_destroyed: tuple[str, ...]
    audit_export: str | None = None  # the project's audit events, JSON lines
    certificate: str | None = None  # uuid of the signed deletion certificate
    sessions: session_stop.StopOutcome | None = None  # the immediate stop of running sessions


def check_purpose(purpose: str) -> str:
    """The purpose category if it is in the vocabulary; InvalidInput (``unknown_purpose``)."""
    if purpose not in PURPOSES:
        known = ", ".join(PURPOSES)
        raise InvalidInput(
            f"unknown purpose category {purpose!r}; known: {known}", rule="unknown_purpose"
        )
    return purpose


def check_disclosure(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Validate overrides against the checker defaults; return their JSON-ready form.

    Raises RuleViolation (``disclosure_tighten_only``) for an override that loosens a default
    or names an unknown parameter.
    """
    try:
        tightened = Parameters().tightened(**_as_parameter_values(overrides))
    except ParameterError as error:
        raise RuleViolation(
            f"disclosure parameters may only tighten the checker defaults: {error}",
            rule="disclosure_tighten_only",
        ) from error
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"malformed disclosure parameters: {error}") from error
    every = tightened.to_dict()
    return {name: every[name] for name in sorted(overrides)}


def _as_parameter_values(overrides: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(overrides)
    if isinstance(values.get("pq"), list):
        values["pq"] = tuple(values["pq"])
    return values


def project_parameters(project: ProjectView) -> Parameters:
    """The checker parameters in force for ``project``: the defaults, tightened."""
    return Parameters().tightened(**_as_parameter_values(project.disclosure))


def create_project(
    ctx: Context,
    actor: str,
    *,
    slug: str,
    title: str,
    lay_summary: str,
    public_benefit: str,
    organisation: str,
    purpose: str,
    start_date: date | str,
    end_date: date | str,
    legal_basis: str = "",
    ethics_reference: str = "",
    dsa_reference: str = "",
    disclosure: Mapping[str, Any] | None = None,
    ethics_expires_on: date | str | None = None,
    dsa_expires_on: date | str | None = None,
    pi: str | None = None,
) -> ProjectView:
    """Propose a project (state ``proposed``). Raises InvalidInput for bad dates or purpose.
    ``pi``: the principal investigator's email (a researcher, ``role_required`` otherwise).

    The ethics and DSA references given become compliance records (``service.compliance``)
    valid from the start date until ``ethics_expires_on`` / ``dsa_expires_on``, by default
    the end date; sessions and releases stop when one lapses."""
    start, end = parse_date(start_date, "start_date"), parse_date(end_date, "end_date")
    expiries = {
        "ethics": compliance.default_expiry(ethics_expires_on, "ethics_expires_on", end),
        "dsa": compliance.default_expiry(dsa_expires_on, "dsa_expires_on", end),
    }
    fields = {
        "slug": clean_slug(slug, "project slug"),
        "title": clean_text(title, "title", 300),
        "lay_summary": clean_paragraph(lay_summary, "lay summary"),
        "public_benefit": clean_paragraph(public_benefit, "public benefit statement"),
        "organisation": clean_text(organisation, "organisation", 200),
        "purpose": check_purpose(purpose),
        "legal_basis": clean_text(legal_basis, "legal basis", 300, required=False),
        "ethics_reference": clean_text(ethics_reference, "ethics reference", 200, required=False),
        "dsa_reference": clean_text(dsa_reference, "DSA reference", 200, required=False),
    }
    overrides = check_disclosure(disclosure or {})
    for kind, given in (("ethics", ethics_expires_on), ("dsa", dsa_expires_on)):
        if given not in (None, "") and not fields[f"{kind}_reference"]:
            raise InvalidInput(f"{kind}_expires_on is given without a {kind} reference")

    def work(session: Session, me: Person) -> ProjectView:
        authorize(me, Action.CREATE_PROJECT)
        if end < start:
            raise InvalidInput("invalid dates: end_date is before start_date", rule="invalid_date")
        if end < ctx.today():
            raise InvalidInput("invalid dates: end_date is in the past", rule="invalid_date")
        if session.scalar(select(Project.id).where(Project.slug == fields["slug"])):
            raise Conflict(f"a project {fields['slug']!r} already exists", rule="duplicate_slug")
        investigator = person_with_role(session, pi, Role.RESEARCHER) if pi else None
        project = Project(
            **fields,
            pi_id=investigator.id if investigator else None,
            start_date=start,
            end_date=end,
            state=ProjectState.PROPOSED.value,
            disclosure=canonical_json(overrides),
            outputs_released=0,
            created_at=ctx.now(),
            created_by_id=me.id,
        )
        session.add(project)
        session.flush()
        items = _compliance_records(session, ctx, me, project, expiries)
        record(
            session,
            ctx,
            me,
            Action.CREATE_PROJECT,
            target=project.slug,
            project=project.slug,
            title=project.title,
            purpose=project.purpose,
            start_date=start.isoformat(),
            end_date=end.isoformat(),
            disclosure=overrides,
            compliance=items,
            **({"pi": investigator.email} if investigator else {}),
        )
        return project_view(project)

    return perform(ctx, actor, Action.CREATE_PROJECT, work, target=slug, project=slug)


def set_project_pi(ctx: Context, actor: str, project: str, email: str, reason: str) -> ProjectView:
    """Name ``email`` (a researcher) the project's principal investigator, replacing any
    (admins only). Audited with the old and new PI; the change raises a
    ``governance_change`` alert and the project shows ``flagged_for_review`` until an admin
    reviews it. Naming the current PI again is refused (``no_change``)."""
    why = _require_reason(reason)

    def work(session: Session, me: Person) -> ProjectView:
        authorize(me, Action.SET_PROJECT_PI)
        row = project_row(session, project)
        investigator = person_with_role(session, email, Role.RESEARCHER)
        if row.pi_id == investigator.id:
            raise Conflict(
                f"{investigator.email} is already the principal investigator of {project}",
                rule="no_change",
            )
        before = row.pi.email if row.pi is not None else None
        row.pi_id = investigator.id
        session.flush()
        session.refresh(row, ["pi"])
        record(
            session,
            ctx,
            me,
            Action.SET_PROJECT_PI,
            target=project,
            project=project,
            before=before,
            after=investigator.email,
            reason=why,
        )
        return project_view(row, flagged=project in alerts.flagged(session, "project"))

    return perform(ctx, actor, Action.SET_PROJECT_PI, work, target=project, project=project)


def _compliance_records(
    session: Session, ctx: Context, me: Person, project: Project, expiries: Mapping[str, date]
) -> dict[str, dict[str, str]]:
    """The project's references as compliance records: kind -> record uuid and expiry."""
    items: dict[str, dict[str, str]] = {}
    references = {"ethics": project.ethics_reference, "dsa": project.dsa_reference}
    for kind, reference in references.items():
        if reference:
            row, _ = compliance.add_record(
                session,
                ctx,
                me,
                kind=kind,
                reference=reference,
                valid_from=project.start_date,
                expires_on=expiries[kind],
                project=project,
            )
            items[kind] = {"record": row.uuid, "expires_on": row.expires_on.isoformat()}
    return items


def _transition(
    ctx: Context,
    actor: str,
    slug: str,
    action: Action,
    *,
    reason: str = "",
    precondition: Callable[[Project], None] | None = None,
    effects: Callable[[Session, Project], dict[str, Any]] | None = None,
) -> ProjectView:
    """Move a project along TRANSITIONS[action] after the role, state and precondition checks."""

    def work(session: Session, me: Person) -> ProjectView:
        authorize(me, action)
        project = project_row(session, slug)
        authorize(me, action, project)
        if precondition:
            precondition(project)
        before = project.state
        project.state = TRANSITIONS[action].value
        if action is Action.APPROVE_PROJECT:
            project.approved_at = ctx.now()
        detail = effects(session, project) if effects else {}
        session.flush()
        record(
            session,
            ctx,
            me,
            action,
            target=slug,
            project=slug,
            before=before,
            after=project.state,
            reason=reason,
            **detail,
        )
        return project_view(project)

    return perform(ctx, actor, action, work, target=slug, project=slug)


def _require_reason(reason: str) -> str:
    return clean_text(reason, "reason", 500)


def approve_project(ctx: Context, actor: str, slug: str) -> ProjectView:
    """proposed -> approved; needs legal basis, ethics and DSA references, dates not over."""

    def ready(project: Project) -> None:
        missing = [
            label
            for label, value in (
                ("legal basis", project.legal_basis),
                ("ethics approval reference", project.ethics_reference),
                ("data-sharing agreement reference", project.dsa_reference),
                ("public benefit statement", project.public_benefit),
            )
            if not value
        ]
        if missing:
            raise RuleViolation(
                f"approval requires: {', '.join(missing)}", rule="approval_requirements"
            )
        _not_ended(project, ctx.today())

    return _transition(ctx, actor, slug, Action.APPROVE_PROJECT, precondition=ready)


def reject_project(ctx: Context, actor: str, slug: str, reason: str) -> ProjectView:
    """proposed -> rejected (final; never shown in the public register)."""
    return _transition(ctx, actor, slug, Action.REJECT_PROJECT, reason=_require_reason(reason))


def activate_project(ctx: Context, actor: str, slug: str) -> ProjectView:
    """approved or suspended -> active, unless the project's end date has passed."""
    return _transition(
        ctx,
        actor,
        slug,
        Action.ACTIVATE_PROJECT,
        precondition=lambda project: _not_ended(project, ctx.today()),
    )


def _not_ended(project: Project, today: date) -> None:
    if project.end_date < today:
        raise RuleViolation(
            f"the project ended on {project.end_date.isoformat()}", rule="project_dates"
        )


def suspend_project(ctx: Context, actor: str, slug: str, reason: str) -> ProjectView:
    """approved or active -> suspended: sessions, grants in use and releases stop at once."""
    return _transition(ctx, actor, slug, Action.SUSPEND_PROJECT, reason=_require_reason(reason))


def close_project(
    ctx: Context,
    actor: str,
    slug: str,
    reason: str,
    *,
    stopper: session_stop.SessionStopper | None = None,
) -> ClosureReport:
    """Close for good: revoke every grant, end every membership, export the project's audit
    events, archive the workspace (deleting its extract), destroy the pseudonym key and issue
    the signed deletion certificate. The disk steps run last inside the transaction, so a
    failure leaves the project as it was, with no certificate (see
    ``service.certificates.close_on_disk``), and the close can be retried. Running sessions
    are stopped through ``stopper`` after the commit (``service.session_stop``); without one, or
    if the hub cannot be reached, the hub's access enforcer stops them on its next pass,
    since a closed project refuses every session."""
    why = _require_reason(reason)
    outcome: dict[str, Any] = {}

    def effects(session: Session, project: Project) -> dict[str, Any]:
        now = ctx.now()
        project.closed_at = now
        grants = session.scalars(
            select(Grant).where(
                Grant.project_id == project.id,
                Grant.state.in_([GrantState.REQUESTED.value, GrantState.APPROVED.value]),
            )
        ).all()
        for grant in grants:
            grant.state, grant.revoked_at, grant.reason = GrantState.REVOKED.value, now, why
        members = session.scalars(
            select(Membership).where(
                Membership.project_id == project.id, Membership.removed_at.is_(None)
            )
        ).all()
        for membership in members:
            membership.removed_at = now
        session.flush()
        closer = load_actor(session, actor)
        try:
            disk = close_on_disk(ctx, session, project, closer, now, why)
        except Exception as error:  # any hook failure: roll back, keep the project open
            raise IntegrationError(
                f"closing {project.slug} failed on disk, nothing was closed: {error}",
                rule="close_hooks",
            ) from error
        outcome.update(
            grants_revoked=len(grants),
            memberships_ended=len(members),
            archive=str(disk.archive) if disk.archive else None,
            archive_sha256=disk.archive_sha256,
            extract_deleted=disk.extract_deleted,
            keys_destroyed=list(disk.keys_destroyed),
            audit_export=str(disk.audit_export),
            audit_export_sha256=disk.audit_export_sha256,
            certificate=disk.certificate,
            certificate_sha256=disk.certificate_sha256,
        )
        return dict(outcome)

    view = _transition(ctx, actor, slug, Action.CLOSE_PROJECT, reason=why, effects=effects)
    stopped = session_stop.stop_sessions(ctx, stopper, f"project closed: {why}", project=slug)
    return ClosureReport(
        project=view,
        grants_revoked=outcome["grants_revoked"],
        memberships_ended=outcome["memberships_ended"],
        archive=outcome["archive"],
        archive_sha256=outcome["archive_sha256"],
        keys_destroyed=tuple(outcome["keys_destroyed"]),
        audit_export=outcome["audit_export"],
        certificate=outcome["certificate"],
        sessions=stopped,
    )


def set_disclosure(
    ctx: Context, actor: str, slug: str, overrides: Mapping[str, Any]
) -> ProjectView:
    """Replace the project's disclosure overrides; each may only tighten the checker default."""
    checked = check_disclosure(overrides)

    def work(session: Session, me: Person) -> ProjectView:
        authorize(me, Action.SET_DISCLOSURE)
        project = project_row(session, slug)
        authorize(me, Action.SET_DISCLOSURE, project)
        before = json.loads(project.disclosure)
        project.disclosure = canonical_json(checked)
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.SET_DISCLOSURE,
            target=slug,
            project=slug,
            before=before,
            after=checked,
        )
        return project_view(project)

    return perform(ctx, actor, Action.SET_DISCLOSURE, work, target=slug, project=slug)


STAFF = frozenset({Role.ADMIN, Role.DATA_CUSTODIAN, Role.OUTPUT_CHECKER})


def _visible_ids(session: Session, me: Person) -> set[int] | None:
    """None for staff (they see every project); otherwise the ids of one's own projects."""
    if me.role_names & STAFF:
        return None
    query = select(Membership.project_id).where(
        Membership.person_id == me.id, Membership.removed_at.is_(None)
    )
    return set(session.scalars(query))


def get_project(ctx: Context, actor: str, slug: str) -> ProjectView:
    """One project, for staff or the project's members (others get ``unknown_project``)."""

    def work(session: Session, me: Person) -> ProjectView:
        project = project_row(session, slug)
        visible = _visible_ids(session, me)
        if visible is not None and project.id not in visible:
            # The same answer as for a missing project: do not reveal which slugs exist.
            raise NotFound(f"unknown project {slug!r}", rule="unknown_project")
        return project_view(project, flagged=slug in alerts.flagged(session, "project"))

    return read_as(ctx, actor, Action.LIST_PROJECTS, work, target=slug, project=slug)


def list_projects(ctx: Context, actor: str, *, state: str | None = None) -> list[ProjectView]:
    """Projects by slug (optionally in one state): all for staff, one's own for others."""
    if state is not None and state not in set(ProjectState):
        raise InvalidInput(f"unknown project state {state!r}", rule="unknown_state")

    def work(session: Session, me: Person) -> list[ProjectView]:
        query = select(Project).order_by(Project.slug)
        if state is not None:
            query = query.where(Project.state == state)
        visible = _visible_ids(session, me)
        rows = session.scalars(query).all()
        marked = alerts.flagged(session, "project")
        return [
            project_view(p, flagged=p.slug in marked)
            for p in rows
            if visible is None or p.id in visible
        ]

    return read_as(ctx, actor, Action.LIST_PROJECTS, work)
