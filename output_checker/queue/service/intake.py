"""Bundles into requests: what the outbox watcher calls for each finalised bundle.

A bundle becomes one pending request owned by its author (the owner of the outbox directory
it was found in), with its groups described and its files snapshotted and checked by the
server, all in one transaction together with the ledger row that marks the bundle consumed.
A bundle that cannot become a request is consumed too, as refused, with the reason: either
way it is handled exactly once (the ledger's unique key settles races between watchers).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import ControlError
from enclave.control.models import Person, Project
from output_checker.queue import models as m
from output_checker.queue.bundles import Bundle, BundleRef
from output_checker.queue.errors import BundleRejected, Conflict, NotFound, PermissionDenied
from output_checker.queue.filetypes import DEFAULT_LIMITS, Limits
from output_checker.queue.permissions import check_can_create
from output_checker.queue.policies import check_project_writable
from output_checker.queue.recheck import Verdict
from output_checker.queue.service import _files
from output_checker.queue.service._base import (
    actor_facts,
    clean_group,
    clean_text,
    dumps,
    new_uuid,
    parameters_of,
    project_row,
    record,
)
from output_checker.queue.service._convert import summary
from output_checker.queue.views import RequestSummary
from output_checker.queue.workflow import CREATE_EVENT, FileKind, Status

WATCHER = "system:outbox-watcher"


def consumed(ctx: Context, ref: BundleRef) -> bool:
    """Whether the bundle was already handled (accepted or refused)."""
    with transaction(ctx.engine, readonly=True) as session:
        found = session.scalar(
            select(m.BundleRow.id)
            .join(Project, Project.id == m.BundleRow.project_id)
            .where(
                Project.slug == ref.project,
                m.BundleRow.owner == ref.owner,
                m.BundleRow.name == ref.name,
            )
        )
    return found is not None


def _owner(session: Session, username: str) -> Person:
    person = session.scalar(select(Person).where(Person.username == username))
    if person is None:
        raise NotFound(f"no person has the username {username!r}", rule="unknown_owner")
    if not person.active:
        raise PermissionDenied(f"the account {person.email} is suspended", rule="inactive")
    return person


def accept_bundle(ctx: Context, bundle: Bundle, limits: Limits = DEFAULT_LIMITS) -> RequestSummary:
    """Turn a checked bundle into a pending request owned by its author.

    Raises BundleRejected (input), PermissionDenied (the owner may not create requests on the
    project), WorkflowError (project not active) or Conflict (already consumed); the caller
    records a refusal with ``refuse_bundle``.
    """
    ref = bundle.ref
    title = clean_text(bundle.title, "title", 200, required=False)
    try:
        prepared = [
            _files.prepare_file(
                f.name,
                f.data,
                kind=f.kind,
                group=f.group,
                record=f.record,
                recipe=f.recipe,
                exception=f.exception,
                limits=limits,
            )
            for f in bundle.files
        ]
        groups = {
            clean_group(name): (
                clean_text(context, "context", 10_000, required=False),
                clean_text(controls, "controls", 10_000, required=False),
            )
            for name, (context, controls) in bundle.groups.items()
        }
    except ControlError as error:
        raise BundleRejected(f"bundle {ref.owner}/{ref.name} refused: {error}") from None
    with transaction(ctx.engine, readonly=True) as session:
        project = project_row(session, slug=ref.project)
        slug, params = project.slug, parameters_of(project)
    verdicts: dict[str, Verdict | None] = {}
    for file in prepared:
        _files.store(ctx.data_dir, file)
        verdicts[file.name] = (
            _files.verdict(ctx, slug, params, file.data, file.filetype, file.record, file.recipe)
            if file.kind is FileKind.OUTPUT
            else None
        )
    try:
        with transaction(ctx.engine) as session:
            return _create(session, ctx, bundle, title, groups, prepared, verdicts)
    except IntegrityError as error:
        raise Conflict(f"bundle {ref.owner}/{ref.name} was already consumed") from error


def _create(
    session: Session,
    ctx: Context,
    bundle: Bundle,
    title: str,
    groups: dict[str, tuple[str, str]],
    prepared: list[_files.PreparedFile],
    verdicts: dict[str, Verdict | None],
) -> RequestSummary:
    ref = bundle.ref
    project = project_row(session, slug=ref.project)
    author = _owner(session, ref.owner)
    check_can_create(actor_facts(session, author, project, ctx.today()))
    check_project_writable(project.state)
    now = ctx.now()
    request = m.Request(
        uuid=new_uuid(),
        project_id=project.id,
        author_id=author.id,
        title=title,
        status=Status.PENDING.value,
        review_turn=0,
        source="bundle",
        created_at=now,
        status_changed_at=now,
    )
    session.add(request)
    session.flush()
    session.add(
        m.BundleRow(
            project_id=project.id,
            owner=ref.owner,
            name=ref.name,
            outcome="accepted",
            reason="",
            request_id=request.id,
            consumed_at=now,
        )
    )
    group_rows: dict[str, m.Group] = {}
    for name in sorted({f.group for f in prepared} | set(groups)):
        context, controls = groups.get(name, ("", ""))
        group_rows[name] = m.Group(
            request_id=request.id, name=name, context=context, controls=controls
        )
        session.add(group_rows[name])
    session.flush()
    for file in prepared:
        row = m.File(
            uuid=new_uuid(),
            request_id=request.id,
            group_id=group_rows[file.group].id,
            name=file.name,
            kind=file.kind.value,
            filetype=file.filetype,
            sha256=file.sha256,
            size=file.size,
            record=dumps(file.record) if file.record is not None else None,
            recipe=dumps(file.recipe.to_dict()) if file.recipe is not None else None,
            exception=file.exception,
            added_turn=0,
            content_turn=0,
            added_at=now,
        )
        _files.apply_verdict(row, verdicts[file.name], ctx)
        session.add(row)
        session.flush()
        session.add(
            m.FileVersion(
                file_id=row.id, turn=0, sha256=file.sha256, size=file.size, recorded_at=now
            )
        )
    session.flush()
    record(
        session,
        ctx,
        author.email,
        CREATE_EVENT,
        request,
        project.slug,
        title=title,
        via="outbox",
        bundle=f"{ref.owner}/{ref.name}",
        manifest_sha256=bundle.manifest_sha256,
        files={f.name: [f.kind.value, f.sha256] for f in prepared},
    )
    return summary(session, request, project.slug, reviewer=False)


def refuse_bundle(ctx: Context, ref: BundleRef, reason: str) -> bool:
    """Record that a bundle was refused (consumed, never to be retried) and audit it.

    Returns False if the bundle had already been consumed (another watcher was first).
    Raises NotFound if the project is unknown.
    """
    try:
        with transaction(ctx.engine) as session:
            project = project_row(session, slug=ref.project)
            session.add(
                m.BundleRow(
                    project_id=project.id,
                    owner=ref.owner,
                    name=ref.name,
                    outcome="refused",
                    reason=reason[:2000],
                    consumed_at=ctx.now(),
                )
            )
            session.flush()
            _audit_refusal(session, ctx, ref, reason)
    except IntegrityError:
        return False
    return True


def _audit_refusal(session: Session, ctx: Context, ref: BundleRef, reason: str) -> None:
    audit.append(
        session,
        at=ctx.now(),
        actor=WATCHER,
        action="queue_bundle_refused",
        outcome="refused",
        target=f"{ref.owner}/{ref.name}",
        project=ref.project,
        detail={"rule": "bundle", "reason": reason[:2000]},
    )
