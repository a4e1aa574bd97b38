"""The checkers' side through the service layer: votes and their comments, reviews,
consolidation with a third checker, returns, rejection, approval and the separation of
duties."""

from __future__ import annotations

import pytest

from enclave.control import audit
from enclave.control.context import Context
from output_checker.queue import service
from output_checker.queue.errors import NotFound, PermissionDenied, WorkflowError
from output_checker.queue.workflow import Decision, Status
from tests.output_checker.queue.factories import (
    Output,
    QueueWorld,
    approve_all,
    distinct,
    failing_beside_passing,
    failing_output,
    make_request,
    passing_output,
    table_output,
)


def _file(ctx: Context, qw: QueueWorld, rid: str, name: str | None = None) -> str:
    files = service.get_request(ctx, qw.author, rid).files
    return next(f.id for f in files if name is None or f.name == name)


def test_votes_toggle_and_close_once_the_review_is_submitted(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    file_id = _file(ctx, qw, rid)
    assert service.vote(ctx, qw.checker_a, rid, file_id, "approve").vote == "approved"
    assert service.vote(ctx, qw.checker_a, rid, file_id, "approve").vote == "undecided"
    with pytest.raises(WorkflowError, match="vote on every output first"):
        service.submit_review(ctx, qw.checker_a, rid)
    service.vote(ctx, qw.checker_a, rid, file_id, "approve")
    assert service.submit_review(ctx, qw.checker_a, rid).status is Status.PARTIALLY_REVIEWED
    with pytest.raises(WorkflowError, match="can no longer change") as refused:
        service.vote(ctx, qw.checker_a, rid, file_id, "request_changes", comment="changed mind")
    assert refused.value.rule == "review_submitted"
    refusal, *_ = audit.records(ctx.engine, action="queue_vote")[-1:]
    assert (refusal.outcome, refusal.detail["rule"]) == ("refused", "review_submitted")
    event = [e for e in audit.records(ctx.engine, action="queue_vote") if e.outcome == "ok"][-1]
    assert (event.detail["vote"], event.detail["turn"], event.actor) == (
        "approved",
        1,
        qw.checker_a,
    )


def test_overrides_need_a_comment(ctx: Context, qw: QueueWorld) -> None:
    free = Output("notes.txt", b"no machine can check this\n", None, None)
    bad = distinct(failing_beside_passing(qw))
    rid = service.create_request(ctx, qw.author, project=qw.project).id
    service.add_file(ctx, qw.author, rid, name=free.name, data=free.data, group="tables")
    bad_id = service.add_file(
        ctx,
        qw.author,
        rid,
        name=bad.name,
        data=bad.data,
        group="tables",
        record=bad.record,
        recipe=bad.recipe,
        exception="published already in aggregate",
    ).id
    good = distinct(passing_output(qw))
    good_id = service.add_file(
        ctx,
        qw.author,
        rid,
        name=good.name,
        data=good.data,
        group="tables",
        record=good.record,
        recipe=good.recipe,
    ).id
    service.set_group(ctx, qw.author, rid, "tables", context="c", controls="k")
    service.submit(ctx, qw.author, rid)
    free_id = _file(ctx, qw, rid, "notes.txt")
    for file_id, choice, why in (
        (bad_id, "approve", "automated check failed"),
        (free_id, "approve", "not machine-checkable"),
        (good_id, "request_changes", "automated check passed"),
    ):
        with pytest.raises(WorkflowError, match=why) as refused:
            service.vote(ctx, qw.checker_a, rid, file_id, choice)
        assert refused.value.rule == "comment_required"
        service.vote(ctx, qw.checker_a, rid, file_id, choice, comment=f"justified: {why}")
    service.vote(ctx, qw.checker_a, rid, bad_id, "approve", comment="again")  # reset: none needed
    detail = service.get_request(ctx, qw.checker_a, rid)
    assert {c.body for c in detail.comments if c.visibility == "private"} >= {
        "justified: automated check failed",
        "justified: not machine-checkable",
    }


def test_a_review_asking_for_changes_needs_a_comment_on_the_group(
    ctx: Context, qw: QueueWorld
) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    file_id = _file(ctx, qw, rid)
    # A pressed "request changes" twice: the vote was reset, then set again without a comment
    # (a passed output needs one to request changes, so A comments elsewhere first).
    service.comment(ctx, qw.checker_b, rid, body="B's comment is not A's", group="tables")
    service.vote(ctx, qw.checker_a, rid, file_id, "request_changes", comment="why")
    service.vote(ctx, qw.checker_b, rid, file_id, "approve")
    service.submit_review(ctx, qw.checker_b, rid)
    # A's vote comment counts as A's comment on the group this turn
    assert service.submit_review(ctx, qw.checker_a, rid).status is Status.REVIEWED


def test_a_review_without_the_groups_comment_is_refused(ctx: Context, qw: QueueWorld) -> None:
    bad = distinct(failing_output(qw))
    rid = service.create_request(ctx, qw.author, project=qw.project).id
    file_id = service.add_file(
        ctx,
        qw.author,
        rid,
        name=bad.name,
        data=bad.data,
        group="tables",
        record=bad.record,
        recipe=bad.recipe,
        exception="please",
    ).id
    service.set_group(ctx, qw.author, rid, "tables", context="c", controls="k")
    service.submit(ctx, qw.author, rid)
    service.vote(ctx, qw.checker_a, rid, file_id, "request_changes")  # failing: no comment needed
    with pytest.raises(WorkflowError, match="explain the changes you request") as refused:
        service.submit_review(ctx, qw.checker_a, rid)
    assert refused.value.rule == "comment_required"
    service.comment(ctx, qw.checker_a, rid, body="cells under 10", file_id=file_id)
    assert service.submit_review(ctx, qw.checker_a, rid).status is Status.PARTIALLY_REVIEWED


def test_a_third_checker_unblocks_a_conflict(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    file_id = _file(ctx, qw, rid)
    approve_all(ctx, qw, rid, qw.checker_a)
    service.vote(ctx, qw.checker_b, rid, file_id, "request_changes", comment="too small?")
    service.submit_review(ctx, qw.checker_b, rid)
    reviewer_view = service.get_request(ctx, qw.checker_a, rid)
    assert reviewer_view.files[0].decision is Decision.CONFLICTED
    with pytest.raises(WorkflowError, match="without two approvals"):
        service.approve(ctx, qw.checker_a, rid, comment="release")
    approve_all(ctx, qw, rid, qw.checker_c)  # reviewing during consolidation
    assert service.get_request(ctx, qw.checker_c, rid).files[0].decision is Decision.APPROVED
    with pytest.raises(WorkflowError, match="give a reason"):
        service.approve(ctx, qw.checker_c, rid, comment="  ")
    release = service.approve(ctx, qw.checker_c, rid, comment="two of three approve")
    assert release.approved_by == qw.checker_c and len(release.items) == 1


def test_no_member_of_the_project_may_review(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    file_id = _file(ctx, qw, rid)
    # every membership counts, the project's output-checker role included
    tied = (qw.member_checker, qw.former_member, qw.assigned_checker)
    for who in tied:
        with pytest.raises(PermissionDenied) as refused:
            service.vote(ctx, who, rid, file_id, "approve", comment="mine")
        assert refused.value.rule == "separation_of_duties"
        with pytest.raises(PermissionDenied):
            service.download(ctx, who, rid, file_id)
        listed = {r.id for r in service.list_requests(ctx, who)}
        assert (rid in listed) is (who == qw.member_checker)  # a current member sees it
    refusals = [e for e in audit.records(ctx.engine) if e.outcome == "refused"]
    assert {e.actor for e in refusals} >= set(tied)


def test_an_early_return_voids_the_turn(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.PARTIALLY_REVIEWED)
    returned = service.return_request(ctx, qw.checker_b, rid)
    assert (returned.status, returned.turn) == (Status.RETURNED, 2)
    detail = service.get_request(ctx, qw.checker_a, rid)
    assert {v.vote for v in detail.votes} == {"undecided"}
    events = [e.action for e in audit.records(ctx.engine) if e.target == rid]
    assert events[-2:] == ["queue_turn_void", "queue_request_early_return"]
    resubmitted = service.resubmit(ctx, qw.author, rid)
    assert resubmitted.turn == 3


def test_reject_is_final_and_needs_a_reason(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.REVIEWED)
    with pytest.raises(WorkflowError, match="give a reason"):
        service.reject(ctx, qw.checker_a, rid, reason="")
    assert service.reject(ctx, qw.checker_a, rid, reason="identifies people").status is (
        Status.REJECTED
    )
    assert "identifies people" in {
        c.body for c in service.get_request(ctx, qw.author, rid).comments
    }
    with pytest.raises(WorkflowError):
        service.return_request(ctx, qw.checker_a, rid, comment="too late")


def test_comments_and_their_promotion(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    private = service.comment(
        ctx, qw.checker_a, rid, body="draft", group="tables", visibility="private"
    )
    with pytest.raises(NotFound):
        service.make_comment_public(ctx, qw.checker_b, rid, private.id)  # not B's own
    assert service.make_comment_public(ctx, qw.checker_a, rid, private.id).visibility == "public"
    with pytest.raises(NotFound, match="unknown group"):
        service.comment(ctx, qw.checker_a, rid, body="x", group="nope")
    with pytest.raises(WorkflowError, match="cannot comment on a submitted"):
        service.comment(ctx, qw.collaborator, rid, body="may I?", group="tables")
    with pytest.raises(PermissionDenied, match="private"):
        rid2 = make_request(ctx, qw, Status.PENDING)
        service.comment(ctx, qw.author, rid2, body="secret", visibility="private")


def test_reviewers_see_the_evidence_the_author_does_not(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED, outputs=(table_output(qw),))
    assert service.get_request(ctx, qw.checker_a, rid).files[0].record is not None
    assert service.get_request(ctx, qw.author, rid).files[0].record is None
    assert service.get_request(ctx, qw.collaborator, rid).files[0].record is None


def test_forcing_a_status_is_an_audited_operator_command(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    with pytest.raises(WorkflowError, match="can only be forced to"):
        service.force_status(ctx, qw.admin, rid, "approved", reason="push it through")
    forced = service.force_status(ctx, qw.admin, rid, "withdrawn", reason="author left")
    assert forced.status is Status.WITHDRAWN
    event = audit.records(ctx.engine, action="queue_force_status")[-1]
    assert event.detail["automated_action"] is True
    assert (event.detail["from_status"], event.detail["reason"]) == ("submitted", "author left")
    released = make_request(ctx, qw, Status.RELEASED)
    with pytest.raises(WorkflowError, match="not stuck"):
        service.force_status(ctx, qw.admin, released, "rejected", reason="hide it")
