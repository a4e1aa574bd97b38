"""Handing a request over: submit and resubmit (after the server re-checks every output),
and withdraw.

Re-hashing snapshots and re-running the checks happen before the write transaction; the
transaction then refuses (Conflict) if an output changed in the meantime, so what is
recorded as checked is what was checked.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.models import Person
from output_checker.parameters import Parameters
from output_checker.queue import models as m
from output_checker.queue.errors import Conflict, WorkflowError
from output_checker.queue.permissions import check_can_author
from output_checker.queue.policies import (
    Attempt,
    check_precondition,
    groups_to_explain_on_resubmit,
)
from output_checker.queue.recheck import Verdict
from output_checker.queue.service import _files, signoffs
from output_checker.queue.service._base import (
    actor_facts,
    clean_text,
    editing_request,
    load_request,
    move,
    parameters_of,
    perform,
    post_comment,
    project_row,
    read,
    record,
    request_facts,
)
from output_checker.queue.service._convert import summary
from output_checker.queue.views import RequestSummary
from output_checker.queue.workflow import (
    FileKind,
    Party,
    Status,
    Visibility,
    Vote,
    check_transition,
    vote_after_resubmit,
)

MAX_COMMENT = 20_000


RECHECK_EVENT = "queue_outputs_rechecked"


def _checked_outputs(
    ctx: Context, actor: str, request_id: str, event: str
) -> dict[str, tuple[str, Verdict]]:
    """Re-read every output's snapshot (verified against its hash), re-run the server's
    checks on it and audit it against the ledger and the other outputs: file uuid -> (sha256
    checked, verdict)."""

    def load(session: Session, me: Person) -> tuple[str, Parameters, list[m.File]]:
        request = load_request(session, request_id)
        project = project_row(session, id=request.project_id)
        check_can_author(actor_facts(session, me, project, ctx.today(), request.author_id))
        files = session.scalars(
            select(m.File).where(
                m.File.request_id == request.id,
                m.File.kind == FileKind.OUTPUT.value,
                m.File.withdrawn_turn.is_(None),
            )
        ).all()
        return project.slug, parameters_of(project), list(files)

    project, params, files = read(ctx, actor, load, event=event, target=request_id)
    # Together: the outputs would be released together, so each is audited against the others.
    return _files.recheck_rows(ctx, project, params, files)


def _keep_changed_verdicts(
    ctx: Context, actor: str, request_id: str, checked: dict[str, tuple[str, Verdict]]
) -> None:
    """Store the verdicts that changed since the files were added (an output released since,
    or another output of the request it differences with), in a transaction of their own:
    if the submission is then refused, the author still sees why."""

    def work(session: Session, me: Person) -> None:
        editing = editing_request(session, ctx, me, request_id)
        changed = []
        for row in session.scalars(select(m.File).where(m.File.uuid.in_(checked))):
            sha256, verdict = checked[row.uuid]
            if sha256 == row.sha256 and verdict.status.value != row.automated_status:
                _files.apply_verdict(row, verdict, ctx)
                changed.append(row.name)
        if changed:
            record(
                session,
                ctx,
                me.email,
                RECHECK_EVENT,
                editing.request,
                editing.project,
                files=sorted(changed),
            )

    perform(ctx, actor, RECHECK_EVENT, work, target=request_id)


def _hand_over(
    ctx: Context, actor: str, request_id: str, source: Status, comment: str
) -> RequestSummary:
    """Submit (from PENDING) or resubmit (from RETURNED) after re-checking every output."""
    event = "queue_request_submit" if source is Status.PENDING else "queue_request_resubmit"
    checked = _checked_outputs(ctx, actor, request_id, event)
    _keep_changed_verdicts(ctx, actor, request_id, checked)

    def work(session: Session, me: Person) -> RequestSummary:
        editing = editing_request(session, ctx, me, request_id)
        request = editing.request
        if request.status != source.value:
            raise WorkflowError(
                f"the request is {request.status}, not {source.value}", rule="status"
            )
        transition = check_transition(source, Status.SUBMITTED, Party.AUTHOR)
        rows = session.scalars(
            select(m.File).where(
                m.File.request_id == request.id,
                m.File.kind == FileKind.OUTPUT.value,
                m.File.withdrawn_turn.is_(None),
            )
        ).all()
        if {r.uuid: r.sha256 for r in rows} != {k: sha for k, (sha, _) in checked.items()}:
            raise Conflict("the request changed while it was being checked: submit again")
        for row in rows:
            _files.apply_verdict(row, checked[row.uuid][1], ctx)
        if comment:
            _explain(session, ctx, me, request, comment)
        session.flush()
        facts = signoffs.with_egress(session, request, request_facts(session, request))
        check_precondition(transition, facts, Attempt(me.email))  # egress rights too
        if source is Status.RETURNED:
            _reopen_votes(session, request)
        now = ctx.now()
        request.first_submitted_at = request.first_submitted_at or now
        request.last_submitted_at = now
        move(
            session,
            ctx,
            me.email,
            request,
            editing.project,
            transition,
            files={r.name: [r.sha256, r.automated_status, r.recheck] for r in rows},
        )
        return summary(session, request, editing.project, reviewer=False)

    return perform(ctx, actor, event, work, target=request_id)


def _explain(session: Session, ctx: Context, me: Person, request: m.Request, text: str) -> None:
    """Post the author's public comment on each group that needs an explanation (on the
    request if none does)."""
    needs = groups_to_explain_on_resubmit(request_facts(session, request)) or None
    post_comment(session, ctx, me, request, needs, text, Visibility.PUBLIC)


def _reopen_votes(session: Session, request: m.Request) -> None:
    """On resubmission change requests become undecided in the new turn; approvals on
    unchanged files survive (updated files lost their votes when they were updated)."""
    file_ids = select(m.File.id).where(m.File.request_id == request.id)
    votes = session.scalars(select(m.VoteRow).where(m.VoteRow.file_id.in_(file_ids))).all()
    for vote in votes:
        after = vote_after_resubmit(Vote(vote.vote))
        if after.value != vote.vote:
            vote.vote, vote.turn = after.value, request.review_turn + 1


def submit(ctx: Context, actor: str, request_id: str) -> RequestSummary:
    """PENDING -> SUBMITTED: every output's snapshot is re-hashed and re-checked by the
    server, then the request needs at least one output, context and controls on every group
    in use and an exception request on every failing output. The turn goes up."""
    return _hand_over(ctx, actor, request_id, Status.PENDING, "")


def resubmit(ctx: Context, actor: str, request_id: str, *, comment: str = "") -> RequestSummary:
    """RETURNED -> SUBMITTED, as ``submit``; also the author must have explained, in a public
    comment this turn, each group with changes requested or with new, updated, moved or
    re-added outputs. ``comment``, if given, is posted on each such group (on the request
    if there is none)."""
    text = clean_text(comment, "comment", MAX_COMMENT, required=False)
    return _hand_over(ctx, actor, request_id, Status.RETURNED, text)


def withdraw(ctx: Context, actor: str, request_id: str) -> RequestSummary:
    """PENDING or RETURNED -> WITHDRAWN (final), by the author."""

    def work(session: Session, me: Person) -> RequestSummary:
        editing = editing_request(session, ctx, me, request_id)
        status = Status(editing.request.status)
        transition = check_transition(status, Status.WITHDRAWN, Party.AUTHOR)
        move(session, ctx, me.email, editing.request, editing.project, transition)
        return summary(session, editing.request, editing.project, reviewer=False)

    return perform(ctx, actor, "queue_request_withdraw", work, target=request_id)
