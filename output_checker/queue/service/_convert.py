"""Rows to frozen views, filtered for the viewer. Private to the service package."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from output_checker.queue import models as m
from output_checker.queue.facts import RequestFacts
from output_checker.queue.policies import status_for_author
from output_checker.queue.service._base import emails, person_email
from output_checker.queue.views import (
    FileView,
    ReleaseItemView,
    ReleaseView,
    RequestSummary,
    VersionView,
)
from output_checker.queue.visibility import Viewer, visible_decision
from output_checker.queue.workflow import Decision, FileKind, Status


def summary(
    session: Session, request: m.Request, project: str, *, reviewer: bool
) -> RequestSummary:
    """A request for a list or a page header, as a reviewer or the author's side sees it."""
    outputs = session.scalar(
        select(func.count())
        .select_from(m.File)
        .where(
            m.File.request_id == request.id,
            m.File.kind == FileKind.OUTPUT.value,
            m.File.withdrawn_turn.is_(None),
        )
    )
    reviews = session.scalar(
        select(func.count())
        .select_from(m.Review)
        .where(m.Review.request_id == request.id, m.Review.turn == request.review_turn)
    )
    status = Status(request.status)
    return request_summary(
        request,
        project=project,
        author=person_email(session, request.author_id),
        status=status if reviewer else _author_status(status),
        outputs=int(outputs or 0),
        reviews_this_turn=int(reviews or 0) if reviewer else 0,
    )


# The columns ``request_summary`` reads: a list selects these rather than whole rows.
SUMMARY_COLUMNS = (
    m.Request.uuid,
    m.Request.title,
    m.Request.status,
    m.Request.review_turn,
    m.Request.source,
    m.Request.created_at,
    m.Request.status_changed_at,
    m.Request.first_submitted_at,
    m.Request.last_submitted_at,
)


class SummaryColumns(Protocol):
    """What ``request_summary`` reads: an ``m.Request``, or a result row of
    ``SUMMARY_COLUMNS`` (a list selects only those)."""

    @property
    def uuid(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def review_turn(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def status_changed_at(self) -> datetime: ...
    @property
    def first_submitted_at(self) -> datetime | None: ...
    @property
    def last_submitted_at(self) -> datetime | None: ...


def request_summary(
    request: SummaryColumns,
    *,
    project: str,
    author: str,
    status: Status,
    outputs: int,
    reviews_this_turn: int,
) -> RequestSummary:
    """The summary of ``request`` (a row, or a result row with SUMMARY_COLUMNS) with what its
    caller has already established."""
    return RequestSummary(
        id=request.uuid,
        project=project,
        author=author,
        title=request.title,
        status=status,
        turn=request.review_turn,
        source=request.source,
        created_at=request.created_at,
        status_changed_at=request.status_changed_at,
        first_submitted_at=request.first_submitted_at,
        last_submitted_at=request.last_submitted_at,
        outputs=outputs,
        reviews_this_turn=reviews_this_turn,
    )


def _author_status(status: Status) -> Status:
    return status_for_author(RequestFacts(id="", status=status, turn=0, author=""))


def file_view(
    session: Session,
    row: m.File,
    group: str,
    *,
    facts: RequestFacts | None = None,
    viewer: Viewer | None = None,
    versions: Sequence[m.FileVersion] | None = None,
) -> FileView:
    """A file; the checker record only for reviewers, the decision as the viewer may see it.
    ``versions`` are the file's versions in id order if the caller has read them already."""
    if versions is None:
        versions = session.scalars(
            select(m.FileVersion).where(m.FileVersion.file_id == row.id).order_by(m.FileVersion.id)
        ).all()
    decision = Decision.INCOMPLETE
    if facts is not None and viewer is not None:
        match = next(f for f in facts.files if f.id == row.uuid)
        decision = visible_decision(facts, match, viewer)
    reviewer = viewer is not None and viewer.reviewer
    return FileView(
        id=row.uuid,
        name=row.name,
        group=group,
        kind=row.kind,
        withdrawn=row.withdrawn_turn is not None,
        filetype=row.filetype,
        sha256=row.sha256,
        size=row.size,
        automated_status=row.automated_status,
        recheck=row.recheck,
        check_summary=row.check_summary,
        exception=row.exception,
        decision=decision,
        added_turn=row.added_turn,
        content_turn=row.content_turn,
        released_at=row.released_at,
        versions=tuple(VersionView(v.turn, v.sha256, v.size, v.recorded_at) for v in versions),
        recipe=json.loads(row.recipe) if row.recipe else None,
        record=json.loads(row.record) if reviewer and row.record else None,
        ledger=json.loads(row.ledger_report) if row.ledger_report else None,
    )


def release_view(session: Session, release: m.Release, request: m.Request) -> ReleaseView:
    """A release with its items, for any viewer of the request."""
    items = session.execute(
        select(m.ReleaseItem, m.File.uuid, m.File.name)
        .join(m.File, m.File.id == m.ReleaseItem.file_id)
        .where(m.ReleaseItem.release_id == release.id)
        .order_by(m.ReleaseItem.id)
    ).all()
    people = emails(session, {release.approved_by_id} | {release.revoked_by_id or 0})
    return ReleaseView(
        id=release.uuid,
        request_id=request.uuid,
        approved_by=people[release.approved_by_id],
        approved_at=release.approved_at,
        comment=release.comment,
        completed_at=release.completed_at,
        revoked_at=release.revoked_at,
        revoked_by=people.get(release.revoked_by_id or 0),
        revoke_reason=release.revoke_reason,
        items=tuple(
            ReleaseItemView(
                file_id=uuid,
                name=name,
                sha256=item.sha256,
                attempts=item.attempts,
                last_error=item.last_error,
                uploaded_at=item.uploaded_at,
            )
            for item, uuid, name in items
        ),
    )
