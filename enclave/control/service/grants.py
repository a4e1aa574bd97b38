"""Grants: a project's use of a dataset's variables, requested by an admin and approved by the
dataset's custodian (two people), bound to the dataset's permitted purposes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.errors import Conflict, InvalidInput, PermissionDenied, RuleViolation
from enclave.control.models import Dataset, Grant, GrantVariable, Person, Project
from enclave.control.rules import Action, GrantState, Role, Sensitivity
from enclave.control.service._base import (
    authorize,
    clean_text,
    dataset_row,
    grant_row,
    parse_date,
    perform,
    project_row,
    read_as,
    record,
)
from enclave.control.views import GrantView, grant_view


def _check_variables(dataset: Dataset, names: tuple[str, ...]) -> None:
    known = {v.name: v.sensitivity for v in dataset.variables}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(
            f"dataset {dataset.slug} has no variable(s) {', '.join(unknown)}",
            rule="unknown_variable",
        )
    direct = [n for n in names if known[n] == Sensitivity.DIRECT_IDENTIFIER]
    if direct:
        raise RuleViolation(
            f"direct identifiers are never granted to a research project: {', '.join(direct)}",
            rule="direct_identifier",
        )


def check_purpose_binding(project: Project, dataset: Dataset) -> None:
    """Raise RuleViolation (``purpose_binding``) unless the dataset permits the purpose."""
    permitted = [p.purpose for p in dataset.purposes]
    if project.purpose not in permitted:
        raise RuleViolation(
            f"purpose binding: project {project.slug} is for {project.purpose}, but dataset "
            f"{dataset.slug} may only be used for {', '.join(permitted)}",
            rule="purpose_binding",
        )


def _check_custodian(me: Person, dataset: Dataset) -> None:
    if dataset.custodian_id != me.id:
        raise PermissionDenied(
            f"only the custodian of {dataset.slug} ({dataset.custodian.email}) may decide this",
            rule="custodian_only",
        )


def _open_grant_exists(session: Session, project: Project, dataset: Dataset, today: date) -> bool:
    query = select(Grant.id).where(
        Grant.project_id == project.id,
        Grant.dataset_id == dataset.id,
        Grant.state.in_([GrantState.REQUESTED.value, GrantState.APPROVED.value]),
        Grant.expires_on >= today,
    )
    return session.scalar(query.limit(1)) is not None


def request_grant(
    ctx: Context,
    actor: str,
    *,
    project: str,
    dataset: str,
    variables: Iterable[str],
    expires_on: date | str,
) -> GrantView:
    """Ask for ``variables`` of ``dataset`` for ``project`` until ``expires_on`` (state
    ``requested``). Refused for direct identifiers, a purpose outside the dataset's permitted
    ones, dates outside today..project end, or while an open grant of the pair exists."""
    names = tuple(sorted({clean_text(v, "variable", 128) for v in variables}))
    until = parse_date(expires_on, "expires_on")
    if not names:
        raise InvalidInput("a grant needs at least one variable", rule="unknown_variable")

    def work(session: Session, me: Person) -> GrantView:
        authorize(me, Action.REQUEST_GRANT)
        row = project_row(session, project)
        authorize(me, Action.REQUEST_GRANT, row)
        data = dataset_row(session, dataset)
        _check_variables(data, names)
        check_purpose_binding(row, data)
        if not ctx.today() < until <= row.end_date:
            raise InvalidInput(
                f"invalid dates: a grant must expire after today and by the project's end "
                f"({row.end_date.isoformat()})",
                rule="invalid_date",
            )
        if _open_grant_exists(session, row, data, ctx.today()):
            raise Conflict(
                f"project {row.slug} already has an open grant of {data.slug}",
                rule="duplicate_grant",
            )
        grant = Grant(
            uuid=str(uuid.uuid4()),
            project_id=row.id,
            dataset_id=data.id,
            state=GrantState.REQUESTED.value,
            expires_on=until,
            requested_by_id=me.id,
            requested_at=ctx.now(),
            reason="",
            variables=[GrantVariable(name=n) for n in names],
        )
        session.add(grant)
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.REQUEST_GRANT,
            target=grant.uuid,
            project=row.slug,
            dataset=data.slug,
            version=data.version,
            variables=list(names),
            expires_on=until.isoformat(),
        )
        return grant_view(grant)

    return perform(ctx, actor, Action.REQUEST_GRANT, work, target=dataset, project=project)


def _decide(
    ctx: Context, actor: str, grant_uuid: str, action: Action, reason: str = ""
) -> GrantView:
    def work(session: Session, me: Person) -> GrantView:
        authorize(me, action)  # roles first: do not reveal which grants exist
        grant = grant_row(session, grant_uuid)
        authorize(me, action, grant.project)
        if grant.state != GrantState.REQUESTED:
            raise RuleViolation(f"the grant is {grant.state}, not requested", rule="grant_state")
        _check_custodian(me, grant.dataset)
        if action is Action.APPROVE_GRANT:
            if grant.requested_by_id == me.id:
                raise RuleViolation(
                    "two-person rule: the requester cannot approve their own request",
                    rule="two_person",
                )
            if grant.expires_on < ctx.today():
                raise RuleViolation("the request expired before approval", rule="grant_expired")
        grant.state = (
            GrantState.APPROVED if action is Action.APPROVE_GRANT else GrantState.REJECTED
        ).value
        grant.decided_by_id, grant.decided_at, grant.reason = me.id, ctx.now(), reason
        session.flush()
        session.refresh(grant)
        record(
            session,
            ctx,
            me,
            action,
            target=grant.uuid,
            project=grant.project.slug,
            dataset=grant.dataset.slug,
            variables=[v.name for v in grant.variables],
            reason=reason,
        )
        return grant_view(grant)

    return perform(ctx, actor, action, work, target=grant_uuid)


def approve_grant(ctx: Context, actor: str, grant_uuid: str) -> GrantView:
    """The dataset's custodian approves a requested grant (never the person who requested it)."""
    return _decide(ctx, actor, grant_uuid, Action.APPROVE_GRANT)


def reject_grant(ctx: Context, actor: str, grant_uuid: str, reason: str) -> GrantView:
    """The dataset's custodian turns a request down, with a reason."""
    return _decide(ctx, actor, grant_uuid, Action.REJECT_GRANT, clean_text(reason, "reason", 500))


def revoke_grant(ctx: Context, actor: str, grant_uuid: str, reason: str) -> GrantView:
    """End a requested or approved grant at once (an admin, or the dataset's custodian)."""
    why = clean_text(reason, "reason", 500)

    def work(session: Session, me: Person) -> GrantView:
        authorize(me, Action.REVOKE_GRANT)
        grant = grant_row(session, grant_uuid)
        authorize(me, Action.REVOKE_GRANT, grant.project)
        if Role.ADMIN not in me.role_names:
            _check_custodian(me, grant.dataset)
        if grant.state not in (GrantState.REQUESTED, GrantState.APPROVED):
            raise RuleViolation(f"the grant is already {grant.state}", rule="grant_state")
        grant.state, grant.revoked_at, grant.reason = GrantState.REVOKED.value, ctx.now(), why
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.REVOKE_GRANT,
            target=grant.uuid,
            project=grant.project.slug,
            dataset=grant.dataset.slug,
            reason=why,
        )
        return grant_view(grant)

    return perform(ctx, actor, Action.REVOKE_GRANT, work, target=grant_uuid)


def list_grants(
    ctx: Context, actor: str, *, project: str | None = None, dataset: str | None = None
) -> list[GrantView]:
    """Grants, newest first: every grant for admins, a custodian's own datasets' otherwise."""

    def work(session: Session, me: Person) -> list[GrantView]:
        authorize(me, Action.LIST_GRANTS)
        query = select(Grant).order_by(Grant.requested_at.desc(), Grant.id.desc())
        if project is not None:
            query = query.where(Grant.project_id == project_row(session, project).id)
        if dataset is not None:
            query = query.where(Grant.dataset_id == dataset_row(session, dataset).id)
        if Role.ADMIN not in me.role_names:
            query = query.join(Dataset, Grant.dataset_id == Dataset.id).where(
                Dataset.custodian_id == me.id
            )
        return [grant_view(g) for g in session.scalars(query).unique()]

    return read_as(ctx, actor, Action.LIST_GRANTS, work, project=project)


def get_grant(ctx: Context, actor: str, grant_uuid: str) -> GrantView:
    """One grant: for admins, or the custodian of its dataset."""

    def work(session: Session, me: Person) -> GrantView:
        authorize(me, Action.LIST_GRANTS)
        grant = grant_row(session, grant_uuid)
        if Role.ADMIN not in me.role_names:
            _check_custodian(me, grant.dataset)
        return grant_view(grant)

    return read_as(ctx, actor, Action.LIST_GRANTS, work, target=grant_uuid)
