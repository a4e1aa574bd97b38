"""What the queue's services return: frozen dataclasses, never ORM rows, already filtered for
the person who asked (blinding and the checker-only evidence applied)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from output_checker.queue.workflow import Decision, Phase, Status


@dataclass(frozen=True)
class RequestSummary:
    """A request in a list. ``status`` is as the viewer may know it (the author's side sees
    ``submitted`` until review ends); ages are the caller's to compute from the times."""

    id: str
    project: str
    author: str
    title: str
    status: Status
    turn: int
    source: str
    created_at: datetime
    status_changed_at: datetime
    first_submitted_at: datetime | None
    last_submitted_at: datetime | None
    outputs: int
    reviews_this_turn: int  # 0 for the author's side


@dataclass(frozen=True)
class VersionView:
    """One snapshot a file has had, and the turn it was recorded in."""

    turn: int
    sha256: str
    size: int
    recorded_at: datetime


@dataclass(frozen=True)
class FileView:
    """A file. ``record`` (the checker's evidence, itself disclosive) is given to eligible
    checkers only; ``decision`` is the one the viewer may see."""

    id: str
    name: str
    group: str
    kind: str
    withdrawn: bool
    filetype: str
    sha256: str
    size: int
    automated_status: str | None
    recheck: str | None
    check_summary: str
    exception: str
    decision: Decision
    added_turn: int
    content_turn: int
    released_at: datetime | None
    versions: tuple[VersionView, ...]
    recipe: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    ledger: dict[str, Any] | None = None  # the differencing audit (``service.ledger``)


@dataclass(frozen=True)
class GroupView:
    """A group of files with its context and controls."""

    name: str
    context: str
    controls: str


@dataclass(frozen=True)
class VoteView:
    """A vote the viewer may see, with its override justification."""

    file_id: str
    reviewer: str
    vote: str
    turn: int
    comment: str


@dataclass(frozen=True)
class CommentView:
    """A comment the viewer may see."""

    id: str
    group: str | None
    file_id: str | None
    author: str
    body: str
    visibility: str
    turn: int
    created_at: datetime


@dataclass(frozen=True)
class ReleaseItemView:
    """One output of a release and the state of its copy."""

    file_id: str
    name: str
    sha256: str
    attempts: int
    last_error: str
    uploaded_at: datetime | None


@dataclass(frozen=True)
class ReleaseView:
    """A request's release: who approved it, its copies, revocation."""

    id: str
    request_id: str
    approved_by: str
    approved_at: datetime
    comment: str
    completed_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str
    items: tuple[ReleaseItemView, ...] = ()


@dataclass(frozen=True)
class RequestDetail:
    """One request as ``viewer`` may see it, with the actions the buttons may offer
    (``allowed``: names of service functions whose role and state rules pass now)."""

    summary: RequestSummary
    phase: Phase
    viewer: str
    viewer_is_reviewer: bool
    groups: tuple[GroupView, ...]
    files: tuple[FileView, ...]
    votes: tuple[VoteView, ...]
    comments: tuple[CommentView, ...]
    my_review_submitted: bool
    release: ReleaseView | None
    allowed: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class FileContent:
    """A verified snapshot's bytes, for viewing in the browser or downloading."""

    request_id: str
    file_id: str
    name: str
    filetype: str
    sha256: str
    data: bytes


@dataclass(frozen=True)
class ActivityEntry:
    """An audit event of the request, as the viewer may see it."""

    seq: int
    at: str
    actor: str
    event: str
    turn: int
    detail: dict[str, Any]
