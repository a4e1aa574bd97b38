"""SQLAlchemy models of the review queue, in the control plane's database.

Only ``output_checker.queue.service``, ``watcher`` and ``release`` touch them. The tables live
beside the control plane's and refer to its ``people`` and ``projects`` rows; they are created
by the queue's own Alembic migrations (``migrations/``, version table
``alembic_version_queue``), which run after the control plane's. Internal integer keys join
the tables; the outside world sees UUIDs. Votes, reviews, comments and the request carry the
turn they belong to, from which visibility is computed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from enclave.control.models import NAMING, UTCDateTime
from enclave.control.models import Person as _Person

# The referenced control-plane tables are copied into this metadata only so that foreign keys
# resolve; the queue's migrations never create, alter or drop them.
CONTROL_TABLES = frozenset({"datasets", "people", "projects"})


class QueueBase(DeclarativeBase):
    """Declarative base of the queue's tables (their own metadata)."""

    metadata = MetaData(naming_convention=NAMING)


for _name in sorted(CONTROL_TABLES):
    _Person.metadata.tables[_name].to_metadata(QueueBase.metadata)


def _person(nullable: bool = False, index: bool = False) -> Mapped[int]:
    return mapped_column(ForeignKey("people.id"), nullable=nullable, index=index)


class Request(QueueBase):
    """A release request: a project's outputs on their way to release."""

    __tablename__ = "queue_requests"
    # The overview's order, so that a page is read off the index (migration q0002).
    __table_args__ = (Index("ix_queue_requests_status_changed_at_id", "status_changed_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    author_id: Mapped[int] = _person(index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(32), index=True)
    review_turn: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(16))  # "upload" or "bundle"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Group(QueueBase):
    """Files that share a context ("what is this") and disclosure controls."""

    __tablename__ = "queue_groups"
    __table_args__ = (UniqueConstraint("request_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("queue_requests.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    context: Mapped[str] = mapped_column(Text, default="")
    controls: Mapped[str] = mapped_column(Text, default="")


class File(QueueBase):
    """One file of a request and its current snapshot; ``withdrawn_turn`` is set when the
    author withdrew it after review began (it stays, so checkers see the change)."""

    __tablename__ = "queue_files"
    __table_args__ = (UniqueConstraint("request_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("queue_requests.id"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("queue_groups.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # output | supporting
    filetype: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    record: Mapped[str | None] = mapped_column(Text)  # the checker's manifest record (JSON)
    recipe: Mapped[str | None] = mapped_column(Text)  # declarative recipe (canonical JSON)
    exception: Mapped[str] = mapped_column(Text, default="")  # the researcher's request
    automated_status: Mapped[str | None] = mapped_column(String(8))  # pass | review | fail
    recheck: Mapped[str | None] = mapped_column(String(32))
    check_summary: Mapped[str] = mapped_column(Text, default="")
    # the differencing audit against the project's ledger (JSON), and the stored aggregates
    # of this output's published cells (content address in the ledger store; recipes only)
    ledger_report: Mapped[str | None] = mapped_column(Text)
    ledger_sha256: Mapped[str | None] = mapped_column(String(64))
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    added_turn: Mapped[int] = mapped_column(Integer)
    content_turn: Mapped[int] = mapped_column(Integer)  # last add, update, move or retype
    withdrawn_turn: Mapped[int | None] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FileVersion(QueueBase):
    """Every snapshot a file has had, by turn: the basis of diffs between resubmissions."""

    __tablename__ = "queue_file_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("queue_files.id"), index=True)
    turn: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class VoteRow(QueueBase):
    """A reviewer's current vote on a file, stamped with the turn it was last set in."""

    __tablename__ = "queue_votes"
    __table_args__ = (UniqueConstraint("file_id", "reviewer_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("queue_files.id"), index=True)
    reviewer_id: Mapped[int] = _person()
    vote: Mapped[str] = mapped_column(String(24))
    turn: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")  # the override justification
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Review(QueueBase):
    """A submitted review: one per reviewer per turn."""

    __tablename__ = "queue_reviews"
    __table_args__ = (UniqueConstraint("request_id", "reviewer_id", "turn"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("queue_requests.id"), index=True)
    reviewer_id: Mapped[int] = _person(index=True)
    turn: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Comment(QueueBase):
    """A markdown comment on a group (or, for return messages, the request), with its turn."""

    __tablename__ = "queue_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("queue_requests.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("queue_groups.id"))
    file_id: Mapped[int | None] = mapped_column(ForeignKey("queue_files.id"))
    author_id: Mapped[int] = _person()
    body: Mapped[str] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(8))
    turn: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class VoidTurn(QueueBase):
    """A turn voided by an early return: its items are hidden, never deleted."""

    __tablename__ = "queue_void_turns"

    request_id: Mapped[int] = mapped_column(ForeignKey("queue_requests.id"), primary_key=True)
    turn: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    voided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    voided_by_id: Mapped[int] = _person()


class Release(QueueBase):
    """The release of an approved request (one per request); revocation marks it."""

    __tablename__ = "queue_releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("queue_requests.id"), unique=True)
    approved_by_id: Mapped[int] = _person()
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = _person(nullable=True)
    revoke_reason: Mapped[str] = mapped_column(Text, default="")


class ReleaseItem(QueueBase):
    """One output to copy to the released area, keyed by (release, file), with its attempts."""

    __tablename__ = "queue_release_items"
    __table_args__ = (UniqueConstraint("release_id", "file_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("queue_releases.id"), index=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("queue_files.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LedgerEntry(QueueBase):
    """An output that became known outside the enclave (approved for release), in the
    project's differencing ledger. Append-only: revoking a release never removes its entry,
    since what was released stays known. ``sha256`` addresses the stored aggregates of its
    published cells; it is null for an output without a recipe, which is counted (the audit
    reports it could not be checked against it) but contributes no aggregates."""

    __tablename__ = "queue_ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("queue_releases.id"), index=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("queue_files.id"), unique=True)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SignoffRow(QueueBase):
    """A dataset custodian's (or delegate's) sign-off of a request's release, for one dataset
    in one turn: approve, or refuse with a reason (SATRE 3.1.06). One per signer, dataset and
    turn; never changed."""

    __tablename__ = "queue_signoffs"
    __table_args__ = (UniqueConstraint("request_id", "dataset_id", "signer_id", "turn"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("queue_requests.id"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    signer_id: Mapped[int] = _person()
    turn: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(16))  # approve | refuse
    reason: Mapped[str] = mapped_column(Text, default="")
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BundleRow(QueueBase):
    """An outbox bundle the watcher consumed (once): accepted into a request, or refused."""

    __tablename__ = "queue_bundles"
    __table_args__ = (UniqueConstraint("project_id", "owner", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    owner: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))  # accepted | refused
    reason: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[int | None] = mapped_column(ForeignKey("queue_requests.id"))
    consumed_at: Mapped[datetime] = mapped_column(UTCDateTime)


QUEUE_TABLES = frozenset(name for name in QueueBase.metadata.tables if name not in CONTROL_TABLES)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic filter: autogenerate and compare only the queue's tables and their parts."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    table_name = name if type_ == "table" else getattr(table, "name", None)
    return table_name in QUEUE_TABLES
