"""The checkers' intents, and comments from both sides: vote, comment, make a comment public,
submit a review, return (early or after review) and reject.

Each function loads the request, checks the role rule (``permissions``: an eligible checker,
never a past or present member of the project), the state rule (``policies``) and the
transition (``workflow``), then writes the change and its audit event in one transaction.
Writes are serialised, so two reviews submitted at the same moment are applied one after the
other, and the second sees the first (re-read and advance).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.models import Person
from output_checker.queue import models as m
from output_checker.queue.errors import NotFound, WorkflowError
from output_checker.queue.facts import ActorFacts, RequestFacts
from output_checker.queue.permissions import check_can_comment, check_can_review
from output_checker.queue.policies import (
    Attempt,
    check_can_make_public,
    check_can_submit_review,
    check_can_vote,
    check_precondition,
    check_project_writable,
    check_reviewer_can_see,
    groups_to_explain_on_return,
    review_complete,
)
from output_checker.queue.policies import (
    check_can_comment as check_state_allows_comment,
)
from output_checker.queue.service._base import (
    actor_facts,
    clean_text,
    load_file,
    load_request,
    move,
    new_uuid,
    perform,
    post_comment,
    project_row,
    record,
    request_facts,
)
from output_checker.queue.service._convert import summary
from output_checker.queue.views import CommentView, RequestSummary, VoteView
from output_checker.queue.workflow import (
    CheckStatus,
    Choice,
    Party,
    Recheck,
    Status,
    Visibility,
    Vote,
    check_transition,
    override_reason,
    status_after_review,
    toggle,
)

MAX_COMMENT = 20_000


@dataclass(frozen=True)
class Reviewing:
    """A request loaded for a checker, with the facts the rules read."""

    request: m.Request
    project: str
    facts: RequestFacts
    actor: ActorFacts


def _load(session: Session, ctx: Context, me: Person, request_id: str) -> Reviewing:
    request = load_request(session, request_id)
    project = project_row(session, id=request.project_id)
    facts = actor_facts(session, me, project, ctx.today(), request.author_id)
    return Reviewing(request, project.slug, request_facts(session, request), facts)


def _reviewing(session: Session, ctx: Context, me: Person, request_id: str) -> Reviewing:
    """The request for an eligible checker, in an active project, once submitted."""
    loaded = _load(session, ctx, me, request_id)
    check_can_review(loaded.actor)
    check_project_writable(project_row(session, id=loaded.request.project_id).state)
    check_reviewer_can_see(loaded.facts)
    return loaded


def vote(
    ctx: Context,
    actor: str,
    request_id: str,
    file_id: str,
    choice: str,
    *,
    comment: str = "",
) -> VoteView:
    """Vote ``approve`` or ``request_changes`` on an output; the same choice again resets the
    vote to undecided. Open while checkers hold the request and until the voter submits a
    review. Approving an output the server failed, that does not match the data or that is
    not machine-checkable, or requesting changes on one it passed, needs ``comment`` (kept as
    a private comment on the file's group and as the vote's justification)."""
    try:
        pressed = Choice(choice)
    except ValueError:
        raise WorkflowError(
            f"a vote is approve or request_changes, not {choice!r}", rule="bad_vote"
        ) from None
    text = clean_text(comment, "comment", MAX_COMMENT, required=False)

    def work(session: Session, me: Person) -> VoteView:
        loaded = _reviewing(session, ctx, me, request_id)
        check_can_vote(loaded.facts, me.email)
        row = load_file(session, loaded.request, file_id)
        if row.kind != "output" or row.withdrawn_turn is not None:
            raise WorkflowError(f"{row.name} is not an output under review", rule="not_output")
        current = session.scalar(
            select(m.VoteRow).where(m.VoteRow.file_id == row.id, m.VoteRow.reviewer_id == me.id)
        )
        after = toggle(Vote(current.vote) if current else None, pressed)
        if after is not Vote.UNDECIDED:
            status = CheckStatus(row.automated_status) if row.automated_status else None
            recheck = Recheck(row.recheck) if row.recheck else None
            reason = override_reason(pressed, status, recheck)
            if reason and not text:
                raise WorkflowError(
                    f"{reason}: write a comment to justify your vote on {row.name}",
                    rule="comment_required",
                )
        if current is None:
            current = m.VoteRow(file_id=row.id, reviewer_id=me.id)
            session.add(current)
        current.vote, current.turn, current.updated_at = (
            after.value,
            loaded.request.review_turn,
            ctx.now(),
        )
        current.comment = text if after is not Vote.UNDECIDED else ""
        group = session.get_one(m.Group, row.group_id)
        if text and after is not Vote.UNDECIDED:
            session.add(
                m.Comment(
                    uuid=new_uuid(),
                    request_id=loaded.request.id,
                    group_id=group.id,
                    file_id=row.id,
                    author_id=me.id,
                    body=text,
                    visibility=Visibility.PRIVATE.value,
                    turn=loaded.request.review_turn,
                    created_at=ctx.now(),
                )
            )
        session.flush()
        record(
            session,
            ctx,
            me.email,
            "queue_vote",
            loaded.request,
            loaded.project,
            file=row.name,
            file_id=row.uuid,
            group=group.name,
            vote=after.value,
            comment=current.comment,
        )
        return VoteView(row.uuid, me.email, after.value, current.turn, current.comment)

    return perform(ctx, actor, "queue_vote", work, target=request_id)


def comment(
    ctx: Context,
    actor: str,
    request_id: str,
    *,
    body: str,
    group: str | None = None,
    file_id: str | None = None,
    visibility: str = "public",
) -> CommentView:
    """Comment on a group (``file_id`` links it to a file and implies the file's group; no
    group: on the request). Members of the project comment publicly in the author's turns;
    eligible checkers comment publicly or privately while they hold the request."""
    text = clean_text(body, "comment", MAX_COMMENT)
    try:
        seen_by = Visibility(visibility)
    except ValueError:
        raise WorkflowError("visibility is public or private", rule="bad_visibility") from None

    def work(session: Session, me: Person) -> CommentView:
        loaded = _load(session, ctx, me, request_id)
        check_can_comment(loaded.actor, seen_by)
        check_state_allows_comment(loaded.facts, reviewer_side=loaded.actor.is_reviewer)
        if loaded.actor.is_reviewer:
            check_reviewer_can_see(loaded.facts)
        check_project_writable(project_row(session, id=loaded.request.project_id).state)
        target_group: m.Group | None = None
        linked: m.File | None = None
        if file_id is not None:
            linked = load_file(session, loaded.request, file_id)
            target_group = session.get_one(m.Group, linked.group_id)
        elif group is not None:
            target_group = session.scalar(
                select(m.Group).where(
                    m.Group.request_id == loaded.request.id, m.Group.name == group
                )
            )
            if target_group is None:
                raise NotFound(f"unknown group {group!r} in this request", rule="unknown_group")
        row = m.Comment(
            uuid=new_uuid(),
            request_id=loaded.request.id,
            group_id=target_group.id if target_group else None,
            file_id=linked.id if linked else None,
            author_id=me.id,
            body=text,
            visibility=seen_by.value,
            turn=loaded.request.review_turn,
            created_at=ctx.now(),
        )
        session.add(row)
        session.flush()
        record(
            session,
            ctx,
            me.email,
            "queue_comment",
            loaded.request,
            loaded.project,
            comment_id=row.uuid,
            group=target_group.name if target_group else None,
            visibility=seen_by.value,
            body=text,
        )
        return _comment_view(row, target_group, linked, me.email)

    return perform(ctx, actor, "queue_comment", work, target=request_id)


def _comment_view(
    row: m.Comment, group: m.Group | None, file: m.File | None, author: str
) -> CommentView:
    return CommentView(
        id=row.uuid,
        group=group.name if group else None,
        file_id=file.uuid if file else None,
        author=author,
        body=row.body,
        visibility=row.visibility,
        turn=row.turn,
        created_at=row.created_at,
    )


def make_comment_public(ctx: Context, actor: str, request_id: str, comment_id: str) -> CommentView:
    """Promote one's own private comment to public (during review and consolidation)."""

    def work(session: Session, me: Person) -> CommentView:
        loaded = _reviewing(session, ctx, me, request_id)
        check_can_make_public(loaded.facts)
        row = session.scalar(
            select(m.Comment).where(
                m.Comment.uuid == comment_id.strip().lower(),
                m.Comment.request_id == loaded.request.id,
            )
        )
        if row is None or row.author_id != me.id:
            raise NotFound(
                "no comment of yours with that id in this request", rule="unknown_comment"
            )
        row.visibility = Visibility.PUBLIC.value
        session.flush()
        record(
            session,
            ctx,
            me.email,
            "queue_comment_public",
            loaded.request,
            loaded.project,
            comment_id=row.uuid,
        )
        group = session.get(m.Group, row.group_id) if row.group_id else None
        linked = session.get(m.File, row.file_id) if row.file_id else None
        return _comment_view(row, group, linked, me.email)

    return perform(ctx, actor, "queue_comment_public", work, target=request_id)


def submit_review(ctx: Context, actor: str, request_id: str) -> RequestSummary:
    """Submit one's review of this turn: a vote on every output, and a comment this turn on
    each group where one requested changes. The first review makes the request partially
    reviewed, the second reviewed (blinding ends); a third leaves it reviewed."""

    def work(session: Session, me: Person) -> RequestSummary:
        loaded = _reviewing(session, ctx, me, request_id)
        check_can_submit_review(loaded.facts, me.email)
        request, status = loaded.request, Status(loaded.request.status)
        count = len(loaded.facts.submitted_reviewers()) + 1
        target = status_after_review(count, status)
        attempt = Attempt(me.email)
        session.add(
            m.Review(
                request_id=request.id,
                reviewer_id=me.id,
                turn=request.review_turn,
                submitted_at=ctx.now(),
            )
        )
        session.flush()
        if target is status:
            review_complete(loaded.facts, attempt)
            record(session, ctx, me.email, "queue_review_submit", request, loaded.project)
        else:
            transition = check_transition(status, target, Party.CHECKER)
            check_precondition(transition, loaded.facts, attempt)
            move(session, ctx, me.email, request, loaded.project, transition, reviews=count)
        return summary(session, request, loaded.project, reviewer=True)

    return perform(ctx, actor, "queue_review_submit", work, target=request_id)


def return_request(
    ctx: Context, actor: str, request_id: str, *, comment: str = ""
) -> RequestSummary:
    """Return the request to its author.

    From SUBMITTED or PARTIALLY_REVIEWED this is an *early return*: the turn is voided (its
    votes reset to undecided, its comments and events hidden, never deleted) and ``comment``,
    if given, reaches the author in the new turn. From REVIEWED every group with an output
    not approved needs a public comment this turn; ``comment``, if given, is posted publicly
    on each such group (on the request if there is none).
    """
    text = clean_text(comment, "comment", MAX_COMMENT, required=False)

    def work(session: Session, me: Person) -> RequestSummary:
        loaded = _reviewing(session, ctx, me, request_id)
        request, status = loaded.request, Status(loaded.request.status)
        transition = check_transition(status, Status.RETURNED, Party.CHECKER)
        if status is Status.REVIEWED:
            if text:
                needs = groups_to_explain_on_return(loaded.facts) or None
                post_comment(session, ctx, me, request, needs, text, Visibility.PUBLIC)
            check_precondition(transition, request_facts(session, request), Attempt(me.email))
            move(session, ctx, me.email, request, loaded.project, transition)
        else:
            voided = request.review_turn
            _void_turn(session, ctx, me, request, loaded.project)
            move(session, ctx, me.email, request, loaded.project, transition, voided_turn=voided)
            if text:
                post_comment(session, ctx, me, request, None, text, Visibility.PUBLIC)
        return summary(session, request, loaded.project, reviewer=True)

    return perform(ctx, actor, "queue_request_return", work, target=request_id)


def _void_turn(
    session: Session, ctx: Context, me: Person, request: m.Request, project: str
) -> None:
    """Hide the current turn (an event and a row the visibility filter honours) and reset
    the votes cast in it: half-finished reviews never reach the author."""
    turn = request.review_turn
    session.add(
        m.VoidTurn(request_id=request.id, turn=turn, voided_at=ctx.now(), voided_by_id=me.id)
    )
    file_ids = select(m.File.id).where(m.File.request_id == request.id)
    for row in session.scalars(
        select(m.VoteRow).where(m.VoteRow.file_id.in_(file_ids), m.VoteRow.turn == turn)
    ):
        row.vote, row.comment = Vote.UNDECIDED.value, ""
    session.flush()
    record(session, ctx, me.email, "queue_turn_void", request, project, voided_turn=turn)


def reject(ctx: Context, actor: str, request_id: str, *, reason: str) -> RequestSummary:
    """REVIEWED -> REJECTED (final and irreversible), with a reason the author will read."""
    text = clean_text(reason, "reason", MAX_COMMENT, required=False)

    def work(session: Session, me: Person) -> RequestSummary:
        loaded = _reviewing(session, ctx, me, request_id)
        request = loaded.request
        transition = check_transition(Status(request.status), Status.REJECTED, Party.CHECKER)
        check_precondition(transition, loaded.facts, Attempt(me.email, text))
        post_comment(session, ctx, me, request, None, text, Visibility.PUBLIC)
        move(session, ctx, me.email, request, loaded.project, transition, reason=text)
        return summary(session, request, loaded.project, reviewer=True)

    return perform(ctx, actor, "queue_request_reject", work, target=request_id)
