"""The data lab's service layer: a client's upload, its evaluation and the report's way out
through the review queue. The web pages only call these functions.

Rules, all here:

- Only a person with the standing role ``datalab_client``, accredited today and an open
  ``datalab_client`` member of an active project, may upload to that project, submit, or see
  anything; an upload or evaluation of someone else is ``NotFound`` (its existence is not
  revealed). Refusals are audited.
- An upload is validated at once (``check_cohort``); only a valid one is kept, as a 0600 file
  in the data lab's private area (``jobs.Store``), never served back. Its validation report
  (counts; problems by file and line, never values) is what the client sees.
- ``submit_evaluation`` records a queued evaluation (one per upload) and, by default, runs it
  in a background thread of this process: match (``locate``), evaluate, render. The uploaded
  file is deleted as soon as matching has ended, however it ended, and that is audited.
- A report that renders becomes a release request in the review queue, authored by the client,
  with the PDF as its one output and the checker's verdicts on its counts as a supporting
  file; it is submitted at once. A refusal (fewer than 60 matched, balance, a count the
  checker fails) is recorded for the client with its counts: no report, nothing queued.

The evaluation's status moves ``queued`` -> ``matching`` -> ``evaluating`` -> ``report`` ->
``in review``, or ends ``refused`` or ``failed``; the record is rewritten atomically at each
step, so the page that polls it never sees half of one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import ControlError, InvalidInput, NotFound, PermissionDenied
from enclave.control.models import Membership, Person, Project
from enclave.control.rules import ProjectState, Role
from enclave.control.service._base import load_actor
from enclave.control.service.members import check_accredited
from enclave.control.service.projects import project_parameters
from enclave.control.views import project_view
from enclave.datalab.cohort import CohortInvalid, ValidationReport
from enclave.datalab.errors import DataLabError, TooFewMatched
from enclave.datalab.jobs import AlreadyExists, Store, check_id
from output_checker.parameters import Parameters

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # about 50,000 people: far more than any programme
MAX_FILENAME = 100
MAX_PROGRAMME = 150
MAX_DESCRIPTION = 2_000
REPORT_NAME = "impact-evaluation.pdf"
EVIDENCE_NAME = "checker-evidence.json"
GROUP = "report"

QUEUED, MATCHING, EVALUATING, REPORT = "queued", "matching", "evaluating", "report"
IN_REVIEW, REFUSED, FAILED = "in review", "refused", "failed"
RUNNING = frozenset({QUEUED, MATCHING, EVALUATING, REPORT})
UPLOADED, DESTROYED = "datalab_upload", "datalab_upload_destroyed"
SUBMITTED, FINISHED = "datalab_evaluation_submit", "datalab_evaluation"

_one_at_a_time = threading.Lock()  # two evaluations at once would starve a small machine


@dataclass(frozen=True)
class Upload:
    """A checked upload: ``id`` is None when it had problems (it was not kept)."""

    id: str | None
    project: str
    filename: str
    report: ValidationReport


@dataclass(frozen=True)
class EvaluationView:
    """What the client sees of an evaluation: its status, and when it ended, the reason and
    counts of a refusal or the queue request that carries the report."""

    id: str
    project: str
    programme: str
    description: str
    filename: str
    status: str
    reason: str
    counts: Mapping[str, int]
    request_id: str | None
    submitted_at: str
    updated_at: str

    @property
    def running(self) -> bool:
        return self.status in RUNNING


# ----- who may act ---------------------------------------------------------------------------


def _audit(
    ctx: Context, actor: str, action: str, *, outcome: str = "ok", target: str = "",
    project: str | None = None, **detail: Any,
) -> None:  # fmt: skip
    with transaction(ctx.engine) as session:
        audit.append(
            session, at=ctx.now(), actor=actor, action=action, outcome=outcome, target=target,
            project=project, detail=detail,
        )  # fmt: skip


def _client_projects(session: Session, person: Person, today: date) -> list[str]:
    """Active projects the person is an open data-lab-client member of."""
    rows = session.scalars(
        select(Project.slug)
        .join(Membership, Membership.project_id == Project.id)
        .where(
            Membership.person_id == person.id,
            Membership.role == Role.DATALAB_CLIENT.value,
            Membership.removed_at.is_(None),
            Membership.expires_on >= today,
            Project.state == ProjectState.ACTIVE.value,
        )
        .order_by(Project.slug)
    )
    return list(dict.fromkeys(rows))


def _client(session: Session, ctx: Context, actor: str) -> Person:
    person = load_actor(session, actor)
    if Role.DATALAB_CLIENT.value not in person.role_names:
        raise PermissionDenied("the data lab is for data lab clients", rule="role")
    check_accredited(person, ctx.today())
    return person


def _as_client(
    ctx: Context, actor: str, action: str, work: Callable[[Session, Person], T], target: str = ""
) -> T:
    """Run ``work`` read-only as the client ``actor``; a refusal is audited and re-raised."""
    try:
        with transaction(ctx.engine, readonly=True) as session:
            return work(session, _client(session, ctx, actor))
    except ControlError as error:
        _audit(ctx, actor, action, outcome="refused", target=target, rule=error.rule)
        raise


def _some_projects(session: Session, ctx: Context, me: Person) -> list[str]:
    found = _client_projects(session, me, ctx.today())
    if not found:
        raise PermissionDenied(
            f"{me.email} is not a data lab client of any active project", rule="membership"
        )
    return found


def client_projects(ctx: Context, actor: str) -> list[str]:
    """The projects ``actor`` may upload to; PermissionDenied unless a data lab client of at
    least one active project."""
    return _as_client(ctx, actor, "datalab_read", lambda s, me: _some_projects(s, ctx, me))


def _check_member(session: Session, ctx: Context, me: Person, project: str) -> None:
    if project not in _client_projects(session, me, ctx.today()):
        raise PermissionDenied(
            f"{me.email} is not a data lab client of an active project {project!r}",
            rule="membership",
        )


def _text(value: str, what: str, limit: int, *, one_line: bool = True) -> str:
    """``value`` cleaned: one line (a name), or stripped paragraphs (a description, which
    may be empty)."""
    text = " ".join(value.split()) if one_line else value.strip()
    required = one_line
    if required and not text:
        raise InvalidInput(f"the {what} must be given", rule="required")
    if len(text) > limit or not text.replace("\n", " ").replace("\r", " ").isprintable():
        raise InvalidInput(f"the {what} must be printable text of at most {limit} characters")
    return text


def _filename(value: str) -> str:
    name = Path(value.replace("\\", "/")).name.strip() or "cohort.csv"
    if len(name) > MAX_FILENAME or not name.isprintable():
        raise InvalidInput(f"the file name must be printable, at most {MAX_FILENAME} characters")
    return name


# ----- upload and submit ---------------------------------------------------------------------


def upload_cohort(ctx: Context, actor: str, *, project: str, filename: str, data: bytes) -> Upload:
    """Validate an uploaded cohort file for ``project``; keep it (privately) if it is valid.

    Raises PermissionDenied unless ``actor`` is a data lab client of the active project,
    InvalidInput for an empty or oversized file or a bad name.
    """
    from enclave.datalab.cohort import check_cohort

    label = _filename(filename)
    _as_client(ctx, actor, UPLOADED, lambda s, me: _check_member(s, ctx, me, project), project)
    if not data:
        raise InvalidInput("the file is empty", rule="file_size")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInput(
            f"the file is over the limit of {MAX_UPLOAD_BYTES // (1024 * 1024)} MB",
            rule="file_size",
        )
    store = Store.for_data_dir(ctx.data_dir)
    upload_id = str(uuid.uuid4())
    path = store.write_cohort(upload_id, data)
    try:
        report = check_cohort(path, today=ctx.today(), label=label).report
    except CohortInvalid as error:
        store.destroy_cohort(upload_id)  # a file with problems is not kept
        return Upload(None, project, label, error.report)
    except BaseException:
        store.destroy_cohort(upload_id)
        raise
    store.save(
        "uploads",
        {"id": upload_id, "owner": actor, "project": project, "filename": label,
         "report": report.to_json(), "uploaded_at": ctx.now().isoformat()},
        new=True,
    )  # fmt: skip
    _audit(ctx, actor, UPLOADED, target=upload_id, project=project, people=report.rows_accepted)
    return Upload(upload_id, project, label, report)


def _own(record: dict[str, Any] | None, actor: str, what: str) -> dict[str, Any]:
    if record is None or record.get("owner") != actor:
        raise NotFound(f"no such {what}", rule="not_found")
    return record


def _id(value: str, what: str) -> str:
    try:
        return check_id(value)
    except DataLabError:
        raise NotFound(f"no such {what}", rule="not_found") from None


def submit_evaluation(
    ctx: Context,
    actor: str,
    *,
    upload_id: str,
    programme: str,
    description: str,
    background: bool = True,
) -> EvaluationView:
    """Queue the evaluation of ``actor``'s upload and, with ``background``, start it in a
    thread of this process (else the caller runs ``run_evaluation``). An upload is evaluated
    once: Conflict-like InvalidInput if it was submitted already."""
    name = _text(programme, "programme", MAX_PROGRAMME)
    text = _text(description, "description", MAX_DESCRIPTION, one_line=False)
    store = Store.for_data_dir(ctx.data_dir)
    key = _id(upload_id, "upload")

    def check(session: Session, me: Person) -> dict[str, Any]:
        upload = _own(store.load("uploads", key), actor, "upload")
        _check_member(session, ctx, me, upload["project"])
        return upload

    upload = _as_client(ctx, actor, SUBMITTED, check, key)
    now = ctx.now().isoformat()
    record = {
        "id": key, "owner": actor, "project": upload["project"], "programme": name,
        "description": text, "filename": upload["filename"], "status": QUEUED, "reason": "",
        "counts": {"submitted": upload["report"]["rows_accepted"]}, "request_id": None,
        "submitted_at": now, "updated_at": now, "worker": _worker() if background else "",
    }  # fmt: skip
    try:
        store.save("evaluations", record, new=True)
    except AlreadyExists:
        raise InvalidInput("this upload has been submitted already", rule="duplicate") from None
    _audit(ctx, actor, SUBMITTED, target=key, project=upload["project"], programme=name)
    if background:
        threading.Thread(
            target=run_evaluation, args=(ctx, key), name=f"datalab-{key[:8]}", daemon=True
        ).start()
    return _view(record)


# ----- reads ---------------------------------------------------------------------------------


def _worker() -> str:
    """This process, as a running evaluation records it (to tell when it has died)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _interrupted(record: dict[str, Any]) -> bool:
    """A running evaluation whose worker process on this machine has gone."""
    host, _, pid = str(record.get("worker", "")).rpartition(":")
    if record["status"] not in RUNNING or host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _view(record: dict[str, Any]) -> EvaluationView:
    status, reason = record["status"], record["reason"]
    if _interrupted(record):
        status, reason = FAILED, "the evaluation was interrupted: upload the list again"
    return EvaluationView(
        id=record["id"], project=record["project"], programme=record["programme"],
        description=record["description"], filename=record["filename"], status=status,
        reason=reason, counts=dict(record["counts"]), request_id=record["request_id"],
        submitted_at=record["submitted_at"], updated_at=record["updated_at"],
    )  # fmt: skip


def get_evaluation(ctx: Context, actor: str, evaluation_id: str) -> EvaluationView:
    """One of ``actor``'s evaluations (NotFound for anyone else's)."""
    store = Store.for_data_dir(ctx.data_dir)
    key = _id(evaluation_id, "evaluation")

    def mine(session: Session, me: Person) -> EvaluationView:
        record = _own(store.load("evaluations", key), actor, "evaluation")
        _check_member(session, ctx, me, record["project"])
        return _view(record)

    return _as_client(ctx, actor, "datalab_read", mine, key)


def list_evaluations(ctx: Context, actor: str) -> list[EvaluationView]:
    """``actor``'s evaluations, newest first."""
    store = Store.for_data_dir(ctx.data_dir)

    def mine(session: Session, me: Person) -> list[EvaluationView]:
        projects = set(_some_projects(session, ctx, me))
        found = [
            r
            for r in store.records("evaluations")
            if r.get("owner") == actor and r.get("project") in projects
        ]
        return [_view(r) for r in sorted(found, key=lambda r: r["submitted_at"], reverse=True)]

    return _as_client(ctx, actor, "datalab_read", mine)


def get_upload(ctx: Context, actor: str, upload_id: str) -> Upload:
    """One of ``actor``'s kept uploads (NotFound for anyone else's)."""
    store = Store.for_data_dir(ctx.data_dir)
    key = _id(upload_id, "upload")

    def mine(session: Session, me: Person) -> dict[str, Any]:
        record = _own(store.load("uploads", key), actor, "upload")
        _check_member(session, ctx, me, record["project"])
        return record

    record = _as_client(ctx, actor, "datalab_read", mine, key)
    saved = record["report"]
    report = ValidationReport(
        saved["file"], saved["rows_read"], saved["rows_accepted"], saved["duplicates_merged"], ()
    )
    return Upload(key, record["project"], record["filename"], report)


# ----- the worker ----------------------------------------------------------------------------


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """One BLAS thread, as the CLI: competing threads slow the propensity fit tenfold."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _update(ctx: Context, store: Store, record: dict[str, Any], **changes: Any) -> None:
    record.update(changes, updated_at=ctx.now().isoformat())
    store.save("evaluations", record)


def _organisation(ctx: Context, email: str, project: str) -> tuple[str, Parameters]:
    with transaction(ctx.engine, readonly=True) as session:
        person = load_actor(session, email)
        row = session.scalar(select(Project).where(Project.slug == project))
        if row is None:
            raise NotFound(f"unknown project {project!r}", rule="unknown_project")
        return person.organisation, project_parameters(project_view(row))


def run_evaluation(ctx: Context, evaluation_id: str) -> EvaluationView:
    """Run a queued evaluation to its end (in review, refused or failed); never raises for
    a refusal or failure of the evaluation itself, which is recorded instead."""
    store = Store.for_data_dir(ctx.data_dir)
    record = store.load("evaluations", check_id(evaluation_id))
    if record is None or record["status"] != QUEUED:
        raise InvalidInput("no queued evaluation with this id", rule="status")
    with _one_at_a_time, _one_blas_thread():
        record["worker"] = _worker()
        try:
            _run(ctx, store, record)
        except (DataLabError, ControlError) as error:
            _refused(ctx, store, record, error)
        except Exception as error:
            log.error("data lab evaluation %s failed: %s", record["id"], type(error).__name__)
            _update(ctx, store, record, status=FAILED, reason="the evaluation failed")
            _audit(
                ctx, record["owner"], FINISHED, outcome="failed", target=record["id"],
                project=record["project"], error=type(error).__name__,
            )  # fmt: skip
    return _view(record)


def _refused(ctx: Context, store: Store, record: dict[str, Any], error: Exception) -> None:
    counts = dict(record["counts"])
    if isinstance(error, TooFewMatched):
        counts.update(matched=error.count, minimum=error.minimum)
    elif isinstance(error, CohortInvalid):
        counts.update(problems=len(error.report.problems))
    status = FAILED if isinstance(error, ControlError) else REFUSED
    _update(ctx, store, record, status=status, reason=str(error), counts=counts)
    _audit(
        ctx, record["owner"], FINISHED, outcome=status, target=record["id"],
        project=record["project"], **counts,
    )  # fmt: skip


def _run(ctx: Context, store: Store, record: dict[str, Any]) -> None:
    from enclave.datalab.cohort import check_cohort
    from enclave.datalab.evaluate import evaluate
    from enclave.datalab.locate import locate
    from enclave.datalab.report import render
    from enclave.linkage.zones import Zones

    owner, key = record["owner"], record["id"]
    organisation, parameters = _organisation(ctx, owner, record["project"])
    _update(ctx, store, record, status=MATCHING)
    try:
        cohort = check_cohort(store.cohort_path(key), today=ctx.today(), label=record["filename"])
        located = locate(cohort, Zones(ctx.data_dir), ctx=ctx, actor=owner)
        del cohort
    finally:  # however matching ended, the client's identifiers go now
        destroyed = store.destroy_cohort(key)
        _audit(ctx, owner, DESTROYED, target=key, project=record["project"], deleted=destroyed)
    _update(ctx, store, record, status=EVALUATING)
    evaluation = evaluate(
        located.cohort, located.pool, located.covariates, programme=record["programme"],
        earlier_stages=located.stages,
    )  # fmt: skip
    _update(ctx, store, record, status=REPORT, counts={
        **record["counts"], "matched": evaluation.n_treated, "comparison": evaluation.n_comparison,
    })  # fmt: skip
    rendered = render(
        evaluation, programme=record["programme"], organisation=organisation,
        parameters=parameters,
    )  # fmt: skip
    evidence = [
        {"what": c.what, "count": c.count, "status": c.status, "record": c.record}
        for c in rendered.checks
    ]
    request_id = _to_queue(ctx, record, organisation, rendered.pdf(), evidence)
    _update(ctx, store, record, status=IN_REVIEW, request_id=request_id)
    _audit(
        ctx, owner, FINISHED, target=key, project=record["project"], request=request_id,
        **record["counts"],
    )  # fmt: skip


def _to_queue(
    ctx: Context, record: dict[str, Any], organisation: str, pdf: bytes, evidence: list[Any]
) -> str:
    """Create, fill and submit the release request as the client; withdrawn if any step
    after its creation fails, so no half-built request is left."""
    from output_checker.queue import service as queue

    owner, programme = record["owner"], record["programme"]
    made = queue.create_request(
        ctx, owner, project=record["project"], title=f"Impact evaluation: {programme}"[:200]
    )
    try:
        queue.add_file(ctx, owner, made.id, name=REPORT_NAME, data=pdf, group=GROUP)
        queue.add_file(
            ctx, owner, made.id, name=EVIDENCE_NAME, kind="supporting", group=GROUP,
            data=json.dumps({"checks": evidence}, indent=1, allow_nan=False).encode("utf-8"),
        )  # fmt: skip
        queue.set_group(
            ctx, owner, made.id, GROUP,
            context=(
                f"Justice Data Lab impact evaluation of {programme}, run by {organisation}: "
                f"one-year proven reoffending of the {record['counts'].get('matched')} matched "
                "people the organisation worked with, against a matched comparison group. "
                f"{record['description']}"
            ).strip(),
            controls=(
                "Aggregate statistics only; produced in the enclave from the organisation's "
                "list, whose identifiers were destroyed after matching. Fewer than 60 matched "
                "people are refused; publication is blocked when a standardised mean "
                "difference exceeds 0.10. Every count of people passed the output checker: "
                f"its verdicts are in {EVIDENCE_NAME}."
            ),
        )  # fmt: skip
        queue.submit(ctx, owner, made.id)
    except BaseException:
        try:
            queue.withdraw(ctx, owner, made.id)
        except ControlError as error:
            log.error("data lab request %s not withdrawn: %s", made.id, error.rule)
        raise
    return made.id


__all__ = [
    "FAILED",
    "IN_REVIEW",
    "MAX_UPLOAD_BYTES",
    "REFUSED",
    "EvaluationView",
    "Upload",
    "client_projects",
    "get_evaluation",
    "get_upload",
    "list_evaluations",
    "run_evaluation",
    "submit_evaluation",
    "upload_cohort",
]
