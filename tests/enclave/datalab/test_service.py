"""The data lab's service layer on the synthetic justice enclave: uploads validated and kept
privately, only the project's data lab clients let in (each to their own uploads), a refusal
recorded with its counts and nothing sent to the queue, and the upload destroyed and audited.
The whole way to a released report is in ``test_web``."""

from __future__ import annotations

import socket
import stat
from collections.abc import Iterator

import pytest

from enclave.control.audit import records
from enclave.control.context import Context
from enclave.control.errors import InvalidInput, NotFound, PermissionDenied
from enclave.datalab import service
from enclave.datalab.jobs import Store
from enclave.datalab.locate import AUDIT_ACTION
from output_checker.queue import service as queue
from tests.enclave.datalab.conftest import DataLab
from tests.enclave.datalab.test_pipeline import provider_rows

HEADER = "Forename,Surname,Date of birth,Sex,Intervention start\n"


@pytest.fixture
def ctx(lab: DataLab) -> Iterator[Context]:
    context = lab.enclave.context()
    yield context
    context.close()


def cohort_csv(lab: DataLab, rows: int | None = None) -> bytes:
    people = provider_rows(lab.enclave).drop(columns=["_record_key"])
    return (people.head(rows) if rows else people).to_csv(index=False).encode()


def test_a_bad_file_is_reported_by_line_and_not_kept(lab: DataLab, ctx: Context) -> None:
    data = (HEADER + "Ann,Smith,01/02/1980,F,2021-03-04\nBob,,31/02/1980,M,2021-03-04\n").encode()
    found = service.upload_cohort(
        ctx, lab.client, project=lab.project, filename="../list.csv", data=data
    )
    assert found.id is None and found.filename == "list.csv"
    problems = [str(p) for p in found.report.problems]
    assert problems and all(p.startswith("list.csv:3") for p in problems)
    assert not any("Bob" in p or "31/02" in p for p in problems)  # lines, never values
    uploads = Store.for_data_dir(ctx.data_dir).root / "uploads"
    assert not list(uploads.glob("*.csv"))


def test_a_valid_file_is_kept_privately(lab: DataLab, ctx: Context) -> None:
    found = service.upload_cohort(
        ctx, lab.client, project=lab.project, filename="clients.csv", data=cohort_csv(lab)
    )
    assert found.id is not None and found.report.ok
    assert found.report.rows_accepted == len(provider_rows(lab.enclave))
    store = Store.for_data_dir(ctx.data_dir)
    kept = store.cohort_path(found.id)
    assert kept.read_bytes() == cohort_csv(lab)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    # outside the linkage zones and the projects' areas that sessions and the queue read
    assert {"linkage", "projects"}.isdisjoint(kept.relative_to(ctx.data_dir).parts)
    again = service.get_upload(ctx, lab.client, found.id)
    assert again.report.rows_accepted == found.report.rows_accepted


@pytest.mark.parametrize("who", ["researcher", "stranger", "checker"])
def test_only_the_projects_data_lab_clients_may_upload(
    lab: DataLab, ctx: Context, who: str
) -> None:
    actor = lab.checkers[0] if who == "checker" else getattr(lab, who)
    before = len(records(ctx.engine, action=service.UPLOADED))
    with pytest.raises(PermissionDenied):
        service.upload_cohort(
            ctx, actor, project=lab.project, filename="c.csv", data=cohort_csv(lab, 70)
        )
    refused = records(ctx.engine, action=service.UPLOADED)[before:]
    assert [(r.actor, r.outcome) for r in refused] == [(actor, "refused")]


def test_a_client_cannot_use_another_clients_upload(lab: DataLab, ctx: Context) -> None:
    mine = service.upload_cohort(
        ctx, lab.client, project=lab.project, filename="c.csv", data=cohort_csv(lab, 70)
    )
    assert mine.id is not None
    with pytest.raises(NotFound):
        service.get_upload(ctx, lab.other_client, mine.id)
    with pytest.raises(NotFound):
        service.submit_evaluation(
            ctx, lab.other_client, upload_id=mine.id, programme="Theirs", description="",
            background=False,
        )  # fmt: skip
    with pytest.raises(NotFound):
        service.submit_evaluation(
            ctx, lab.client, upload_id="../../etc/passwd", programme="x", description="",
            background=False,
        )  # fmt: skip


def test_an_oversized_file_is_refused(lab: DataLab, ctx: Context) -> None:
    data = cohort_csv(lab) * (service.MAX_UPLOAD_BYTES // len(cohort_csv(lab)) + 1)
    with pytest.raises(InvalidInput, match="over the limit"):
        service.upload_cohort(ctx, lab.client, project=lab.project, filename="c.csv", data=data)


def test_a_cohort_of_40_is_refused_with_counts_and_nothing_queued(
    lab: DataLab, ctx: Context
) -> None:
    upload = service.upload_cohort(
        ctx, lab.client, project=lab.project, filename="small.csv", data=cohort_csv(lab, 40)
    )
    assert upload.id is not None
    requests_before = queue.list_requests(ctx, lab.client)
    destroyed_before = len(records(ctx.engine, action=AUDIT_ACTION))
    queued = service.submit_evaluation(
        ctx, lab.client, upload_id=upload.id, programme="Mentoring", description="Weekly",
        background=False,
    )  # fmt: skip
    assert queued.status == "queued" and queued.running
    with pytest.raises(InvalidInput, match="submitted already"):
        service.submit_evaluation(
            ctx, lab.client, upload_id=upload.id, programme="Again", description="",
            background=False,
        )  # fmt: skip
    done = service.run_evaluation(ctx, upload.id)
    assert done.status == service.REFUSED
    assert "fewer than 60" in done.reason
    assert done.counts["submitted"] == 40 and done.counts["matched"] < 60
    assert done.request_id is None
    assert service.get_evaluation(ctx, lab.client, upload.id) == done
    assert queue.list_requests(ctx, lab.client) == requests_before  # nothing reached the queue
    # the identifiers are gone, and that is on the record
    assert not Store.for_data_dir(ctx.data_dir).cohort_path(upload.id).exists()
    assert len(records(ctx.engine, action=AUDIT_ACTION)) == destroyed_before + 1
    (gone,) = [r for r in records(ctx.engine, action=service.DESTROYED) if r.target == upload.id]
    assert gone.actor == lab.client and gone.detail["deleted"] is True
    (ended,) = [r for r in records(ctx.engine, action=service.FINISHED) if r.target == upload.id]
    assert ended.outcome == "refused" and ended.detail["submitted"] == 40
    with pytest.raises(NotFound):
        service.get_evaluation(ctx, lab.other_client, upload.id)


def test_an_evaluation_whose_worker_died_shows_as_failed(lab: DataLab, ctx: Context) -> None:
    upload = service.upload_cohort(
        ctx, lab.client, project=lab.project, filename="c.csv", data=cohort_csv(lab, 70)
    )
    assert upload.id is not None
    service.submit_evaluation(
        ctx, lab.client, upload_id=upload.id, programme="Crashed", description="",
        background=False,
    )  # fmt: skip
    store = Store.for_data_dir(ctx.data_dir)
    record = store.load("evaluations", upload.id)
    assert record is not None
    dead = 2**22 + 1  # above the kernel's default pid_max: no such process
    worker = f"{socket.gethostname()}:{dead}"
    store.save("evaluations", {**record, "status": "matching", "worker": worker})
    shown = service.get_evaluation(ctx, lab.client, upload.id)
    assert shown.status == service.FAILED and "interrupted" in shown.reason
