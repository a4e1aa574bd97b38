"""The release worker: the reviewed snapshot, never the outbox file, is what leaves; hashes
are verified; failures are retried with backoff; the worker is idempotent; revocation takes
the files back."""

from __future__ import annotations

import json
import threading

import pytest

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.service import projects
from output_checker.queue import release, service, watcher
from output_checker.queue.errors import WorkflowError
from output_checker.queue.release import RELEASE_MANIFEST, Backoff
from output_checker.queue.service.releases import released_dir
from output_checker.queue.storage import BlobStore, file_sha256
from output_checker.queue.workflow import Status
from tests.enclave.control.factories import FakeClock
from tests.output_checker.queue.factories import (
    QueueWorld,
    approve_all,
    make_request,
    passing_output,
    write_bundle,
)


def _released(ctx: Context, qw: QueueWorld, rid: str, name: str = "by-region.csv") -> bytes:
    return (released_dir(ctx.data_dir, qw.project, rid) / name).read_bytes()


def test_the_released_bytes_are_the_reviewed_snapshot(ctx: Context, qw: QueueWorld) -> None:
    out = passing_output(qw)
    bundle = write_bundle(qw, "researcher", "beds", (out,))
    (outcome,) = watcher.scan(ctx)
    rid = outcome.request_id
    assert rid is not None
    # The session rewrites its outbox file after intake: the queue keeps reviewing its copy.
    (bundle / "by-region.csv").write_bytes(b"region,count\neast,3\n")
    service.submit(ctx, qw.author, rid)
    approve_all(ctx, qw, rid, qw.checker_a)
    approve_all(ctx, qw, rid, qw.checker_b)
    approval = service.approve(ctx, qw.checker_c, rid, comment="fine")
    assert service.get_request(ctx, qw.author, rid).summary.status is Status.APPROVED
    done = release.release_request(ctx, rid)
    assert (done.status, done.copied, done.pending, done.errors) == ("released", 1, 0, ())
    reviewed = service.get_request(ctx, qw.checker_a, rid).files[0]
    assert (
        _released(ctx, qw, rid)
        == out.data
        == BlobStore.for_data_dir(ctx.data_dir).read(reviewed.sha256)
    )
    manifest = json.loads(
        (released_dir(ctx.data_dir, qw.project, rid) / RELEASE_MANIFEST).read_text()
    )
    assert manifest["files"] == [
        {"name": "by-region.csv", "sha256": reviewed.sha256, "size": len(out.data)}
    ]
    assert manifest["release"] == approval.id
    downloaded = service.download_release(ctx, qw.author, reviewed.id)
    assert downloaded.data == out.data
    assert projects.get_project(ctx, qw.admin, qw.project).outputs_released == 1
    events = [e.action for e in audit.records(ctx.engine) if e.target == rid]
    assert events[-4:] == [
        "queue_file_released",
        "queue_request_release",
        "release_output",  # the control plane counts it for the public register
        "queue_release_download",
    ]
    assert audit.verify(ctx.engine).ok


def test_the_worker_is_idempotent_and_safe_to_run_twice_at_once(
    ctx: Context, qw: QueueWorld
) -> None:
    rid = make_request(ctx, qw, Status.APPROVED)
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        release.release_approved(ctx)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert release.release_request(ctx, rid).status == "released"
    events = [e.action for e in audit.records(ctx.engine) if e.target == rid]
    assert events.count("queue_file_released") == 1
    assert events.count("queue_request_release") == 1
    assert projects.get_project(ctx, qw.admin, qw.project).outputs_released == 1
    assert release.release_approved(ctx) == []


def test_a_damaged_snapshot_is_never_released_and_is_retried(
    ctx: Context, qw: QueueWorld, clock: FakeClock
) -> None:
    rid = make_request(ctx, qw, Status.APPROVED)
    sha = service.get_request(ctx, qw.checker_a, rid).files[0].sha256
    store = BlobStore.for_data_dir(ctx.data_dir)
    original = store.read(sha)
    store.path_of(sha).chmod(0o640)
    store.path_of(sha).write_bytes(b"region,count\neast,3\n")
    failed = release.release_request(ctx, rid)
    assert failed.status == "approved" and "does not match its hash" in failed.errors[0]
    assert not (released_dir(ctx.data_dir, qw.project, rid) / "by-region.csv").exists()
    item = service.get_request(ctx, qw.checker_a, rid).release.items[0]  # type: ignore[union-attr]
    assert item.attempts == 1 and "hash" in item.last_error
    assert release.release_request(ctx, rid).copied == 0  # backing off
    assert service.get_request(ctx, qw.checker_a, rid).release.items[0].attempts == 1  # type: ignore[union-attr]
    store.put(original)  # repaired
    clock.advance(seconds=61)
    assert release.release_request(ctx, rid).status == "released"
    assert file_sha256(released_dir(ctx.data_dir, qw.project, rid) / "by-region.csv") == sha


def test_a_different_file_in_the_way_is_never_overwritten(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.APPROVED)
    target = released_dir(ctx.data_dir, qw.project, rid) / "by-region.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"something else")
    outcome = release.release_request(ctx, rid, backoff=Backoff(base=0))
    assert outcome.status == "approved" and "different file" in outcome.errors[0]
    assert target.read_bytes() == b"something else"
    target.unlink()
    assert release.release_request(ctx, rid, backoff=Backoff(base=0)).status == "released"


def test_a_suspended_project_releases_nothing(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.APPROVED)
    projects.suspend_project(ctx, qw.admin, qw.project, "incident")
    assert release.release_request(ctx, rid).status == "approved"
    assert not released_dir(ctx.data_dir, qw.project, rid).exists()
    projects.activate_project(ctx, qw.admin, qw.project)
    assert release.release_request(ctx, rid).status == "released"


def test_revocation_takes_the_files_back(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.RELEASED)
    file_id = service.get_request(ctx, qw.author, rid).files[0].id
    with pytest.raises(WorkflowError, match="give a reason"):
        service.revoke_release(ctx, qw.checker_a, rid, reason="")
    revoked = service.revoke_release(ctx, qw.admin, rid, reason="breach: a row identifies")
    assert revoked.revoked_by == qw.admin and revoked.revoke_reason.startswith("breach")
    assert not released_dir(ctx.data_dir, qw.project, rid).exists()
    with pytest.raises(WorkflowError, match="not released"):
        service.download_release(ctx, qw.author, file_id)
    event = audit.records(ctx.engine, action="queue_release_revoke")[-1]
    assert event.detail["incident"] is True and file_id not in event.detail["released"]
    assert "by-region.csv" in event.detail["released"]
    assert release.release_request(ctx, rid).status == "revoked"


def test_revoking_an_approval_stops_the_copies(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.APPROVED)
    service.revoke_release(ctx, qw.checker_b, rid, reason="approved by mistake")
    assert release.release_request(ctx, rid).status == "revoked"
    assert not released_dir(ctx.data_dir, qw.project, rid).exists()


def test_the_worker_loop_stops_when_asked(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.APPROVED)
    stop = threading.Event()
    thread = threading.Thread(target=release.run, args=(ctx, stop), kwargs={"interval": 0.05})
    thread.start()
    for _ in range(200):
        if service.get_request(ctx, qw.author, rid).summary.status is Status.RELEASED:
            break
        stop.wait(0.05)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert service.get_request(ctx, qw.author, rid).summary.status is Status.RELEASED
