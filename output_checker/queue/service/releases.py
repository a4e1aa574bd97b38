"""Approval, revocation and the operator's escape hatch.

``approve`` (REVIEWED -> APPROVED) creates the release and one item per output, idempotently,
after re-hashing every snapshot; the copying itself is the release worker's
(``output_checker.queue.release``). ``revoke_release`` handles a breach: the release is marked,
the request becomes REVOKED, pending copies stop and released copies are withdrawn from the
released area. ``force_status`` is the audited operator command for stuck requests; it can
never release anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.models import Person
from enclave.control.service.standing import check_release_standing
from output_checker.parameters import Parameters
from output_checker.queue import models as m
from output_checker.queue.errors import Conflict, NotFound, WorkflowError
from output_checker.queue.filetypes import filetype_of
from output_checker.queue.permissions import (
    check_can_force_status,
    check_can_review,
    check_can_revoke,
)
from output_checker.queue.policies import (
    Attempt,
    check_precondition,
    check_project_writable,
    check_reviewer_can_see,
)
from output_checker.queue.service import _files, ledger, signoffs
from output_checker.queue.service._base import (
    actor_facts,
    audit_refusal,
    clean_text,
    load_request,
    move,
    new_uuid,
    parameters_of,
    perform,
    post_comment,
    project_row,
    read,
    record,
    request_facts,
)
from output_checker.queue.service._convert import release_view, summary
from output_checker.queue.storage import BlobStore
from output_checker.queue.views import ReleaseView, RequestSummary
from output_checker.queue.workflow import (
    STATUS_OWNERS,
    CheckStatus,
    FileKind,
    Owner,
    Party,
    Status,
    Visibility,
    check_transition,
)

MAX_REASON = 20_000
LEDGER_RECHECK = "queue_ledger_recheck"
# An operator may close a stuck request, never push it towards release or reopen a turn.
FORCIBLE = frozenset({Status.WITHDRAWN, Status.REJECTED})


def released_dir(data_dir: Path, project: str, request_id: str) -> Path:
    """Where a request's released files go: ``<data_dir>/released/<project>/<request>/``."""
    return Path(data_dir) / "released" / project / request_id


def _outputs(session: Session, request: m.Request) -> list[m.File]:
    return list(
        session.scalars(
            select(m.File)
            .where(
                m.File.request_id == request.id,
                m.File.kind == FileKind.OUTPUT.value,
                m.File.withdrawn_turn.is_(None),
            )
            .order_by(m.File.id)
        )
    )


def _verified_outputs(ctx: Context, actor: str, request_id: str) -> dict[str, str]:
    """Re-hash every output's snapshot before approval: file uuid -> sha256."""

    def load(session: Session, me: Person) -> dict[str, str]:
        request = load_request(session, request_id)
        project = project_row(session, id=request.project_id)
        check_can_review(actor_facts(session, me, project, ctx.today(), request.author_id))
        return {row.uuid: row.sha256 for row in _outputs(session, request)}

    hashes = read(ctx, actor, load, event="queue_request_approve", target=request_id)
    blobs = BlobStore.for_data_dir(ctx.data_dir)
    for sha256 in hashes.values():
        blobs.read(sha256)  # IntegrityFailure if a snapshot changed
    return hashes


def _reaudit_stale(ctx: Context, actor: str, request_id: str) -> None:
    """Audit again, against the ledger as it is now, every output audited before the
    project's newest ledger entry (an approval since); Conflict, after storing the new
    verdicts, when that finds differencing the reviewers have not seen."""

    def load(session: Session, me: Person) -> tuple[str, Parameters, list[m.File], int]:
        request = load_request(session, request_id)
        project = project_row(session, id=request.project_id)
        check_can_review(actor_facts(session, me, project, ctx.today(), request.author_id))
        check_transition(Status(request.status), Status.APPROVED, Party.CHECKER)
        newest = ledger.last_entry(session, project.id)
        return project.slug, parameters_of(project), _outputs(session, request), newest

    slug, params, rows, newest = read(
        ctx, actor, load, event="queue_request_approve", target=request_id
    )
    # When any output is stale, all of them again and together, as at submission: they
    # would be released together, so a difference between two of them stays a finding.
    if not ledger.stale(rows, newest):
        return
    fresh = _files.recheck_rows(ctx, slug, params, rows)

    def work(session: Session, me: Person) -> list[str]:
        request = load_request(session, request_id)
        worse = []
        for row in _outputs(session, request):
            sha256, verdict = fresh.get(row.uuid, ("", None))
            if verdict is None or sha256 != row.sha256:
                continue
            if verdict.status is CheckStatus.FAIL and row.automated_status != CheckStatus.FAIL:
                worse.append(row.name)
            _files.apply_verdict(row, verdict, ctx)
        record(
            session, ctx, me.email, LEDGER_RECHECK, request, slug, files=sorted(fresh), worse=worse
        )
        return worse

    worse = perform(ctx, actor, LEDGER_RECHECK, work, target=request_id)
    if worse:
        error = Conflict(
            f"{', '.join(worse)} now difference with an output approved since it was checked: "
            "read the differencing findings before approving",
            rule="ledger_differencing",
        )
        audit_refusal(ctx, actor, "queue_request_approve", error, target=request_id)
        raise error


def approve(ctx: Context, actor: str, request_id: str, *, comment: str) -> ReleaseView:
    """REVIEWED -> APPROVED ("release files"): every output has at least two approvals from
    submitted reviews; ``comment`` is the overall release comment (required). Any eligible
    checker may do it, not only the two reviewers. File types and snapshot hashes are
    re-validated; the release and one item per output are created idempotently, for the
    release worker to copy."""
    text = clean_text(comment, "release comment", MAX_REASON, required=False)
    hashes = _verified_outputs(ctx, actor, request_id)
    _reaudit_stale(ctx, actor, request_id)

    def work(session: Session, me: Person) -> ReleaseView:
        request = load_request(session, request_id)
        project = project_row(session, id=request.project_id)
        check_can_review(actor_facts(session, me, project, ctx.today(), request.author_id))
        check_project_writable(project.state)
        # lapsed compliance, a freeze, a sanctioned author or checker (SATRE 1.4.02, 2.6.04)
        check_release_standing(
            session, project, request.author_id, ctx.today(), ctx.policy, approver=me
        )
        # with the custodian sign-offs the precondition asks for (SATRE 3.1.06)
        facts = signoffs.with_egress(session, request, request_facts(session, request))
        check_reviewer_can_see(facts)
        transition = check_transition(Status(request.status), Status.APPROVED, Party.CHECKER)
        check_precondition(transition, facts, Attempt(me.email, text))
        rows = _outputs(session, request)
        if {row.uuid: row.sha256 for row in rows} != hashes:
            raise Conflict("the request changed while it was being verified: approve again")
        if ledger.stale(rows, ledger.last_entry(session, project.id)):
            raise Conflict("another output was approved meanwhile: approve again")
        for row in rows:
            filetype_of(row.name)  # the allow-list, once more just before release
        release = session.scalar(select(m.Release).where(m.Release.request_id == request.id))
        if release is None:
            release = m.Release(
                uuid=new_uuid(),
                request_id=request.id,
                approved_by_id=me.id,
                approved_at=ctx.now(),
                comment=text,
                revoke_reason="",
            )
            session.add(release)
            session.flush()
        present = set(
            session.scalars(
                select(m.ReleaseItem.file_id).where(m.ReleaseItem.release_id == release.id)
            )
        )
        for row in rows:
            if row.id not in present:
                session.add(
                    m.ReleaseItem(
                        release_id=release.id,
                        file_id=row.id,
                        sha256=row.sha256,
                        attempts=0,
                        last_error="",
                    )
                )
        ledger.enter(session, ctx, release, rows)
        post_comment(session, ctx, me, request, None, text, Visibility.PUBLIC)
        move(
            session,
            ctx,
            me.email,
            request,
            project.slug,
            transition,
            release=release.uuid,
            files={row.name: row.sha256 for row in rows},
        )
        return release_view(session, release, request)

    return perform(ctx, actor, "queue_request_approve", work, target=request_id)


def revoke_release(ctx: Context, actor: str, request_id: str, *, reason: str) -> ReleaseView:
    """APPROVED or RELEASED -> REVOKED (breach handling), by an eligible checker or an admin
    with no tie to the project, with a mandatory reason. Works whatever the project's state.
    Pending copies stop, the released copies are deleted from the released area, downloads
    are refused; the audit event is the incident record (the figures are out: any ledger
    entries stay)."""
    text = clean_text(reason, "reason", MAX_REASON, required=False)

    def work(session: Session, me: Person) -> ReleaseView:
        request = load_request(session, request_id)
        project = project_row(session, id=request.project_id)
        facts = actor_facts(session, me, project, ctx.today(), request.author_id)
        check_can_revoke(facts)
        party = Party.CHECKER if facts.is_reviewer else Party.ADMIN
        transition = check_transition(Status(request.status), Status.REVOKED, party)
        check_precondition(transition, request_facts(session, request), Attempt(me.email, text))
        release = session.scalar(select(m.Release).where(m.Release.request_id == request.id))
        if release is None:
            raise NotFound("this request has no release to revoke", rule="unknown_release")
        release.revoked_at, release.revoked_by_id, release.revoke_reason = ctx.now(), me.id, text
        uploaded = session.execute(
            select(m.File.name, m.ReleaseItem.sha256, m.ReleaseItem.uploaded_at)
            .join(m.File, m.File.id == m.ReleaseItem.file_id)
            .where(m.ReleaseItem.release_id == release.id)
        ).all()
        move(
            session,
            ctx,
            me.email,
            request,
            project.slug,
            transition,
            reason=text,
            incident=True,
            released={r.name: r.sha256 for r in uploaded if r.uploaded_at is not None},
        )
        # Last, so that a failure here rolls the revocation back; repeating it is harmless.
        shutil.rmtree(released_dir(ctx.data_dir, project.slug, request.uuid), ignore_errors=True)
        return release_view(session, release, request)

    return perform(ctx, actor, "queue_release_revoke", work, target=request_id)


def force_status(
    ctx: Context, actor: str, request_id: str, status: str, *, reason: str
) -> RequestSummary:
    """Operator command: close a stuck request (held by its author or by checkers; its author
    lost access, say) as withdrawn or rejected, bypassing the state machine; never towards
    release, and never a request that is approved or finished. Admins with no tie to the project
    only; audited as ``queue_force_status`` with ``automated_action``."""
    text = clean_text(reason, "reason", MAX_REASON)
    try:
        target = Status(status)
    except ValueError:
        raise WorkflowError(f"unknown status {status!r}", rule="bad_status") from None
    if target not in FORCIBLE:
        allowed = ", ".join(sorted(s.value for s in FORCIBLE))
        raise WorkflowError(f"a status can only be forced to {allowed}", rule="bad_status")

    def work(session: Session, me: Person) -> RequestSummary:
        request = load_request(session, request_id)
        project = project_row(session, id=request.project_id)
        check_can_force_status(actor_facts(session, me, project, ctx.today(), request.author_id))
        if STATUS_OWNERS[Status(request.status)] not in (Owner.AUTHOR, Owner.REVIEWERS):
            raise WorkflowError(
                f"a {request.status} request is not stuck: its status cannot be forced",
                rule="status",
            )
        record(
            session,
            ctx,
            me.email,
            "queue_force_status",
            request,
            project.slug,
            from_status=request.status,
            to_status=target.value,
            reason=text,
            automated_action=True,
        )
        request.status, request.status_changed_at = target.value, ctx.now()
        session.flush()
        return summary(session, request, project.slug, reviewer=True)

    return perform(ctx, actor, "queue_force_status", work, target=request_id)
