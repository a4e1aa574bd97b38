"""The overview a page at a time: pages follow the queue's order and split it without gaps or
repeats, filters apply before paging (with the author's side seeing reviews in progress as
"submitted"), and a page view is one read plus one audited event."""

from __future__ import annotations

import pytest

from enclave.control import audit
from enclave.control.context import Context
from output_checker.queue import service
from output_checker.queue.errors import InvalidInput, PermissionDenied
from output_checker.queue.workflow import Status
from tests.enclave.control.factories import FakeClock
from tests.output_checker.queue.factories import QueueWorld, make_request


def _ids(ctx: Context, who: str, **query: object) -> list[str]:
    return [r.id for r in service.list_requests(ctx, who, **query)]  # type: ignore[arg-type]


def test_pages_split_the_queue_in_its_order(ctx: Context, qw: QueueWorld, clock: FakeClock) -> None:
    submitted = []
    for n in range(4):
        submitted.append(make_request(ctx, qw, Status.SUBMITTED, title=f"Request {n}"))
        clock.advance(hours=1)
    partial = make_request(ctx, qw, Status.PARTIALLY_REVIEWED)
    clock.advance(hours=1)
    draft = make_request(ctx, qw, Status.PENDING)
    queue = [*submitted, partial]  # oldest status change first; drafts are the authors'
    assert _ids(ctx, qw.checker_c) == queue
    pages = [_ids(ctx, qw.checker_c, limit=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert pages == [queue[0:2], queue[2:4], queue[4:], []]

    # Filters apply before paging, on the status as each viewer may know it.
    assert _ids(ctx, qw.checker_c, status="submitted", limit=3, offset=3) == [submitted[3]]
    assert _ids(ctx, qw.checker_c, status="partially_reviewed", limit=1) == [partial]
    assert _ids(ctx, qw.collaborator, status="submitted", limit=10) == queue
    assert _ids(ctx, qw.collaborator, status="partially_reviewed") == []
    assert _ids(ctx, qw.collaborator, limit=1, offset=5) == [draft]
    assert _ids(ctx, qw.checker_c, project="study", limit=1, offset=1) == [submitted[1]]
    (shown,) = service.list_requests(ctx, qw.collaborator, status="submitted", limit=1, offset=4)
    assert shown.status is Status.SUBMITTED and shown.reviews_this_turn == 0
    (row,) = service.list_requests(ctx, qw.checker_c, status="partially_reviewed")
    assert row.reviews_this_turn == 1 and row.outputs == 1


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": -1}, {"offset": -1}])
def test_a_page_out_of_range_is_refused(
    ctx: Context, qw: QueueWorld, query: dict[str, int]
) -> None:
    with pytest.raises(InvalidInput, match="limit must be positive"):
        service.list_requests(ctx, qw.checker_c, **query)  # type: ignore[arg-type]


def test_a_page_view_is_the_request_and_one_audited_event(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.SUBMITTED)
    before = len(audit.records(ctx.engine))
    seen = service.view_request(ctx, qw.checker_a, rid)
    assert seen == service.get_request(ctx, qw.checker_a, rid)
    events = [
        (e.action, e.actor, e.outcome, e.target, e.detail)
        for e in audit.records(ctx.engine)[before:]
    ]
    assert events == [("queue_view", qw.checker_a, "ok", rid, {"turn": seen.summary.turn})]
    with pytest.raises(PermissionDenied):
        service.view_request(ctx, qw.outsider, rid)
    refused = audit.records(ctx.engine)[-1]
    assert (refused.action, refused.actor, refused.outcome) == (
        "queue_read",
        qw.outsider,
        "refused",
    )
    assert not [e for e in audit.records(ctx.engine, action="queue_view") if e.actor == qw.outsider]
