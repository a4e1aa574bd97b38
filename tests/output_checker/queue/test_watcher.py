"""The outbox watcher: each finalised bundle becomes one pending request owned by its author,
exactly once; an unsafe bundle is consumed as refused, audited, and never retried."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import transaction
from output_checker.queue import models as m
from output_checker.queue import service, watcher
from output_checker.queue.storage import BlobStore
from output_checker.queue.workflow import Recheck, Status
from tests.output_checker.queue.factories import (
    QueueWorld,
    failing_output,
    passing_output,
    write_bundle,
)


def _count(ctx: Context, model: type[m.QueueBase]) -> int:
    with transaction(ctx.engine, readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_bundle_becomes_one_pending_request_of_its_author(ctx: Context, qw: QueueWorld) -> None:
    out = passing_output(qw)
    bundle = write_bundle(qw, "researcher", "beds-1", (out, failing_output(qw)))
    outcomes = watcher.scan(ctx)
    assert [(o.accepted, o.ref.name) for o in outcomes] == [(True, "beds-1")]
    rid = outcomes[0].request_id
    assert rid is not None
    detail = service.get_request(ctx, qw.author, rid)
    assert detail.summary.status is Status.PENDING and detail.summary.source == "bundle"
    assert detail.summary.author == qw.author
    assert {g.name: g.context for g in detail.groups} == {"tables": "Counts"}
    by_name = {f.name: f for f in detail.files}
    assert by_name["by-region.csv"].recheck == Recheck.MATCHES.value
    assert by_name["by-region.csv"].automated_status == "pass"
    assert by_name["by-age.csv"].automated_status == "fail"
    assert BlobStore.for_data_dir(ctx.data_dir).read(by_name["by-region.csv"].sha256) == out.data
    created = audit.records(ctx.engine, action="queue_request_create")
    assert created[-1].detail["via"] == "outbox" and created[-1].actor == qw.author

    # Consumed once: a second scan does nothing, and changing the bundle changes nothing.
    (bundle / "by-region.csv").write_bytes(b"region,count\nnorth,1\n")
    assert watcher.scan(ctx) == []
    assert _count(ctx, m.Request) == 1
    again = {f.name: f.sha256 for f in service.get_request(ctx, qw.author, rid).files}
    assert BlobStore.for_data_dir(ctx.data_dir).read(again["by-region.csv"]) == out.data


def test_an_unsafe_bundle_is_refused_once_and_audited(ctx: Context, qw: QueueWorld) -> None:
    bundle = write_bundle(qw, "researcher", "evil", (passing_output(qw),))
    (bundle / "extra.sh").write_text("rm -rf /")
    outcomes = watcher.scan(ctx)
    assert [(o.accepted, "unlisted entry" in o.reason) for o in outcomes] == [(False, True)]
    assert _count(ctx, m.Request) == 0
    refusals = audit.records(ctx.engine, action="queue_bundle_refused")
    assert len(refusals) == 1 and refusals[0].outcome == "refused"
    assert watcher.scan(ctx) == []
    assert len(audit.records(ctx.engine, action="queue_bundle_refused")) == 1
    assert audit.verify(ctx.engine).ok


def test_only_members_bundles_become_requests(ctx: Context, qw: QueueWorld) -> None:
    write_bundle(qw, "outsider", "mine", (passing_output(qw),))
    write_bundle(qw, "ghost", "mine", (passing_output(qw),))
    reasons = {o.ref.owner: o.reason for o in watcher.scan(ctx)}
    assert "not a member" in reasons["outsider"]
    assert "no person has the username 'ghost'" in reasons["ghost"]
    assert _count(ctx, m.Request) == 0


def test_bundles_of_unknown_projects_are_left_alone(ctx: Context, qw: QueueWorld) -> None:
    stray = qw.data_dir / "projects" / "nowhere" / "outbox" / "researcher" / "b"
    stray.mkdir(parents=True)
    (stray / "finalised").write_text("")
    assert watcher.scan(ctx) == []


def test_two_watchers_at_once_make_one_request(ctx: Context, qw: QueueWorld) -> None:
    write_bundle(qw, "researcher", "race", (passing_output(qw),))
    start = threading.Barrier(2)
    results: list[int] = []

    def run() -> None:
        start.wait()
        results.append(len(watcher.scan(ctx)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [0, 1]
    assert _count(ctx, m.Request) == 1
    assert _count(ctx, m.BundleRow) == 1


def test_watch_loop_stops_when_asked(ctx: Context, qw: QueueWorld) -> None:
    write_bundle(qw, "researcher", "loop", (passing_output(qw),))
    stop = threading.Event()
    thread = threading.Thread(target=watcher.watch, args=(ctx, stop), kwargs={"interval": 0.05})
    thread.start()
    for _ in range(200):
        if _count(ctx, m.Request):
            break
        stop.wait(0.05)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert _count(ctx, m.Request) == 1
