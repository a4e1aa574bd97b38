"""What every queue service function shares: the one-transaction runner that audits refusals,
loaders that raise NotFound, the facts the pure rules read, and the audit record.

Private to ``output_checker.queue.service`` (and the release worker). People, projects and
memberships are the control plane's: they are only *read* here, with plain selects on its
models, and every event goes into its hash-chained audit log in the caller's transaction.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, lazyload

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import ControlError
from enclave.control.models import Accreditation, Membership, Person, Project
from enclave.control.service.projects import project_parameters
from enclave.control.service.standing import check_not_sanctioned
from enclave.control.views import project_view
from output_checker.parameters import Parameters
from output_checker.queue import models as m
from output_checker.queue.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from output_checker.queue.facts import (
    ActorFacts,
    CommentFacts,
    FileFacts,
    GroupFacts,
    RequestFacts,
)
from output_checker.queue.permissions import check_can_author
from output_checker.queue.policies import check_can_edit, check_project_writable
from output_checker.queue.workflow import (
    CheckStatus,
    FileKind,
    Recheck,
    Status,
    Transition,
    Visibility,
    Vote,
    next_turn,
)

T = TypeVar("T")

# Memberships that make a person a collaborator on the project (they see its requests and
# comment on them). Separation of duties is wider: *any* membership of the project, of any
# role, past or present, bars reviewing, releasing, rejecting and downloading its requests.
SEPARATED_ROLES = frozenset({"researcher", "datalab_client"})
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_COMMENT = 20_000


def new_uuid() -> str:
    """A new random public id."""
    return str(uuid.uuid4())


def perform(
    ctx: Context,
    actor: str,
    event: str,
    work: Callable[[Session, Person], T],
    *,
    target: str = "",
) -> T:
    """Run ``work(session, actor_row)`` in one write transaction and return its result.

    ``work`` loads what it needs, checks the rules, changes rows and appends its audit event.
    On a ControlError nothing is kept and the refusal is audited in its own transaction (with
    the rule that refused it), then re-raised.
    """
    try:
        try:
            with transaction(ctx.engine) as session:
                return work(session, load_actor(session, actor))
        except IntegrityError as error:  # a constraint caught a concurrent duplicate
            raise Conflict("that record already exists", detail=str(error.orig)) from error
    except ControlError as error:
        audit_refusal(ctx, actor, event, error, target=target)
        raise


def read(
    ctx: Context,
    actor: str,
    work: Callable[[Session, Person], T],
    *,
    event: str = "queue_read",
    target: str = "",
) -> T:
    """Run ``work(session, actor_row)`` read-only; a refusal is audited as ``event``."""
    try:
        with transaction(ctx.engine, readonly=True) as session:
            return work(session, load_actor(session, actor))
    except ControlError as error:
        audit_refusal(ctx, actor, event, error, target=target)
        raise


def audit_refusal(
    ctx: Context, actor: str, event: str, error: ControlError, target: str = ""
) -> None:
    """Record a refused action in a transaction of its own."""
    with transaction(ctx.engine) as session:
        audit.append(
            session,
            at=ctx.now(),
            actor=actor,
            action=event,
            outcome="refused",
            target=target,
            detail={"rule": error.rule, "reason": error.message},
        )


def record(
    session: Session,
    ctx: Context,
    actor: str,
    event: str,
    request: m.Request,
    project: str,
    **detail: Any,
) -> None:
    """Append the event of a successful action inside its transaction, stamped with the turn."""
    audit.append(
        session,
        at=ctx.now(),
        actor=actor,
        action=event,
        target=request.uuid,
        project=project,
        detail={"turn": request.review_turn, **detail},
    )


# ----- loading ------------------------------------------------------------------------------


def load_actor(session: Session, email: str) -> Person:
    """The acting person: NotFound (``unknown_actor``), PermissionDenied (``inactive``,
    ``sanctioned``)."""
    query = (
        select(Person)
        .where(Person.email == (email or "").strip().lower())
        # One round trip: roles joined in, accreditations only if read (actor_facts counts
        # the current ones itself).
        .options(joinedload(Person.roles), lazyload(Person.accreditations))
    )
    person = session.execute(query).unique().scalar_one_or_none()
    if person is None:
        raise NotFound(f"no person with email {email!r} may act here", rule="unknown_actor")
    if not person.active:
        raise PermissionDenied(f"the account {person.email} is suspended", rule="inactive")
    check_not_sanctioned(session, person)  # also ends a review session already open
    return person


def check_uuid(value: str, what: str) -> str:
    """``value`` if it looks like a UUID, else NotFound (so malformed ids never reach SQL)."""
    text = (value or "").strip().lower()
    if not UUID.match(text):
        raise NotFound(f"unknown {what} {value!r}", rule=f"unknown_{what}")
    return text


def load_request(session: Session, request_id: str) -> m.Request:
    """The request with this id; NotFound (``unknown_request``) otherwise."""
    key = check_uuid(request_id, "request")
    row = session.scalar(select(m.Request).where(m.Request.uuid == key))
    if row is None:
        raise NotFound(f"unknown request {request_id!r}", rule="unknown_request")
    return row


def load_file(session: Session, request: m.Request, file_id: str) -> m.File:
    """A file of ``request``; NotFound (``unknown_file``) otherwise."""
    key = check_uuid(file_id, "file")
    row = session.scalar(select(m.File).where(m.File.uuid == key, m.File.request_id == request.id))
    if row is None:
        raise NotFound(f"unknown file {file_id!r} in this request", rule="unknown_file")
    return row


def project_row(session: Session, *, slug: str | None = None, id: int | None = None) -> Project:
    """A project by slug or id (read-only); NotFound otherwise."""
    query = select(Project).where(Project.slug == slug if slug is not None else Project.id == id)
    project = session.scalar(query)
    if project is None:
        raise NotFound(f"unknown project {slug!r}", rule="unknown_project")
    return project


def person_email(session: Session, person_id: int) -> str:
    """The email of the person with this internal id."""
    return str(session.scalar(select(Person.email).where(Person.id == person_id)))


def parameters_of(project: Project) -> Parameters:
    """The checker parameters in force for the project: the defaults, tightened."""
    return project_parameters(project_view(project))


def actor_facts(
    session: Session, person: Person, project: Project, today: date, author_id: int | None = None
) -> ActorFacts:
    """The rules' view of ``person`` in relation to ``project`` (and a request's author)."""
    rows = session.execute(
        select(Membership.role, Membership.removed_at, Membership.expires_on).where(
            Membership.project_id == project.id, Membership.person_id == person.id
        )
    ).all()
    tied = [r for r in rows if r.role in SEPARATED_ROLES]
    accredited = session.scalar(
        select(func.count())
        .select_from(Accreditation)
        .where(
            Accreditation.person_id == person.id,
            Accreditation.issued_on <= today,
            Accreditation.expires_on >= today,
        )
    )
    return ActorFacts(
        email=person.email,
        roles=frozenset(person.role_names),
        is_member=any(r.removed_at is None and r.expires_on >= today for r in tied),
        was_member=bool(rows),  # any role, ended or not: the "no member of the project"
        is_author=author_id is not None and author_id == person.id,
        accredited=bool(accredited),
    )


def emails(session: Session, ids: set[int]) -> dict[int, str]:
    """Internal person ids to emails, in one query."""
    if not ids:
        return {}
    rows = session.execute(select(Person.id, Person.email).where(Person.id.in_(ids))).all()
    return {row.id: row.email for row in rows}


def request_facts(session: Session, request: m.Request) -> RequestFacts:
    """Everything the pure rules read about ``request``, in a handful of queries."""
    return load_rows(session, request).facts


@dataclass(frozen=True)
class RequestRows:
    """The rows ``request_facts`` reads and the facts made of them, for a caller that also
    shows the request (and need not read the same rows twice). Lists are in id order."""

    facts: RequestFacts
    groups: Sequence[m.Group]
    files: Sequence[m.File]
    votes: Sequence[m.VoteRow]
    comments: Sequence[m.Comment]
    emails: Mapping[int, str]  # of the author, voters, commenters and reviewers


def load_rows(session: Session, request: m.Request) -> RequestRows:
    """``request``'s groups, files, votes, comments and the facts the rules read from them."""
    groups = session.scalars(
        select(m.Group).where(m.Group.request_id == request.id).order_by(m.Group.id)
    ).all()
    group_names = {g.id: g.name for g in groups}
    files = session.scalars(
        select(m.File).where(m.File.request_id == request.id).order_by(m.File.id)
    ).all()
    file_ids = {f.id: f.uuid for f in files}
    votes = session.scalars(
        select(m.VoteRow).where(m.VoteRow.file_id.in_(file_ids)).order_by(m.VoteRow.id)
    ).all()
    comments = session.scalars(
        select(m.Comment).where(m.Comment.request_id == request.id).order_by(m.Comment.id)
    ).all()
    reviews = session.scalars(select(m.Review).where(m.Review.request_id == request.id)).all()
    voided = session.scalars(
        select(m.VoidTurn.turn).where(m.VoidTurn.request_id == request.id)
    ).all()
    people = emails(
        session,
        {request.author_id}
        | {v.reviewer_id for v in votes}
        | {c.author_id for c in comments}
        | {r.reviewer_id for r in reviews},
    )
    by_file: dict[int, dict[str, tuple[Vote, int]]] = {}
    for vote in votes:
        cast = (Vote(vote.vote), vote.turn)
        by_file.setdefault(vote.file_id, {})[people[vote.reviewer_id]] = cast
    by_turn: dict[int, set[str]] = {}
    for review in reviews:
        by_turn.setdefault(review.turn, set()).add(people[review.reviewer_id])
    facts = RequestFacts(
        id=request.uuid,
        status=Status(request.status),
        turn=request.review_turn,
        author=people[request.author_id],
        files=tuple(
            FileFacts(
                id=f.uuid,
                name=f.name,
                group=group_names[f.group_id],
                kind=FileKind(f.kind),
                withdrawn=f.withdrawn_turn is not None,
                automated=CheckStatus(f.automated_status) if f.automated_status else None,
                recheck=Recheck(f.recheck) if f.recheck else None,
                exception=f.exception,
                content_turn=f.content_turn,
                votes=by_file.get(f.id, {}),
            )
            for f in files
        ),
        groups=tuple(GroupFacts(g.name, g.context, g.controls) for g in groups),
        comments=tuple(
            CommentFacts(
                id=c.uuid,
                author=people[c.author_id],
                group=group_names.get(c.group_id) if c.group_id is not None else None,
                visibility=Visibility(c.visibility),
                turn=c.turn,
                file=file_ids.get(c.file_id) if c.file_id is not None else None,
            )
            for c in comments
        ),
        reviews={turn: frozenset(who) for turn, who in by_turn.items()},
        voided_turns=frozenset(voided),
    )
    return RequestRows(facts, groups, files, votes, comments, people)


# ----- input cleaning -----------------------------------------------------------------------


def clean_text(value: str | None, field: str, max_len: int, *, required: bool = True) -> str:
    """Stripped text (lines allowed); InvalidInput if empty when required, or too long."""
    text = (value or "").strip()
    if required and not text:
        raise InvalidInput(f"{field} is required", rule="required")
    if len(text) > max_len:
        raise InvalidInput(f"{field} is longer than {max_len} characters", rule="too_long")
    if "\x00" in text:
        raise InvalidInput(f"{field} must not contain NUL characters", rule="bad_text")
    return text


GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")


def clean_group(name: str) -> str:
    """A group name: 1-100 letters, digits, spaces, dots, dashes or underscores."""
    text = (name or "").strip()
    if not GROUP.match(text):
        raise InvalidInput(
            f"group name {name[:40]!r} must be 1-100 letters, digits, spaces, . _ or -",
            rule="bad_group",
        )
    return text


def dumps(value: Any) -> str:
    """Canonical JSON for stored records and recipes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def move(
    session: Session,
    ctx: Context,
    actor: str,
    request: m.Request,
    project: str,
    transition: Transition,
    **detail: Any,
) -> None:
    """Apply a checked transition: audit it (stamped with the turn it was made in), then set
    the status, the status time and the turn."""
    record(
        session,
        ctx,
        actor,
        transition.event,
        request,
        project,
        from_status=transition.source.value,
        to_status=transition.target.value,
        **detail,
    )
    request.status = transition.target.value
    request.review_turn = next_turn(request.review_turn, transition)
    request.status_changed_at = ctx.now()
    session.flush()


def post_comment(
    session: Session,
    ctx: Context,
    author: Person,
    request: m.Request,
    groups: set[str] | None,
    text: str,
    visibility: Visibility,
    *,
    turn: int | None = None,
) -> None:
    """Add ``text`` as a comment on each named group (``None``: one request-level comment),
    stamped with ``turn`` (default: the request's turn)."""
    if groups is not None and not groups:
        return
    targets: list[int | None] = [None]
    if groups is not None:
        targets = list(
            session.scalars(
                select(m.Group.id)
                .where(m.Group.request_id == request.id, m.Group.name.in_(groups))
                .order_by(m.Group.id)
            )
        )
    for group_id in targets:
        session.add(
            m.Comment(
                uuid=new_uuid(),
                request_id=request.id,
                group_id=group_id,
                author_id=author.id,
                body=text,
                visibility=visibility.value,
                turn=request.review_turn if turn is None else turn,
                created_at=ctx.now(),
            )
        )
    session.flush()


@dataclass(frozen=True)
class Editing:
    """A request loaded for its author, with the rules already checked."""

    request: m.Request
    project: str


def editing_request(session: Session, ctx: Context, me: Person, request_id: str) -> Editing:
    """The request loaded for its author: the author's role rule, an active project and an
    editable status are checked."""
    request = load_request(session, request_id)
    project = project_row(session, id=request.project_id)
    check_can_author(actor_facts(session, me, project, ctx.today(), request.author_id))
    check_project_writable(project.state)
    check_can_edit(request_facts(session, request))
    return Editing(request, project.slug)
