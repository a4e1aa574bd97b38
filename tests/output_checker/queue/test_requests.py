"""The author's side through the service layer: creating, adding, updating, moving and
withdrawing files, describing groups, submitting (with the server's own checks) and
resubmitting; every refusal changes nothing and is audited."""

from __future__ import annotations

import json

import pytest

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.service import projects
from output_checker.queue import service
from output_checker.queue.errors import (
    Conflict,
    IntegrityFailure,
    InvalidInput,
    PermissionDenied,
    WorkflowError,
)
from output_checker.queue.storage import BlobStore
from output_checker.queue.views import FileView
from output_checker.queue.workflow import Recheck, Status
from tests.output_checker.queue.factories import (
    Output,
    QueueWorld,
    add_output,
    distinct,
    failing_output,
    make_request,
    passing_output,
    table_output,
)


def _files(ctx: Context, qw: QueueWorld, rid: str) -> dict[str, FileView]:
    return {f.name: f for f in service.get_request(ctx, qw.author, rid).files}


def test_only_researcher_members_of_an_active_project_create_requests(
    ctx: Context, qw: QueueWorld
) -> None:
    made = service.create_request(ctx, qw.collaborator, project=qw.project, title="Mine")
    assert made.status is Status.PENDING and made.author == qw.collaborator
    for who, rule in (
        (qw.outsider, "membership"),
        (qw.checker_a, "role"),
        (qw.former_member, "membership"),
    ):
        with pytest.raises(PermissionDenied) as refused:
            service.create_request(ctx, who, project=qw.project)
        assert refused.value.rule == rule
    assert audit.records(ctx.engine)[-1].outcome == "refused"
    projects.suspend_project(ctx, qw.admin, qw.project, "incident")
    with pytest.raises(WorkflowError, match="suspended"):
        service.create_request(ctx, qw.author, project=qw.project)


def test_a_file_whose_record_names_another_hash_is_refused(ctx: Context, qw: QueueWorld) -> None:
    rid = service.create_request(ctx, qw.author, project=qw.project).id
    out = passing_output(qw)
    with pytest.raises(InvalidInput, match="does not hash to the sha256") as refused:
        service.add_file(
            ctx, qw.author, rid, name=out.name, data=out.data + b"\n1,2\n", record=out.record
        )
    assert refused.value.rule == "hash_mismatch"
    assert _files(ctx, qw, rid) == {}


def test_add_snapshots_and_checks_each_file(ctx: Context, qw: QueueWorld) -> None:
    rid = service.create_request(ctx, qw.author, project=qw.project).id
    out = distinct(passing_output(qw))
    add_output(ctx, qw, rid, out)
    service.add_file(ctx, qw.author, rid, name="notes.md", data=b"# how\n", kind="supporting")
    files = _files(ctx, qw, rid)
    table, notes = files["by-region.csv"], files["notes.md"]
    assert (table.automated_status, table.recheck) == ("pass", Recheck.MATCHES.value)
    assert (notes.automated_status, notes.recheck) == (None, None)
    assert BlobStore.for_data_dir(ctx.data_dir).read(table.sha256) == out.data
    assert table.record is None  # the evidence is for checkers
    with pytest.raises(Conflict, match="already in this request"):
        add_output(ctx, qw, rid, out)
    with pytest.raises(InvalidInput, match="not allowed"):
        service.add_file(ctx, qw.author, rid, name="run.sh", data=b"echo hi\n")
    with pytest.raises(PermissionDenied, match="only the request's author"):
        service.add_file(ctx, qw.collaborator, rid, name="x.txt", data=b"x")


def test_submit_rechecks_on_the_server_and_needs_context_and_exceptions(
    ctx: Context, qw: QueueWorld
) -> None:
    rid = service.create_request(ctx, qw.author, project=qw.project).id
    bad = distinct(failing_output(qw))
    # The session claims its failing table passed: the server does not care.
    forged = json.loads(json.dumps(bad.record))
    forged["status"] = "pass"
    file_id = service.add_file(
        ctx,
        qw.author,
        rid,
        name=bad.name,
        data=bad.data,
        group="tables",
        record=forged,
        recipe=bad.recipe,
    ).id
    with pytest.raises(WorkflowError, match="context and the disclosure controls") as refused:
        service.submit(ctx, qw.author, rid)
    assert refused.value.rule == "group_context"
    service.set_group(ctx, qw.author, rid, "tables", context="Ages", controls="None yet")
    with pytest.raises(WorkflowError, match=r"need an exception request: by-age\.csv"):
        service.submit(ctx, qw.author, rid)
    assert _files(ctx, qw, rid)["by-age.csv"].automated_status == "fail"
    service.set_exception(ctx, qw.author, rid, file_id, "Needed for the paper; see notes")
    submitted = service.submit(ctx, qw.author, rid)
    assert (submitted.status, submitted.turn) == (Status.SUBMITTED, 1)
    event = audit.records(ctx.engine, action="queue_request_submit")[-1]
    assert event.detail["files"]["by-age.csv"][1:] == ["fail", "matches"]
    assert event.detail["turn"] == 0 and event.actor == qw.author


def test_submit_refuses_a_damaged_snapshot(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.PENDING)
    sha = next(iter(_files(ctx, qw, rid).values())).sha256
    path = BlobStore.for_data_dir(ctx.data_dir).path_of(sha)
    path.chmod(0o640)
    path.write_bytes(b"region,count\nnorth,3\n")
    with pytest.raises(IntegrityFailure):
        service.submit(ctx, qw.author, rid)
    assert service.get_request(ctx, qw.author, rid).summary.status is Status.PENDING


def test_withdrawing_a_file(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.PENDING)
    extra = service.add_file(ctx, qw.author, rid, name="extra.txt", data=b"x", group="tables")
    service.withdraw_file(ctx, qw.author, rid, extra.id)
    assert "extra.txt" not in _files(ctx, qw, rid)  # deleted while pending
    rid = make_request(ctx, qw, Status.RETURNED)
    file_id = next(iter(_files(ctx, qw, rid).values())).id
    service.withdraw_file(ctx, qw.author, rid, file_id)
    (kept,) = _files(ctx, qw, rid).values()
    assert kept.withdrawn  # kept, marked, for the checkers
    with pytest.raises(WorkflowError, match="at least one output"):
        service.resubmit(ctx, qw.author, rid, comment="withdrawn")


def test_the_return_loop(ctx: Context, qw: QueueWorld) -> None:
    one, two = distinct(passing_output(qw)), distinct(passing_output(qw, "second.csv"))
    rid = make_request(ctx, qw, Status.SUBMITTED, outputs=(one, two))
    files = {f.name: f.id for f in service.get_request(ctx, qw.checker_a, rid).files}
    for checker in (qw.checker_a, qw.checker_b):
        service.vote(ctx, checker, rid, files["by-region.csv"], "approve")
        service.vote(
            ctx, checker, rid, files["second.csv"], "request_changes", comment="round these"
        )
        service.submit_review(ctx, checker, rid)
    with pytest.raises(WorkflowError, match="public comment for the author on group"):
        service.comment(
            ctx, qw.checker_a, rid, body="private", group="tables", visibility="private"
        )
        service.return_request(ctx, qw.checker_a, rid)
    service.return_request(ctx, qw.checker_a, rid, comment="Please round second.csv")
    with pytest.raises(WorkflowError, match="explain your changes in a public comment"):
        service.resubmit(ctx, qw.author, rid)
    updated = table_output(qw, "second.csv", index=("sex",))
    service.update_file(
        ctx,
        qw.author,
        rid,
        files["second.csv"],
        data=updated.data,
        record=updated.record,
        recipe=updated.recipe,
    )
    versions = _files(ctx, qw, rid)["second.csv"].versions
    assert [v.turn for v in versions] == [0, 2]
    service.resubmit(ctx, qw.author, rid, comment="Rounded, and by sex now")
    detail = service.get_request(ctx, qw.checker_a, rid)
    assert detail.summary.turn == 3
    votes = {(v.file_id, v.reviewer): v.vote for v in detail.votes}
    assert votes[(files["by-region.csv"], qw.checker_a)] == "approved"  # survived
    assert (files["second.csv"], qw.checker_a) not in votes  # updated: reset
    assert {c.body for c in detail.comments} >= {"Rounded, and by sex now"}


def test_moving_a_file_resets_its_votes(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.RETURNED)
    file_id = next(iter(_files(ctx, qw, rid).values())).id
    moved = service.move_file(ctx, qw.author, rid, file_id, group="other")
    assert moved.group == "other" and moved.content_turn == 2
    with pytest.raises(InvalidInput, match="carries a checker record"):
        service.move_file(ctx, qw.author, rid, file_id, kind="supporting")


def test_released_bytes_come_back_only_as_supporting(ctx: Context, qw: QueueWorld) -> None:
    released = make_request(ctx, qw, Status.RELEASED)
    file_id = service.get_request(ctx, qw.author, released).files[0].id
    data = service.download_release(ctx, qw.author, file_id).data
    rid = service.create_request(ctx, qw.author, project=qw.project).id
    with pytest.raises(InvalidInput, match="already released"):
        service.add_file(ctx, qw.author, rid, name="again.csv", data=data)
    service.add_file(ctx, qw.author, rid, name="again.csv", data=data, kind="supporting")


def test_withdrawing_a_request(ctx: Context, qw: QueueWorld) -> None:
    rid = make_request(ctx, qw, Status.RETURNED)
    assert service.withdraw(ctx, qw.author, rid).status is Status.WITHDRAWN
    with pytest.raises(WorkflowError):
        service.add_file(ctx, qw.author, rid, name="late.txt", data=b"x")


def test_an_unknown_or_malformed_id_is_not_found(ctx: Context, qw: QueueWorld) -> None:
    from output_checker.queue.errors import NotFound

    for rid in ("nope", "00000000-0000-4000-8000-000000000000", "' OR 1=1 --"):
        with pytest.raises(NotFound):
            service.get_request(ctx, qw.author, rid)


def test_a_supporting_file_carries_no_record(ctx: Context, qw: QueueWorld) -> None:
    rid = service.create_request(ctx, qw.author, project=qw.project).id
    out = passing_output(qw)
    with pytest.raises(InvalidInput, match="supporting files carry no checker record"):
        service.add_file(
            ctx, qw.author, rid, name=out.name, data=out.data, kind="supporting", record=out.record
        )
    free = Output("readme.txt", b"plain", None, None)
    service.add_file(ctx, qw.author, rid, name=free.name, data=free.data)
    assert _files(ctx, qw, rid)["readme.txt"].recheck == "not_machine_checkable"
