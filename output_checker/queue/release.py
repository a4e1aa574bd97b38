"""The release worker: copies approved outputs to the released area and finishes the release.

For every APPROVED request of an active project, each output not yet released is copied from
its **reviewed snapshot** (never the workspace or outbox file) to
``<data_dir>/released/<project>/<request>/<name>``: the snapshot is re-hashed, written under a
temporary name, fsynced, renamed, and the copy re-hashed. A copy already present with the
same hash counts as done, so the worker is idempotent and several may run at once; a
different file in the way is an error, never overwritten. Failures are recorded per item and
retried with capped exponential backoff. When every item is copied the worker writes
``.release-manifest.json`` (every name and hash) and moves the request to RELEASED, then
counts the release in the control plane's public register.

Every attempt, copy, failure and the final transition go into the audit log, in the
transaction of the change they record, acting as the checker who approved the release.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import ControlError
from enclave.control.models import Project
from enclave.control.service import access
from enclave.control.service.standing import release_standing
from output_checker.queue import models as m
from output_checker.queue.errors import IntegrityFailure
from output_checker.queue.policies import Attempt, check_precondition
from output_checker.queue.service._base import move, person_email, record, request_facts
from output_checker.queue.service.releases import released_dir
from output_checker.queue.storage import BlobStore, file_sha256, write_atomically
from output_checker.queue.workflow import Party, Status, check_transition

log = logging.getLogger(__name__)
RELEASE_MANIFEST = ".release-manifest.json"
WRITABLE = "active"


@dataclass(frozen=True)
class Backoff:
    """Delay before retrying an item after ``attempts`` failures: base · 2^(attempts-1),
    at most ``cap`` seconds (Airlock retries every 60 s forever; this backs off, then holds)."""

    base: float = 60.0
    cap: float = 3600.0

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.cap, self.base * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class ReleaseOutcome:
    """What one pass of the worker did for one request."""

    request_id: str
    status: str
    copied: int
    pending: int
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Item:
    id: int
    file: str
    sha256: str


@dataclass(frozen=True)
class _Plan:
    request_id: str
    project: str
    project_state: str
    status: str
    revoked: bool
    due: tuple[_Item, ...]
    pending: int
    held: str = ""  # why the release is held (a lapse, a freeze, a sanction), if it is


def _plan(ctx: Context, request_id: str, backoff: Backoff) -> _Plan | None:
    now = ctx.now()
    with transaction(ctx.engine, readonly=True) as session:
        request = session.scalar(select(m.Request).where(m.Request.uuid == request_id))
        release = session.scalar(
            select(m.Release).where(m.Release.request_id == (request.id if request else -1))
        )
        if request is None or release is None:
            return None
        project = session.get_one(Project, request.project_id)
        rows = session.execute(
            select(m.ReleaseItem, m.File.name)
            .join(m.File, m.File.id == m.ReleaseItem.file_id)
            .where(m.ReleaseItem.release_id == release.id, m.ReleaseItem.uploaded_at.is_(None))
            .order_by(m.ReleaseItem.id)
        ).all()
        due = tuple(
            _Item(item.id, name, item.sha256)
            for item, name in rows
            if item.last_attempt_at is None
            or item.last_attempt_at + backoff.delay(item.attempts) <= now
        )
        standing = release_standing(session, project, request.author_id, ctx.today(), ctx.policy)
        return _Plan(
            request_id,
            project.slug,
            project.state,
            request.status,
            release.revoked_at is not None,
            due,
            len(rows),
            "" if standing.ok else f"release held ({standing.rule}): {standing.reason}",
        )


def _context(session: Session, request_id: str) -> tuple[m.Request, m.Release, str, str]:
    request = session.scalar(select(m.Request).where(m.Request.uuid == request_id))
    assert request is not None
    release = session.scalar(select(m.Release).where(m.Release.request_id == request.id))
    assert release is not None
    project = session.get_one(Project, request.project_id)
    return request, release, project.slug, person_email(session, release.approved_by_id)


def _copy(ctx: Context, plan: _Plan, item: _Item) -> str:
    """Attempt one copy; returns "" on success, else the error (all recorded and audited).
    An item another worker finished meanwhile is left alone."""
    with transaction(ctx.engine) as session:
        request, _, project, actor = _context(session, plan.request_id)
        row = session.get_one(m.ReleaseItem, item.id)
        if row.uploaded_at is not None:
            return ""
        row.attempts += 1
        row.last_attempt_at = ctx.now()
        session.flush()
        record(
            session,
            ctx,
            actor,
            "queue_upload_attempt",
            request,
            project,
            file=item.file,
            sha256=item.sha256,
            attempt=row.attempts,
            via="release_worker",
        )
    destination = released_dir(ctx.data_dir, plan.project, plan.request_id) / item.file
    error = ""
    try:
        if not (destination.is_file() and file_sha256(destination) == item.sha256):
            if destination.exists() or destination.is_symlink():
                raise IntegrityFailure(f"a different file is already at {item.file}")
            BlobStore.for_data_dir(ctx.data_dir).copy_to(item.sha256, destination)
    except (ControlError, OSError) as failure:
        error = str(failure) or type(failure).__name__
    with transaction(ctx.engine) as session:
        request, _, project, actor = _context(session, plan.request_id)
        row = session.get_one(m.ReleaseItem, item.id)
        if row.uploaded_at is not None:  # another worker recorded it first
            return ""
        if not error and request.status != Status.APPROVED.value:
            destination.unlink(missing_ok=True)  # revoked meanwhile: nothing may stay out
            error = f"the request became {request.status} during the copy"
        if error:
            row.last_error = error[:2000]
            record(
                session,
                ctx,
                actor,
                "queue_upload_failed",
                request,
                project,
                file=item.file,
                sha256=item.sha256,
                error=row.last_error,
            )
        else:
            row.uploaded_at, row.last_error = ctx.now(), ""
            released = session.get_one(m.File, row.file_id)
            released.released_at = row.uploaded_at
            record(
                session,
                ctx,
                actor,
                "queue_file_released",
                request,
                project,
                file=item.file,
                sha256=item.sha256,
            )
        session.flush()
    return error


def _finish(ctx: Context, plan: _Plan) -> str:
    """Write the release manifest and move the request to RELEASED; returns its status."""
    with transaction(ctx.engine) as session:
        request, release, project, actor = _context(session, plan.request_id)
        if request.status != Status.APPROVED.value:
            return request.status
        items = session.execute(
            select(m.ReleaseItem, m.File)
            .join(m.File, m.File.id == m.ReleaseItem.file_id)
            .where(m.ReleaseItem.release_id == release.id)
            .order_by(m.ReleaseItem.id)
        ).all()
        pending = sum(item.uploaded_at is None for item, _ in items)
        transition = check_transition(Status.APPROVED, Status.RELEASED, Party.SYSTEM)
        facts = request_facts(session, request)
        check_precondition(transition, replace(facts, pending_uploads=pending), Attempt(actor))
        files = [{"name": f.name, "sha256": item.sha256, "size": f.size} for item, f in items]
        release.completed_at = ctx.now()
        move(
            session,
            ctx,
            actor,
            request,
            project,
            transition,
            release=release.uuid,
            files={f["name"]: f["sha256"] for f in files},
            via="release_worker",
        )
        manifest = {
            "request": request.uuid,
            "release": release.uuid,
            "project": project,
            "approved_by": actor,
            "completed_at": release.completed_at.isoformat(),
            "files": files,
        }
        # Written before the commit: if it fails the request stays APPROVED and is retried.
        write_atomically(
            released_dir(ctx.data_dir, project, request.uuid) / RELEASE_MANIFEST,
            (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(),
            mode=0o444,
        )
        return Status.RELEASED.value


def _register(ctx: Context, request_id: str) -> None:
    """Count a completed release in the control plane's public register, once: the release
    is claimed in a write transaction first (writes are serialised, so two workers cannot
    both claim it), and the claim is given back if the control plane refuses."""
    with transaction(ctx.engine) as session:
        _request, release, project, actor = _context(session, request_id)
        if release.completed_at is None or release.registered_at is not None:
            return
        release.registered_at = ctx.now()
        release_pk = release.id
        names = list(
            session.scalars(
                select(m.File.name)
                .join(m.ReleaseItem, m.ReleaseItem.file_id == m.File.id)
                .where(m.ReleaseItem.release_id == release.id)
            )
        )
    try:
        access.release_output(ctx, actor, project, request_id=request_id, files=names)
    except ControlError as error:  # e.g. the project was suspended since: retried next pass
        log.warning("release %s not yet counted in the register: %s", request_id, error)
        with transaction(ctx.engine) as session:
            session.get_one(m.Release, release_pk).registered_at = None


def release_request(
    ctx: Context, request_id: str, *, backoff: Backoff = Backoff()
) -> ReleaseOutcome:
    """Copy what is due of one approved request and finish it when everything is out.

    Does nothing for a request that is not APPROVED (already released, revoked ...) or whose
    project is not active (releases stop while a project is suspended), and holds (with the
    reason in ``errors``) one whose project is not in standing (lapsed compliance, a freeze)
    or whose author is sanctioned (``enclave.control.service.standing.release_standing``).
    """
    plan = _plan(ctx, request_id, backoff)
    if plan is None:
        return ReleaseOutcome(request_id, "unknown", 0, 0)
    if plan.status == Status.RELEASED.value:
        _register(ctx, request_id)
    if plan.status != Status.APPROVED.value or plan.revoked or plan.project_state != WRITABLE:
        return ReleaseOutcome(request_id, plan.status, 0, plan.pending)
    if plan.held:  # copied on a later pass, once the project and its author are in standing
        log.warning("release %s: %s", request_id, plan.held)
        return ReleaseOutcome(request_id, plan.status, 0, plan.pending, (plan.held,))
    errors = [error for item in plan.due if (error := _copy(ctx, plan, item))]
    pending = plan.pending - (len(plan.due) - len(errors))
    status = plan.status
    if pending == 0:
        try:
            status = _finish(ctx, plan)
        except (ControlError, OSError) as error:
            errors.append(str(error))
        if status == Status.RELEASED.value:
            _register(ctx, request_id)
    return ReleaseOutcome(request_id, status, len(plan.due) - len(errors), pending, tuple(errors))


def release_approved(ctx: Context, *, backoff: Backoff = Backoff()) -> list[ReleaseOutcome]:
    """One pass over every APPROVED request (and released ones not yet registered)."""
    with transaction(ctx.engine, readonly=True) as session:
        ids = list(
            session.scalars(
                select(m.Request.uuid)
                .join(m.Release, m.Release.request_id == m.Request.id)
                .where(
                    (m.Request.status == Status.APPROVED.value)
                    | (
                        (m.Request.status == Status.RELEASED.value)
                        & m.Release.registered_at.is_(None)
                    )
                )
                .order_by(m.Release.approved_at)
            )
        )
    return [release_request(ctx, request_id, backoff=backoff) for request_id in ids]


def run(
    ctx: Context, stop: threading.Event, *, interval: float = 60.0, backoff: Backoff = Backoff()
) -> None:
    """Release in a loop every ``interval`` seconds until ``stop`` is set; a failing pass is
    logged and retried, never fatal."""
    while not stop.is_set():
        try:
            release_approved(ctx, backoff=backoff)
        except Exception:  # keep the worker alive: the next pass retries
            log.exception("release pass failed")
        stop.wait(interval)


def released_path(data_dir: Path, project: str, request_id: str, name: str) -> Path:
    """Where a released file is (for operators and tests)."""
    return released_dir(data_dir, project, request_id) / name
