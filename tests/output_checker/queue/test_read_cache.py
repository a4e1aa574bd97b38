"""The queue's overview through the read cache (as the web app serves it): whatever changes
who may see what, or what there is to see, shows on the very next call."""

from __future__ import annotations

import pytest

from enclave.control import audit
from enclave.control.context import Context, with_read_cache
from enclave.control.db import state_version
from enclave.control.service import members
from output_checker.queue import service
from output_checker.queue.workflow import Status
from tests.enclave.control.factories import FakeClock
from tests.output_checker.queue.factories import QueueWorld, make_request


@pytest.fixture
def cached(ctx: Context) -> Context:
    return with_read_cache(ctx)


def _ids(ctx: Context, actor: str) -> list[str]:
    return [r.id for r in service.list_requests(ctx, actor)]


def test_a_removed_member_loses_the_projects_requests_at_once(
    cached: Context, qw: QueueWorld
) -> None:
    rid = make_request(cached, qw, Status.SUBMITTED)
    assert _ids(cached, qw.collaborator) == [rid]
    assert _ids(cached, qw.collaborator) == [rid]  # kept
    members.remove_member(
        cached,
        qw.admin,
        project=qw.project,
        email=qw.collaborator,
        role="researcher",
        reason="left the team",
    )
    assert _ids(cached, qw.collaborator) == []


def test_a_membership_that_expires_with_the_clock_ends_the_view(
    cached: Context, qw: QueueWorld, clock: FakeClock
) -> None:
    rid = make_request(cached, qw, Status.SUBMITTED)
    assert _ids(cached, qw.collaborator) == [rid]
    clock.advance(days=3650)  # nothing is written: the date is part of what is kept
    assert _ids(cached, qw.collaborator) == []


def test_new_submissions_and_votes_show_on_the_next_call(cached: Context, qw: QueueWorld) -> None:
    first = make_request(cached, qw, Status.SUBMITTED)
    assert _ids(cached, qw.checker_c) == [first]
    assert service.reviewer_load(cached, qw.checker_c) == {}
    second = make_request(cached, qw, Status.SUBMITTED)
    assert _ids(cached, qw.checker_c) == [first, second]
    file = service.get_request(cached, qw.checker_a, second).files[0]
    service.vote(cached, qw.checker_a, second, file.id, "approve", comment="fine")
    assert service.reviewer_load(cached, qw.checker_c) == {qw.checker_a: 1}  # not submitted
    service.submit_review(cached, qw.checker_a, second)
    assert service.reviewer_load(cached, qw.checker_c) == {}


def test_every_page_view_is_audited_and_a_change_shows_on_the_next_view(
    cached: Context, qw: QueueWorld
) -> None:
    rid = make_request(cached, qw, Status.SUBMITTED)
    version = state_version(cached.engine)
    first = service.view_request(cached, qw.checker_a, rid)
    service.view_request(cached, qw.checker_a, rid)
    assert state_version(cached.engine) == version  # a view's audit event changes no read
    views = audit.records(cached.engine, action="queue_view")
    assert [e.target for e in views] == [rid, rid]
    assert first.votes == ()
    file = first.files[0]
    service.vote(cached, qw.checker_a, rid, file.id, "approve", comment="fine")
    assert [v.vote for v in service.view_request(cached, qw.checker_a, rid).votes] == ["approved"]
