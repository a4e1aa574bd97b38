"""Races, on SQLite and PostgreSQL: two reviews submitted at the same moment, and two
approvals at the same moment, leave one consistent state and an intact audit chain."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.errors import ControlError
from output_checker.queue import service
from output_checker.queue.workflow import Status
from tests.output_checker.queue.factories import QueueWorld, make_request

ROUNDS = 3


def _race(calls: list[Callable[[], object]]) -> list[str]:
    """Run ``calls`` from threads released at the same instant; each result is "ok" or the
    refusal's rule."""
    start = threading.Barrier(len(calls))
    results: list[str] = []
    lock = threading.Lock()

    def run(call: Callable[[], object]) -> None:
        start.wait()
        try:
            call()
            outcome = "ok"
        except ControlError as error:
            outcome = error.rule
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_two_reviews_submitted_at_the_same_moment(ctx: Context, qw: QueueWorld) -> None:
    for _ in range(ROUNDS):
        rid = make_request(ctx, qw, Status.SUBMITTED)
        file_id = service.get_request(ctx, qw.checker_a, rid).files[0].id
        for checker in (qw.checker_a, qw.checker_b):
            service.vote(ctx, checker, rid, file_id, "approve")
        results = _race(
            [
                lambda rid=rid: service.submit_review(ctx, qw.checker_a, rid),
                lambda rid=rid: service.submit_review(ctx, qw.checker_b, rid),
            ]
        )
        assert results == ["ok", "ok"]
        detail = service.get_request(ctx, qw.checker_a, rid)
        assert detail.summary.status is Status.REVIEWED
        assert detail.summary.reviews_this_turn == 2
        moves = [
            (e.detail["from_status"], e.detail["to_status"])
            for e in audit.records(ctx.engine, action="queue_review_submit")
            if e.target == rid
        ]
        assert moves == [("submitted", "partially_reviewed"), ("partially_reviewed", "reviewed")]
    report = audit.verify(ctx.engine)
    assert report.ok, report.summary()


def test_two_approvals_at_the_same_moment_make_one_release(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.REVIEWED)
    results = _race(
        [
            lambda: service.approve(ctx, qw.checker_a, rid, comment="go"),
            lambda: service.approve(ctx, qw.checker_c, rid, comment="go"),
        ]
    )
    assert Counter(results) == {"ok": 1, "status": 1}
    detail = service.get_request(ctx, qw.checker_a, rid)
    assert detail.summary.status is Status.APPROVED
    assert detail.release is not None and len(detail.release.items) == 1
    assert audit.verify(ctx.engine).ok
