"""The author's intents: create a request, add, update, move and withdraw files, describe
groups, ask for exceptions, submit, resubmit and withdraw.

Each function loads the request, checks the role rule (``permissions``), the state rule
(``policies``) and the transition (``workflow``), then writes the change and its audit event
in one transaction. Slow work (snapshotting, re-running the checks) happens before that
transaction, and the transaction re-checks that what it records is what was checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, BinaryIO

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.models import Person
from output_checker.parameters import Parameters
from output_checker.queue import models as m
from output_checker.queue.errors import Conflict, InvalidInput, WorkflowError
from output_checker.queue.filetypes import DEFAULT_LIMITS, Limits
from output_checker.queue.permissions import check_can_author, check_can_create
from output_checker.queue.policies import (
    check_project_writable,
)
from output_checker.queue.recheck import Verdict
from output_checker.queue.recipes import parse_recipe
from output_checker.queue.service import _files
from output_checker.queue.service._base import (
    Editing,
    actor_facts,
    clean_group,
    clean_text,
    dumps,
    editing_request,
    load_file,
    load_request,
    new_uuid,
    parameters_of,
    perform,
    project_row,
    read,
    record,
)
from output_checker.queue.service._convert import file_view, summary
from output_checker.queue.storage import BlobStore
from output_checker.queue.views import FileView, GroupView, RequestSummary
from output_checker.queue.workflow import (
    CREATE_EVENT,
    FileKind,
    Status,
)

MAX_TITLE = 200
MAX_GROUP_TEXT = 10_000
MAX_COMMENT = 20_000


def _group(session: Session, request: m.Request, name: str) -> m.Group:
    row = session.scalar(
        select(m.Group).where(m.Group.request_id == request.id, m.Group.name == name)
    )
    if row is None:
        row = m.Group(request_id=request.id, name=name, context="", controls="")
        session.add(row)
        session.flush()
    return row


def _project_of(ctx: Context, actor: str, request_id: str, event: str) -> tuple[str, Parameters]:
    """The request's project and parameters, for the author only: nobody else may make the
    server snapshot and check files (the write transaction checks everything again)."""

    def work(session: Session, me: Person) -> tuple[str, Parameters]:
        request = load_request(session, request_id)
        project = project_row(session, id=request.project_id)
        check_can_author(actor_facts(session, me, project, ctx.today(), request.author_id))
        return project.slug, parameters_of(project)

    return read(ctx, actor, work, event=event, target=request_id)


def create_request(ctx: Context, actor: str, *, project: str, title: str = "") -> RequestSummary:
    """Open a pending request on ``project`` for the actor, who must be a researcher member
    of the project, accredited today; the project must be active."""
    name = clean_text(title, "title", MAX_TITLE, required=False)

    def work(session: Session, me: Person) -> RequestSummary:
        row = project_row(session, slug=project)
        check_can_create(actor_facts(session, me, row, ctx.today()))
        check_project_writable(row.state)
        now = ctx.now()
        request = m.Request(
            uuid=new_uuid(),
            project_id=row.id,
            author_id=me.id,
            title=name,
            status=Status.PENDING.value,
            review_turn=0,
            source="upload",
            created_at=now,
            status_changed_at=now,
        )
        session.add(request)
        session.flush()
        record(session, ctx, me.email, CREATE_EVENT, request, row.slug, title=name)
        return summary(session, request, row.slug, reviewer=False)

    return perform(ctx, actor, CREATE_EVENT, work, target=project)


def _released_before(session: Session, project_id: int, sha256: str) -> bool:
    """Whether these exact bytes already left the enclave from this project."""
    found = session.scalar(
        select(m.ReleaseItem.id)
        .join(m.Release, m.Release.id == m.ReleaseItem.release_id)
        .join(m.Request, m.Request.id == m.Release.request_id)
        .where(
            m.Request.project_id == project_id,
            m.ReleaseItem.sha256 == sha256,
            m.ReleaseItem.uploaded_at.is_not(None),
        )
        .limit(1)
    )
    return found is not None


def _version(session: Session, ctx: Context, row: m.File, turn: int) -> None:
    session.add(
        m.FileVersion(
            file_id=row.id, turn=turn, sha256=row.sha256, size=row.size, recorded_at=ctx.now()
        )
    )


def _verdict_for(
    ctx: Context, project: str, params: Parameters, prepared: _files.PreparedFile
) -> Verdict | None:
    if prepared.kind is not FileKind.OUTPUT:
        return None
    return _files.verdict(
        ctx,
        project,
        params,
        prepared.data,
        prepared.filetype,
        prepared.record,
        prepared.recipe,
    )


def add_file(
    ctx: Context,
    actor: str,
    request_id: str,
    *,
    name: str,
    data: bytes | BinaryIO,
    kind: str = "output",
    group: str = "default",
    record: Mapping[str, Any] | None = None,
    recipe: Mapping[str, Any] | None = None,
    exception: str = "",
    limits: Limits = DEFAULT_LIMITS,
) -> FileView:
    """Add a file (snapshotted, checked by the server) to a pending or returned request.

    ``record`` is the checker's manifest record for an output, whose ``output.sha256`` must
    be the file's; ``recipe`` lets the server re-derive a CSV table from the project's data.
    A file withdrawn earlier may be added again under its name; bytes already released from
    the project may only come back as supporting files. Raises InvalidInput for a bad file,
    record or recipe, Conflict if the name is taken, PermissionDenied / WorkflowError when
    the rules refuse.
    """
    prepared = _files.prepare_file(
        name,
        data,
        kind=kind,
        group=group,
        record=record,
        recipe=recipe,
        exception=exception,
        limits=limits,
    )
    project, params = _project_of(ctx, actor, request_id, "queue_file_add")
    _files.store(ctx.data_dir, prepared)
    verdict = _verdict_for(ctx, project, params, prepared)

    def work(session: Session, me: Person) -> FileView:
        editing = editing_request(session, ctx, me, request_id)
        request = editing.request
        if prepared.kind is FileKind.OUTPUT and _released_before(
            session, request.project_id, prepared.sha256
        ):
            raise InvalidInput(
                f"{prepared.name} was already released: add it again only as supporting",
                rule="already_released",
            )
        target = _group(session, request, prepared.group)
        row = session.scalar(
            select(m.File).where(m.File.request_id == request.id, m.File.name == prepared.name)
        )
        if row is not None and row.withdrawn_turn is None:
            raise Conflict(
                f"{prepared.name} is already in this request: update it instead",
                rule="duplicate_file",
            )
        if row is None:
            row = m.File(
                uuid=new_uuid(), request_id=request.id, name=prepared.name, added_at=ctx.now()
            )
            row.added_turn = request.review_turn
            session.add(row)
        else:  # re-added after a withdrawal: a new file for the reviewers
            session.execute(delete(m.VoteRow).where(m.VoteRow.file_id == row.id))
            row.withdrawn_turn = None
        row.group_id, row.kind, row.filetype = target.id, prepared.kind.value, prepared.filetype
        row.sha256, row.size = prepared.sha256, prepared.size
        row.record = dumps(prepared.record) if prepared.record is not None else None
        row.recipe = dumps(prepared.recipe.to_dict()) if prepared.recipe is not None else None
        row.exception = prepared.exception
        row.content_turn = request.review_turn
        _files.apply_verdict(row, verdict, ctx)
        session.flush()
        _version(session, ctx, row, request.review_turn)
        _audit_file(session, ctx, me, editing, "queue_file_add", row, target.name)
        return file_view(session, row, target.name)

    return perform(ctx, actor, "queue_file_add", work, target=request_id)


def _audit_file(
    session: Session,
    ctx: Context,
    me: Person,
    editing: Editing,
    event: str,
    row: m.File,
    group: str,
    **detail: Any,
) -> None:
    record(
        session,
        ctx,
        me.email,
        event,
        editing.request,
        editing.project,
        file=row.name,
        file_id=row.uuid,
        kind=row.kind,
        group=group,
        sha256=row.sha256,
        automated_status=row.automated_status,
        recheck=row.recheck,
        **detail,
    )


def update_file(
    ctx: Context,
    actor: str,
    request_id: str,
    file_id: str,
    *,
    data: bytes | BinaryIO,
    record: Mapping[str, Any] | None = None,
    recipe: Mapping[str, Any] | None = None,
    exception: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> FileView:
    """Replace a file's content with a new snapshot (pending or returned requests). Every
    vote on the file is reset: it needs two fresh approvals."""

    def current(session: Session, me: Person) -> tuple[str, str, str, str]:
        request = load_request(session, request_id)
        project = project_row(session, id=request.project_id)
        check_can_author(actor_facts(session, me, project, ctx.today(), request.author_id))
        row = load_file(session, request, file_id)
        group = session.scalar(select(m.Group.name).where(m.Group.id == row.group_id))
        return row.name, row.kind, str(group), row.exception

    name, kind, group, old_exception = read(
        ctx, actor, current, event="queue_file_update", target=request_id
    )
    prepared = _files.prepare_file(
        name,
        data,
        kind=kind,
        group=group,
        record=record,
        recipe=recipe,
        exception=old_exception if exception is None else exception,
        limits=limits,
    )
    project, params = _project_of(ctx, actor, request_id, "queue_file_update")
    _files.store(ctx.data_dir, prepared)
    verdict = _verdict_for(ctx, project, params, prepared)

    def work(session: Session, me: Person) -> FileView:
        editing = editing_request(session, ctx, me, request_id)
        row = load_file(session, editing.request, file_id)
        if row.withdrawn_turn is not None:
            raise WorkflowError(f"{row.name} is withdrawn: add it again", rule="withdrawn")
        session.execute(delete(m.VoteRow).where(m.VoteRow.file_id == row.id))
        row.sha256, row.size = prepared.sha256, prepared.size
        row.record = dumps(prepared.record) if prepared.record is not None else None
        row.recipe = dumps(prepared.recipe.to_dict()) if prepared.recipe is not None else None
        row.exception = prepared.exception
        row.content_turn = editing.request.review_turn
        _files.apply_verdict(row, verdict, ctx)
        session.flush()
        _version(session, ctx, row, editing.request.review_turn)
        _audit_file(session, ctx, me, editing, "queue_file_update", row, group)
        return file_view(session, row, group)

    return perform(ctx, actor, "queue_file_update", work, target=request_id)


def move_file(
    ctx: Context,
    actor: str,
    request_id: str,
    file_id: str,
    *,
    group: str | None = None,
    kind: str | None = None,
) -> FileView:
    """Move a file to another group and/or switch it between output and supporting. Its
    votes are reset: the context in which they were given has changed."""
    new_group = clean_group(group) if group is not None else None
    new_kind = _files._kind(kind) if kind is not None else None

    def work(session: Session, me: Person) -> FileView:
        editing = editing_request(session, ctx, me, request_id)
        row = load_file(session, editing.request, file_id)
        if row.withdrawn_turn is not None:
            raise WorkflowError(f"{row.name} is withdrawn: add it again", rule="withdrawn")
        if new_kind is FileKind.SUPPORTING and row.record is not None:
            raise InvalidInput(
                f"{row.name} carries a checker record: it is an output", rule="bad_record"
            )
        target = session.get_one(m.Group, row.group_id)
        if new_group is not None:
            target = _group(session, editing.request, new_group)
            row.group_id = target.id
        if new_kind is not None and new_kind.value != row.kind:
            row.kind = new_kind.value
            if new_kind is FileKind.OUTPUT:
                content = BlobStore.for_data_dir(ctx.data_dir).read(row.sha256)
                recipe = parse_recipe(json.loads(row.recipe)) if row.recipe else None
                params = parameters_of(project_row(session, id=editing.request.project_id))
                stored = json.loads(row.record) if row.record else None
                _files.apply_verdict(
                    row,
                    _files.verdict(
                        ctx, editing.project, params, content, row.filetype, stored, recipe
                    ),
                    ctx,
                )
            else:
                _files.apply_verdict(row, None, ctx)
        session.execute(delete(m.VoteRow).where(m.VoteRow.file_id == row.id))
        row.content_turn = editing.request.review_turn
        session.flush()
        _audit_file(session, ctx, me, editing, "queue_file_move", row, target.name)
        return file_view(session, row, target.name)

    return perform(ctx, actor, "queue_file_move", work, target=request_id)


def withdraw_file(ctx: Context, actor: str, request_id: str, file_id: str) -> None:
    """Withdraw a file: deleted from a pending request; in a returned request it stays,
    marked withdrawn in this turn, so checkers see the change. It may be added again."""

    def work(session: Session, me: Person) -> None:
        editing = editing_request(session, ctx, me, request_id)
        row = load_file(session, editing.request, file_id)
        if row.withdrawn_turn is not None:
            raise WorkflowError(f"{row.name} is already withdrawn", rule="withdrawn")
        group = str(session.scalar(select(m.Group.name).where(m.Group.id == row.group_id)))
        _audit_file(session, ctx, me, editing, "queue_file_withdraw", row, group)
        if editing.request.status == Status.PENDING.value:
            session.execute(
                update(m.Comment).where(m.Comment.file_id == row.id).values(file_id=None)
            )
            session.execute(delete(m.VoteRow).where(m.VoteRow.file_id == row.id))
            session.execute(delete(m.FileVersion).where(m.FileVersion.file_id == row.id))
            session.delete(row)
        else:
            row.withdrawn_turn = editing.request.review_turn
            row.content_turn = editing.request.review_turn
        session.flush()

    perform(ctx, actor, "queue_file_withdraw", work, target=request_id)


def set_group(
    ctx: Context, actor: str, request_id: str, group: str, *, context: str, controls: str
) -> GroupView:
    """Describe a group: what its files are (context) and which disclosure controls the
    author applied (controls). Both are needed before submission."""
    name = clean_group(group)
    what = clean_text(context, "context", MAX_GROUP_TEXT)
    how = clean_text(controls, "controls", MAX_GROUP_TEXT)

    def work(session: Session, me: Person) -> GroupView:
        editing = editing_request(session, ctx, me, request_id)
        row = _group(session, editing.request, name)
        row.context, row.controls = what, how
        session.flush()
        record(
            session,
            ctx,
            me.email,
            "queue_group_edit",
            editing.request,
            editing.project,
            group=name,
            context=what,
            controls=how,
        )
        return GroupView(name, what, how)

    return perform(ctx, actor, "queue_group_edit", work, target=request_id)


def set_exception(ctx: Context, actor: str, request_id: str, file_id: str, text: str) -> FileView:
    """Record the author's exception request for an output the checks fail (shown to
    checkers; it never changes the automated status)."""
    reason = clean_text(text, "exception request", _files.MAX_EXCEPTION, required=False)

    def work(session: Session, me: Person) -> FileView:
        editing = editing_request(session, ctx, me, request_id)
        row = load_file(session, editing.request, file_id)
        row.exception = reason
        session.flush()
        group = str(session.scalar(select(m.Group.name).where(m.Group.id == row.group_id)))
        _audit_file(session, ctx, me, editing, "queue_file_exception", row, group, text=reason)
        return file_view(session, row, group)

    return perform(ctx, actor, "queue_file_exception", work, target=request_id)
