"""Reads: the queue overview per viewer, the buttons a viewer is offered, and the audited
views and downloads."""

from __future__ import annotations

import pytest

from enclave.control import audit
from enclave.control.context import Context
from output_checker.queue import service
from output_checker.queue.errors import PermissionDenied, WorkflowError
from output_checker.queue.workflow import Status
from tests.enclave.control.factories import FakeClock
from tests.output_checker.queue.factories import QueueWorld, make_request


def test_the_queue_overview_per_viewer(ctx: Context, qw: QueueWorld, clock: FakeClock) -> None:
    pending = make_request(ctx, qw, Status.PENDING)
    clock.advance(hours=1)
    partial = make_request(ctx, qw, Status.PARTIALLY_REVIEWED)
    clock.advance(hours=1)
    submitted = make_request(ctx, qw, Status.SUBMITTED)
    checker_view = service.list_requests(ctx, qw.checker_c)
    assert [r.id for r in checker_view] == [partial, submitted]  # oldest first, no drafts
    assert [r.reviews_this_turn for r in checker_view] == [1, 0]
    assert checker_view[0].status is Status.PARTIALLY_REVIEWED and checker_view[0].outputs == 1
    author_view = {r.id: r for r in service.list_requests(ctx, qw.collaborator)}
    assert set(author_view) == {pending, partial, submitted}
    assert author_view[partial].status is Status.SUBMITTED  # the review count stays hidden
    assert author_view[partial].reviews_this_turn == 0
    assert service.list_requests(ctx, qw.member_checker, status="pending")[0].id == pending
    assert service.list_requests(ctx, qw.former_member) == []  # no longer a member; tied
    assert service.list_requests(ctx, qw.outsider) == []
    assert service.list_requests(ctx, qw.admin) == []
    assert [r.id for r in service.list_requests(ctx, qw.checker_c, status="submitted")] == [
        submitted
    ]
    assert service.list_requests(ctx, qw.checker_c, project="other") == []


def test_the_buttons_follow_the_rules(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.REVIEWED)
    assert service.get_request(ctx, qw.checker_c, rid).allowed == {
        "vote",
        "submit_review",
        "comment",
        "make_comment_public",
        "return_request",
        "reject",
        "approve",
        "download",
    }
    assert service.get_request(ctx, qw.checker_a, rid).allowed == {
        "comment",
        "make_comment_public",
        "return_request",
        "reject",
        "approve",
        "download",
    }
    assert service.get_request(ctx, qw.author, rid).allowed == frozenset()
    pending = make_request(ctx, qw, Status.PENDING)
    assert {"add_file", "submit", "withdraw", "comment"} <= service.get_request(
        ctx, qw.author, pending
    ).allowed
    assert service.get_request(ctx, qw.collaborator, pending).allowed == {"comment"}
    released = make_request(ctx, qw, Status.RELEASED)
    assert service.get_request(ctx, qw.author, released).allowed == {"download_release"}


def test_views_and_downloads_are_audited(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    file_id = service.get_request(ctx, qw.author, rid).files[0].id
    service.record_view(ctx, qw.collaborator, rid)
    viewed = service.view_file(ctx, qw.author, rid, file_id)
    assert viewed.data.startswith(b"region")
    with pytest.raises(PermissionDenied, match="downloading requires"):
        service.download(ctx, qw.author, rid, file_id)
    downloaded = service.download(ctx, qw.checker_a, rid, file_id)
    assert downloaded.sha256 == viewed.sha256
    with pytest.raises(PermissionDenied):
        service.view_file(ctx, qw.outsider, rid, file_id)
    events = [(e.action, e.actor, e.outcome) for e in audit.records(ctx.engine)[-5:]]
    assert events == [
        ("queue_view", qw.collaborator, "ok"),
        ("queue_file_view", qw.author, "ok"),
        ("queue_download", qw.author, "refused"),
        ("queue_download", qw.checker_a, "ok"),
        ("queue_file_view", qw.outsider, "refused"),
    ]
    reads = service.activity(ctx, qw.checker_a, rid, include_reads=True)
    assert "queue_download" in {e.event for e in reads}
    assert "queue_download" not in {e.event for e in service.activity(ctx, qw.checker_a, rid)}
    assert "queue_download" not in {
        e.event for e in service.activity(ctx, qw.author, rid, include_reads=True)
    }


def test_checkers_see_nothing_of_a_draft(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.PENDING)
    with pytest.raises(WorkflowError, match="not been submitted"):
        service.get_request(ctx, qw.checker_a, rid)


def test_reviewer_load(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    file_id = service.get_request(ctx, qw.checker_a, rid).files[0].id
    service.vote(ctx, qw.checker_a, rid, file_id, "approve")
    service.vote(ctx, qw.checker_b, rid, file_id, "approve")
    service.submit_review(ctx, qw.checker_b, rid)
    assert service.reviewer_load(ctx, qw.checker_c) == {qw.checker_a: 1}
    with pytest.raises(PermissionDenied):
        service.reviewer_load(ctx, qw.author)
