"""Reads: the queue overview, one request as its viewer may see it, the activity log, and the
audited reads a face calls for every page view, file view and download.

Blinding is applied here, through the pure ``visibility`` filter; the checker's evidence
(the manifest record) reaches eligible checkers only. ``record_view``, ``view_file``,
``download`` and ``download_release`` append their audit event before returning anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.models import Membership, Person, Project
from output_checker.queue import models as m
from output_checker.queue import permissions as perms
from output_checker.queue import policies
from output_checker.queue.errors import IntegrityFailure, InvalidInput, NotFound
from output_checker.queue.facts import ActorFacts, RequestFacts
from output_checker.queue.service._base import (
    SEPARATED_ROLES,
    RequestRows,
    actor_facts,
    check_uuid,
    load_file,
    load_request,
    load_rows,
    perform,
    project_row,
    read,
    record,
    request_facts,
)
from output_checker.queue.service._convert import (
    SUMMARY_COLUMNS,
    file_view,
    release_view,
    request_summary,
)
from output_checker.queue.service.releases import released_dir
from output_checker.queue.storage import BlobStore, file_sha256
from output_checker.queue.views import (
    ActivityEntry,
    CommentView,
    FileContent,
    GroupView,
    RequestDetail,
    RequestSummary,
    VoteView,
)
from output_checker.queue.visibility import Viewer, is_visible, visible_items, vote_items
from output_checker.queue.workflow import (
    CREATE_EVENT,
    TRANSITIONS,
    Party,
    Status,
    Visibility,
    can_transition,
    phase_of,
)

# Events that are shown to everyone who may see the request, whatever the turn.
STATUS_EVENTS = frozenset(
    {t.event for t in TRANSITIONS.values()} - {"queue_review_submit"}
    | {CREATE_EVENT, "queue_turn_void", "queue_force_status"}
)
CHECKER_EVENTS = frozenset({"queue_vote", "queue_review_submit"})
READ_EVENTS = frozenset(
    {"queue_view", "queue_file_view", "queue_download", "queue_release_download"}
)


@dataclass(frozen=True)
class Seen:
    """A request loaded for someone allowed to see it."""

    request: m.Request
    project: Project
    facts: RequestFacts
    actor: ActorFacts
    viewer: Viewer
    rows: RequestRows


def _seeing(session: Session, ctx: Context, me: Person, request_id: str) -> Seen:
    request = load_request(session, request_id)
    project = project_row(session, id=request.project_id)
    actor = actor_facts(session, me, project, ctx.today(), request.author_id)
    perms.check_can_view(actor)
    rows = load_rows(session, request)
    if actor.is_reviewer:
        policies.check_reviewer_can_see(rows.facts)
    viewer = Viewer(me.email, reviewer=actor.is_reviewer)
    return Seen(request, project, rows.facts, actor, viewer, rows)


def _allowed(seen: Seen) -> frozenset[str]:
    """Names of the service functions whose role and state rules pass for this viewer now."""
    actor, facts, status = seen.actor, seen.facts, seen.facts.status
    writable = seen.project.state in policies.WRITABLE_PROJECT_STATES
    allowed: set[str] = set()
    if perms.can_author(actor) and writable and policies.can_edit(facts):
        allowed |= {"add_file", "update_file", "move_file", "withdraw_file", "set_group"}
        allowed |= {"set_exception", "withdraw"}
        allowed.add("submit" if status is Status.PENDING else "resubmit")
    if actor.is_member and writable and policies.can_comment(facts, reviewer_side=False):
        allowed.add("comment")
    if actor.is_reviewer and writable:
        if policies.can_vote(facts, actor.email):
            allowed |= {"vote", "submit_review"}
        if policies.can_comment(facts, reviewer_side=True):
            allowed |= {"comment", "make_comment_public"}
        for target, name in (
            (Status.RETURNED, "return_request"),
            (Status.REJECTED, "reject"),
            (Status.APPROVED, "approve"),
        ):
            if can_transition(status, target, Party.CHECKER):
                allowed.add(name)
    if actor.is_reviewer and policies.can_download(facts):
        allowed.add("download")
    party = Party.CHECKER if actor.is_reviewer else Party.ADMIN
    if perms.can_revoke(actor) and can_transition(status, Status.REVOKED, party):
        allowed.add("revoke_release")
    if perms.can_download_release(actor) and policies.can_download_release(status):
        allowed.add("download_release")
    return frozenset(allowed)


def get_request(ctx: Context, actor: str, request_id: str) -> RequestDetail:
    """One request as ``actor`` may see it: blinded votes and comments, decisions as the
    viewer may know them, the checker's evidence for eligible checkers only, and the actions
    the viewer's buttons may offer. Not audited: a page view is ``view_request``."""

    def work(session: Session, me: Person) -> RequestDetail:
        return _detail(session, me, _seeing(session, ctx, me, request_id))

    return read(ctx, actor, work)


def view_request(ctx: Context, actor: str, request_id: str) -> RequestDetail:
    """``get_request`` for a page view, audited as ``queue_view`` before it returns.

    The rules are checked once, in the read; the write transaction that follows only appends
    the view event. Writes are serialised, so keeping every check and query out of it lets
    concurrent page views queue for the write lock for a moment only."""

    def work(session: Session, me: Person) -> tuple[RequestDetail, Seen]:
        seen = _seeing(session, ctx, me, request_id)
        return _detail(session, me, seen), seen

    # The view is kept (read cache) while nothing changes; its audit event changes nothing
    # that any kept read depends on, so it leaves the state version where it is.
    key = ("queue_view", actor, request_id, ctx.today())
    detail, seen = ctx.cached(key, lambda: read(ctx, actor, work))
    with transaction(ctx.engine, moves_version=False) as session:
        record(session, ctx, seen.viewer.email, "queue_view", seen.request, seen.project.slug)
    return detail


def _summary(seen: Seen) -> RequestSummary:
    """The request's summary from what ``_seeing`` loaded (``_convert.summary`` without its
    three queries)."""
    request, facts, reviewer = seen.request, seen.facts, seen.viewer.reviewer
    shown = facts.status if reviewer else policies.status_for_author(facts)
    return request_summary(
        request,
        project=seen.project.slug,
        author=facts.author,
        status=shown,
        outputs=len(facts.outputs),
        reviews_this_turn=len(facts.submitted_reviewers()) if reviewer else 0,
    )


def _detail(session: Session, me: Person, seen: Seen) -> RequestDetail:
    """The request of ``seen`` as its viewer may see it (inside the caller's transaction),
    from the rows ``_seeing`` loaded plus the files' versions and the release."""
    request, facts, viewer, rows = seen.request, seen.facts, seen.viewer, seen.rows
    phase = phase_of(facts.status)
    groups, files, people = rows.groups, rows.files, rows.emails
    names = {g.id: g.name for g in groups}
    file_ids = {f.id: f.uuid for f in files}
    versions: dict[int, list[m.FileVersion]] = {f.id: [] for f in files}
    for version in session.scalars(
        select(m.FileVersion).where(m.FileVersion.file_id.in_(file_ids)).order_by(m.FileVersion.id)
    ):
        versions[version.file_id].append(version)
    votes = list(visible_items(vote_items(facts), facts.turn, phase, viewer, facts.voided_turns))
    justification = {(file_ids[v.file_id], people[v.reviewer_id]): v.comment for v in rows.votes}
    shown = {
        c.id for c in visible_items(facts.comments, facts.turn, phase, viewer, facts.voided_turns)
    }
    newest_first = sorted(rows.comments, key=lambda c: (c.created_at, c.id), reverse=True)
    release = session.scalar(select(m.Release).where(m.Release.request_id == request.id))
    return RequestDetail(
        summary=_summary(seen),
        phase=phase,
        viewer=me.email,
        viewer_is_reviewer=viewer.reviewer,
        groups=tuple(GroupView(g.name, g.context, g.controls) for g in groups),
        files=tuple(
            file_view(
                session,
                f,
                names[f.group_id],
                facts=facts,
                viewer=viewer,
                versions=versions[f.id],
            )
            for f in files
        ),
        votes=tuple(
            VoteView(
                v.file,
                v.author,
                v.vote.value,
                v.turn,
                justification.get((v.file, v.author), ""),
            )
            for v in votes
        ),
        comments=tuple(
            CommentView(
                id=c.uuid,
                group=names.get(c.group_id) if c.group_id is not None else None,
                file_id=file_ids.get(c.file_id) if c.file_id is not None else None,
                author=people[c.author_id],
                body=c.body,
                visibility=c.visibility,
                turn=c.turn,
                created_at=c.created_at,
            )
            for c in newest_first
            if c.uuid in shown
        ),
        my_review_submitted=me.email in facts.submitted_reviewers(),
        release=release_view(session, release, request) if release else None,
        allowed=_allowed(seen),
    )


def _author_side(shown: str) -> list[str]:
    """The stored statuses that the author's side sees as ``shown``."""
    return [
        s.value
        for s in Status
        if policies.status_for_author(RequestFacts(id="", status=s, turn=0, author="")).value
        == shown
    ]


# The overview's rows, built once (only the visibility filter, the page and the project vary):
# the columns a summary shows, with per-row counts of outputs and of reviews this turn.
_OUTPUTS = (
    select(func.count())
    .where(
        m.File.request_id == m.Request.id,
        m.File.kind == "output",
        m.File.withdrawn_turn.is_(None),
    )
    .correlate(m.Request)
    .scalar_subquery()
)
_REVIEWS = (
    select(func.count())
    .where(m.Review.request_id == m.Request.id, m.Review.turn == m.Request.review_turn)
    .correlate(m.Request)
    .scalar_subquery()
)
OVERVIEW = (
    select(
        *SUMMARY_COLUMNS,
        m.Request.project_id,
        Project.slug,
        Person.email,
        _OUTPUTS.label("outputs"),
        _REVIEWS.label("reviews"),
    )
    .join(Project, Project.id == m.Request.project_id)
    .join(Person, Person.id == m.Request.author_id)
    .order_by(m.Request.status_changed_at, m.Request.id)
)


def list_requests(
    ctx: Context,
    actor: str,
    *,
    project: str | None = None,
    status: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[RequestSummary]:
    """The queue overview: for an output checker, every submitted request of projects they
    have no tie to; for a member, every request of their current projects. Oldest status
    change first (the longest waiting on top), ``limit`` rows from ``offset`` on. Statuses
    are as each row's viewer may know them; ``status`` filters on that.

    Filtering, counting and paging happen in the database, so a page costs the same however
    long the queue is (with the ``status_changed_at`` index)."""
    if limit < 1 or offset < 0:
        raise InvalidInput("limit must be positive and offset not negative", rule="bad_page")

    def work(session: Session, me: Person) -> list[RequestSummary]:
        today = ctx.today()
        memberships = session.execute(
            select(
                Membership.project_id,
                Membership.role,
                Membership.removed_at,
                Membership.expires_on,
            ).where(Membership.person_id == me.id)
        ).all()
        tied = {r.project_id for r in memberships}  # any membership bars reviewing
        current = {
            r.project_id
            for r in memberships
            if r.role in SEPARATED_ROLES and r.removed_at is None and r.expires_on >= today
        }
        # The two ways to see a row are disjoint (current projects are tied ones), so each
        # row's viewer side, and the status it shows, is known from its project alone.
        as_member: ColumnElement[bool] = m.Request.project_id.in_(current)
        as_reviewer: ColumnElement[bool] = and_(
            m.Request.review_turn >= 1, m.Request.project_id.not_in(tied or {-1})
        )
        if status is not None:
            as_member = and_(as_member, m.Request.status.in_(_author_side(status)))
            as_reviewer = and_(as_reviewer, m.Request.status == status)
        visible = ([as_member] if current else []) + (
            [as_reviewer] if "output_checker" in me.role_names else []
        )
        if not visible:
            return []
        query = OVERVIEW.where(or_(*visible)).limit(limit).offset(offset)
        if project is not None:
            query = query.where(Project.slug == project)
        found: list[RequestSummary] = []
        for row in session.execute(query):
            as_reviewer_row = row.project_id not in tied
            shown = Status(row.status)
            if not as_reviewer_row:
                shown = policies.status_for_author(
                    RequestFacts(id="", status=shown, turn=0, author="")
                )
            found.append(
                request_summary(
                    row,
                    project=row.slug,
                    author=row.email,
                    status=shown,
                    outputs=int(row.outputs),
                    reviews_this_turn=int(row.reviews) if as_reviewer_row else 0,
                )
            )
        return found

    # Checkers poll the overview far more often than the queue changes (see readcache).
    key = ("queue_list", actor, project, status, limit, offset, ctx.today())
    return list(ctx.cached(key, lambda: tuple(read(ctx, actor, work))))


def record_view(ctx: Context, actor: str, request_id: str) -> None:
    """Audit that ``actor`` looked at the request's page (refused if they may not see it)."""

    def work(session: Session, me: Person) -> None:
        seen = _seeing(session, ctx, me, request_id)
        record(session, ctx, me.email, "queue_view", seen.request, seen.project.slug)

    perform(ctx, actor, "queue_view", work, target=request_id)


def _content(ctx: Context, request_id: str, row: tuple[str, str, str, str]) -> FileContent:
    file_id, name, filetype, sha256 = row
    data = BlobStore.for_data_dir(ctx.data_dir).read(sha256)
    return FileContent(request_id, file_id, name, filetype, sha256, data)


def view_file(ctx: Context, actor: str, request_id: str, file_id: str) -> FileContent:
    """A file's verified snapshot for viewing in the browser, by anyone who may see the
    request (audited as ``queue_file_view``)."""

    def work(session: Session, me: Person) -> tuple[str, str, str, str]:
        seen = _seeing(session, ctx, me, request_id)
        row = load_file(session, seen.request, file_id)
        record(
            session,
            ctx,
            me.email,
            "queue_file_view",
            seen.request,
            seen.project.slug,
            file=row.name,
            file_id=row.uuid,
            sha256=row.sha256,
        )
        return row.uuid, row.name, row.filetype, row.sha256

    return _content(
        ctx, request_id, perform(ctx, actor, "queue_file_view", work, target=request_id)
    )


def download(ctx: Context, actor: str, request_id: str, file_id: str) -> FileContent:
    """A file's verified snapshot for download: eligible checkers only, never a member of
    the project (audited as ``queue_download``)."""

    def work(session: Session, me: Person) -> tuple[str, str, str, str]:
        request = load_request(session, request_id)
        project = project_row(session, id=request.project_id)
        perms.check_can_download(actor_facts(session, me, project, ctx.today(), request.author_id))
        policies.check_can_download(request_facts(session, request))
        row = load_file(session, request, file_id)
        record(
            session,
            ctx,
            me.email,
            "queue_download",
            request,
            project.slug,
            file=row.name,
            file_id=row.uuid,
            sha256=row.sha256,
        )
        return row.uuid, row.name, row.filetype, row.sha256

    return _content(ctx, request_id, perform(ctx, actor, "queue_download", work, target=request_id))


def download_release(ctx: Context, actor: str, file_id: str) -> FileContent:
    """A released file, read from the released area and verified against the released hash:
    for the project's members and eligible checkers, until the release is revoked (audited
    as ``queue_release_download``)."""

    def work(session: Session, me: Person) -> tuple[str, str, str, str, str]:
        key = check_uuid(file_id, "file")
        found = session.execute(
            select(m.File, m.Request, m.ReleaseItem)
            .join(m.Request, m.Request.id == m.File.request_id)
            .join(m.Release, m.Release.request_id == m.Request.id)
            .join(
                m.ReleaseItem,
                and_(m.ReleaseItem.release_id == m.Release.id, m.ReleaseItem.file_id == m.File.id),
            )
            .where(m.File.uuid == key)
        ).first()
        if found is None:
            raise NotFound(f"no released file {file_id!r}", rule="unknown_file")
        row, request, item = found
        project = project_row(session, id=request.project_id)
        perms.check_can_download_release(
            actor_facts(session, me, project, ctx.today(), request.author_id)
        )
        policies.check_can_download_release(Status(request.status))
        record(
            session,
            ctx,
            me.email,
            "queue_release_download",
            request,
            project.slug,
            file=row.name,
            file_id=row.uuid,
            sha256=item.sha256,
        )
        return request.uuid, project.slug, row.name, row.filetype, item.sha256

    request_uuid, slug, name, filetype, sha256 = perform(
        ctx, actor, "queue_release_download", work, target=file_id
    )
    path = released_dir(ctx.data_dir, slug, request_uuid) / name
    try:
        if file_sha256(path) != sha256:
            raise IntegrityFailure(f"the released copy of {name} does not match its hash")
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"the released copy of {name} is missing", rule="release_missing") from None
    return FileContent(request_uuid, file_id, name, filetype, sha256, data)


def activity(
    ctx: Context, actor: str, request_id: str, *, include_reads: bool = False
) -> list[ActivityEntry]:
    """The request's audit events the viewer may see: status changes always; other events
    through the same turn and phase rules as comments (votes and reviews are the checkers'
    alone); read events only for checkers who ask for them. Refusals are not shown."""

    def work(session: Session, me: Person) -> tuple[Seen, str]:
        return _seeing(session, ctx, me, request_id), me.email

    seen, _ = read(ctx, actor, work)
    facts, viewer = seen.facts, seen.viewer
    phase = phase_of(facts.status)
    private_comments = {c.id for c in facts.comments if c.visibility is Visibility.PRIVATE}
    entries: list[ActivityEntry] = []
    for event in audit.records(ctx.engine, project=seen.project.slug):
        if event.target != seen.request.uuid or event.outcome != "ok":
            continue
        turn = int(event.detail.get("turn", 0))
        if event.action in READ_EVENTS:
            if not (include_reads and viewer.reviewer):
                continue
        elif event.action not in STATUS_EVENTS:
            private = event.action in CHECKER_EVENTS or (
                event.detail.get("comment_id") in private_comments
            )
            item = _Event(event.actor, turn, Visibility.PRIVATE if private else Visibility.PUBLIC)
            if not is_visible(item, facts.turn, phase, viewer, facts.voided_turns):
                continue
        entries.append(
            ActivityEntry(event.seq, event.at, event.actor, event.action, turn, event.detail)
        )
    return entries


@dataclass(frozen=True)
class _Event:
    author: str
    turn: int
    visibility: Visibility


# Open reviews per checker, one aggregate in the database (built once): (reviewer, request)
# pairs with a vote this turn on a request under review and no review submitted this turn.
_SUBMITTED = (
    select(m.Review.id)
    .where(
        m.Review.request_id == m.Request.id,
        m.Review.reviewer_id == m.VoteRow.reviewer_id,
        m.Review.turn == m.Request.review_turn,
    )
    .exists()
)
OPEN_REVIEWS = (
    select(Person.email, func.count(m.Request.id.distinct()))
    .select_from(m.Request)
    .join(m.File, m.File.request_id == m.Request.id)
    .join(
        m.VoteRow,
        and_(m.VoteRow.file_id == m.File.id, m.VoteRow.turn == m.Request.review_turn),
    )
    .join(Person, Person.id == m.VoteRow.reviewer_id)
    .where(m.Request.status.in_(("submitted", "partially_reviewed", "reviewed")), ~_SUBMITTED)
    .group_by(Person.email)
)


def reviewer_load(ctx: Context, actor: str, reviewers: Sequence[str] = ()) -> dict[str, int]:
    """Open reviews per checker: requests under review in which they voted this turn and
    have not yet submitted (for the overview; any output checker may ask)."""

    def work(session: Session, me: Person) -> dict[str, int]:
        perms.check_can_review(ActorFacts(me.email, frozenset(me.role_names), False, False))
        rows = session.execute(OPEN_REVIEWS).all()
        load = {email: int(n) for email, n in rows}
        return {k: v for k, v in load.items() if not reviewers or k in reviewers}

    return dict(ctx.cached(("queue_load", actor, tuple(reviewers)), lambda: read(ctx, actor, work)))
