"""Custodian sign-off (SATRE 3.1.06): where a dataset's policy says so, releasing outputs of a
project that holds it needs, besides the two reviews, one sign-off per such dataset by its
custodian or an active delegate who neither wrote the request nor is or was a member of its
project; and only authors holding an egress right for each such dataset may submit.

Which datasets apply, who holds a right and who may sign off are the control plane's
(``enclave.control.service.egress.egress_requirements``), read in the queue's transaction.
Every dataset needing sign-off applies to every request of the project: which data an output
came from is not known for outputs without a recipe. The rules themselves are data and pure
functions (``workflow.signoff_state``, ``policies.check_signoffs``,
``permissions.check_can_sign_off``); this module loads the facts they read, records
sign-offs and shows where they stand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.models import Dataset, DatasetDelegate, Grant, Person, Project
from enclave.control.service.egress import egress_requirements, signers_of
from output_checker.queue import models as m
from output_checker.queue import permissions as perms
from output_checker.queue import policies
from output_checker.queue.errors import InvalidInput, NotFound, PermissionDenied
from output_checker.queue.facts import ActorFacts, EgressFacts, RequestFacts, SignoffFacts
from output_checker.queue.service._base import (
    actor_facts,
    clean_text,
    load_file,
    load_request,
    new_uuid,
    perform,
    person_email,
    project_row,
    read,
    record,
)
from output_checker.queue.storage import BlobStore
from output_checker.queue.views import FileContent
from output_checker.queue.workflow import FileKind, Signoff, SignoffState, Status, is_under_review

EVENT = "queue_egress_signoff"
VIEW_EVENT = "queue_signoff_view"
MAX_REASON = 20_000


@dataclass(frozen=True)
class DatasetSignoff:
    """One dataset's sign-off of a request this turn, as a page shows it."""

    dataset: str
    state: SignoffState
    approved_by: tuple[str, ...]
    refused_by: tuple[str, ...]
    reasons: tuple[str, ...]  # the refusals' reasons
    author_has_right: bool
    can_sign: bool  # the viewer may sign off this dataset now


@dataclass(frozen=True)
class OutputLine:
    """An output of the request as the sign-off page lists it."""

    id: str
    name: str
    filetype: str
    sha256: str
    automated_status: str | None
    check_summary: str


@dataclass(frozen=True)
class EgressStatus:
    """Where a request's custodian sign-offs stand, for anyone who may see the request or
    sign off one of its datasets."""

    request_id: str
    project: str
    title: str
    status: Status
    turn: int
    datasets: tuple[DatasetSignoff, ...]
    outputs: tuple[OutputLine, ...]

    @property
    def can_sign(self) -> bool:
        return any(d.can_sign for d in self.datasets)


@dataclass(frozen=True)
class SignoffView:
    """A recorded sign-off."""

    id: str
    request_id: str
    dataset: str
    signer: str
    decision: Signoff
    turn: int
    reason: str
    signed_at: datetime


# ----- loading the facts ---------------------------------------------------------------------


def load_egress(session: Session, request: m.Request, project: Project) -> tuple[EgressFacts, ...]:
    """The request's datasets needing sign-off, the author's rights and every sign-off."""
    author = session.get(Person, request.author_id)
    assert author is not None  # a foreign key
    needed = egress_requirements(session, project, author)
    if not needed:
        return ()
    rows = session.execute(
        select(Dataset.slug, Person.email, m.SignoffRow)
        .join(Dataset, Dataset.id == m.SignoffRow.dataset_id)
        .join(Person, Person.id == m.SignoffRow.signer_id)
        .where(m.SignoffRow.request_id == request.id)
        .order_by(m.SignoffRow.id)
    ).all()
    signed: dict[str, list[SignoffFacts]] = {}
    for slug, email, row in rows:
        facts = SignoffFacts(email, Signoff(row.decision), row.turn, row.reason)
        signed.setdefault(slug, []).append(facts)
    return tuple(
        EgressFacts(r.dataset, r.has_right, r.signers, tuple(signed.get(r.dataset, ())))
        for r in needed
    )


def with_egress(session: Session, request: m.Request, facts: RequestFacts) -> RequestFacts:
    """``facts`` with the request's sign-off requirements loaded (the rules refuse without)."""
    project = session.get(Project, request.project_id)
    assert project is not None  # a foreign key
    return replace(facts, egress=load_egress(session, request, project))


def _light_facts(session: Session, request: m.Request) -> RequestFacts:
    """The facts the sign-off rules read (status, turn, author, sign-offs), without the
    files, votes and comments ``request_facts`` loads for the other rules."""
    facts = RequestFacts(
        id=request.uuid,
        status=Status(request.status),
        turn=request.review_turn,
        author=person_email(session, request.author_id),
    )
    return with_egress(session, request, facts)


# ----- signing off ---------------------------------------------------------------------------


def _decision(value: str) -> Signoff:
    try:
        return Signoff((value or "").strip().lower())
    except ValueError:
        raise InvalidInput(
            f"unknown sign-off decision {value!r}: approve or refuse", rule="bad_decision"
        ) from None


def _signers(session: Session, facts: RequestFacts, dataset: str) -> tuple[str, ...]:
    for egress in facts.egress or ():
        if egress.dataset == dataset:
            return egress.signers
    row = session.scalar(select(Dataset).where(Dataset.slug == dataset))
    if row is None:
        raise NotFound(f"unknown dataset {dataset!r}", rule="unknown_dataset")
    return signers_of(session, row)


def sign_off(
    ctx: Context, actor: str, request_id: str, *, dataset: str, decision: str, reason: str = ""
) -> SignoffView:
    """The custodian of ``dataset`` (or an active delegate) approves, or refuses with a
    reason, the release of the request's outputs for that dataset, once per turn while the
    checkers hold the request. Refused to anyone else, to the request's author and to anyone
    who is or was a member of its project."""
    chosen = _decision(decision)
    text = clean_text(reason, "reason", MAX_REASON, required=chosen is Signoff.REFUSE)

    def work(session: Session, me: Person) -> SignoffView:
        request = load_request(session, request_id)
        project = project_row(session, id=request.project_id)
        facts = _light_facts(session, request)
        actor_is = actor_facts(session, me, project, ctx.today(), request.author_id)
        perms.check_can_sign_off(actor_is, _signers(session, facts, dataset))
        policies.check_project_writable(project.state)
        policies.check_can_sign_off(facts, dataset, me.email)
        data = session.scalar(select(Dataset).where(Dataset.slug == dataset))
        assert data is not None  # _signers found it
        row = m.SignoffRow(
            uuid=new_uuid(),
            request_id=request.id,
            dataset_id=data.id,
            signer_id=me.id,
            turn=request.review_turn,
            decision=chosen.value,
            reason=text,
            signed_at=ctx.now(),
        )
        session.add(row)
        session.flush()
        record(
            session,
            ctx,
            me.email,
            EVENT,
            request,
            project.slug,
            dataset=dataset,
            decision=chosen.value,
            reason=text,
        )
        return SignoffView(
            row.uuid, request.uuid, dataset, me.email, chosen, row.turn, text, row.signed_at
        )

    return perform(ctx, actor, EVENT, work, target=request_id)


# ----- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    request: m.Request
    project: Project
    facts: RequestFacts
    actor: ActorFacts


def _seeing(session: Session, ctx: Context, me: Person, request_id: str) -> _Seen:
    """The request with its sign-off facts, for someone who may see it: who may see the
    request page, or a signer of one of its datasets once it has been submitted."""
    request = load_request(session, request_id)
    project = project_row(session, id=request.project_id)
    facts = _light_facts(session, request)
    actor = actor_facts(session, me, project, ctx.today(), request.author_id)
    signer = any(me.email in e.signers for e in facts.egress or ())
    if signer and not actor.is_member:
        policies.check_reviewer_can_see(facts)  # a draft is the author's own
    elif not signer:
        perms.check_can_view(actor)
        if actor.is_reviewer:
            policies.check_reviewer_can_see(facts)
    return _Seen(request, project, facts, actor)


def _dataset_signoff(seen: _Seen, egress: EgressFacts) -> DatasetSignoff:
    facts, actor = seen.facts, seen.actor
    counted = policies.current_signoffs(facts, egress)
    refusals = [s for s in counted if s.decision is Signoff.REFUSE]
    can_sign = (
        seen.project.state in policies.WRITABLE_PROJECT_STATES
        and perms.can_sign_off(actor, egress.signers)
        and policies.can_sign_off(facts, egress.dataset, actor.email)
    )
    return DatasetSignoff(
        dataset=egress.dataset,
        state=policies.signoff_of(facts, egress),
        approved_by=tuple(s.signer for s in counted if s.decision is Signoff.APPROVE),
        refused_by=tuple(s.signer for s in refusals),
        reasons=tuple(s.reason for s in refusals),
        author_has_right=egress.author_has_right,
        can_sign=can_sign,
    )


def _outputs(session: Session, request: m.Request) -> tuple[OutputLine, ...]:
    rows = session.scalars(
        select(m.File)
        .where(
            m.File.request_id == request.id,
            m.File.kind == FileKind.OUTPUT.value,
            m.File.withdrawn_turn.is_(None),
        )
        .order_by(m.File.id)
    )
    return tuple(
        OutputLine(r.uuid, r.name, r.filetype, r.sha256, r.automated_status, r.check_summary)
        for r in rows
    )


def _status(session: Session, seen: _Seen) -> EgressStatus:
    signer = any(seen.actor.email in e.signers for e in seen.facts.egress or ())
    shown = seen.facts.status
    if not (seen.actor.is_reviewer or signer):  # the author's side learns no review count
        shown = policies.status_for_author(seen.facts)
    return EgressStatus(
        request_id=seen.request.uuid,
        project=seen.project.slug,
        title=seen.request.title,
        status=shown,
        turn=seen.request.review_turn,
        datasets=tuple(_dataset_signoff(seen, e) for e in seen.facts.egress or ()),
        outputs=_outputs(session, seen.request),
    )


def egress_status(ctx: Context, actor: str, request_id: str) -> EgressStatus:
    """Where the request's custodian sign-offs stand, and whether ``actor`` may sign off
    which dataset now (not audited: the page it is part of is)."""

    def work(session: Session, me: Person) -> EgressStatus:
        return _status(session, _seeing(session, ctx, me, request_id))

    return read(ctx, actor, work, event=VIEW_EVENT, target=request_id)


def view_signoff_page(ctx: Context, actor: str, request_id: str) -> EgressStatus:
    """``egress_status`` for the sign-off page, audited as ``queue_signoff_view``."""

    def work(session: Session, me: Person) -> tuple[EgressStatus, _Seen]:
        seen = _seeing(session, ctx, me, request_id)
        return _status(session, seen), seen

    status, seen = read(ctx, actor, work, event=VIEW_EVENT, target=request_id)
    with transaction(ctx.engine, moves_version=False) as session:
        record(session, ctx, seen.actor.email, VIEW_EVENT, seen.request, seen.project.slug)
    return status


def signoff_file(ctx: Context, actor: str, request_id: str, file_id: str) -> FileContent:
    """An output's verified snapshot for a signer to read before deciding (audited as
    ``queue_file_view``); others read files through the request page."""

    def work(session: Session, me: Person) -> tuple[str, str, str, str]:
        seen = _seeing(session, ctx, me, request_id)
        if not any(me.email in e.signers for e in seen.facts.egress or ()):
            raise PermissionDenied(
                f"{me.email} signs off no dataset of this request", rule="not_signer"
            )
        row = load_file(session, seen.request, file_id)
        if row.kind != FileKind.OUTPUT.value or row.withdrawn_turn is not None:
            raise NotFound(f"unknown file {file_id!r} in this request", rule="unknown_file")
        record(
            session,
            ctx,
            me.email,
            "queue_file_view",
            seen.request,
            seen.project.slug,
            file=row.name,
            sha256=row.sha256,
        )
        return row.uuid, row.name, row.filetype, row.sha256

    uuid, name, filetype, sha256 = perform(ctx, actor, "queue_file_view", work, target=request_id)
    data = BlobStore.for_data_dir(ctx.data_dir).read(sha256)
    return FileContent(request_id, uuid, name, filetype, sha256, data)


def _signed_project_ids(session: Session, me: Person) -> list[int]:
    """Projects holding a dataset needing sign-off of which ``me`` is custodian or delegate."""
    delegated = select(DatasetDelegate.dataset_id).where(
        DatasetDelegate.person_id == me.id, DatasetDelegate.removed_at.is_(None)
    )
    mine = select(Dataset.id).where(
        Dataset.egress_signoff.is_(True),
        or_(Dataset.custodian_id == me.id, Dataset.id.in_(delegated)),
    )
    query = select(Grant.project_id).where(Grant.dataset_id.in_(mine)).distinct()
    return list(session.scalars(query))


def awaiting_signoff(ctx: Context, actor: str) -> list[EgressStatus]:
    """Requests under review with a dataset ``actor`` may sign off and has not yet (the
    custodian's or delegate's queue), oldest status change first."""

    def work(session: Session, me: Person) -> list[EgressStatus]:
        if not perms.SIGNER_ROLES & me.role_names:
            raise PermissionDenied(
                "signing off requires the role output_checker or data_custodian", rule="role"
            )
        requests = session.scalars(
            select(m.Request)
            .where(
                m.Request.status.in_([s.value for s in Status if is_under_review(s)]),
                m.Request.project_id.in_(_signed_project_ids(session, me)),
            )
            .order_by(m.Request.status_changed_at, m.Request.id)
        ).all()
        found = []
        for request in requests:
            project = project_row(session, id=request.project_id)
            facts = _light_facts(session, request)
            actor_is = actor_facts(session, me, project, ctx.today(), request.author_id)
            status = _status(session, _Seen(request, project, facts, actor_is))
            if status.can_sign:
                found.append(status)
        return found

    return read(ctx, actor, work, event=VIEW_EVENT)
