"""Review queue schema: requests, groups, files and their versions, votes, reviews, comments,
voided turns, releases and their items, consumed outbox bundles.

Revision ID: q0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "q0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = (
    "queue_requests",
    "queue_groups",
    "queue_files",
    "queue_file_versions",
    "queue_votes",
    "queue_reviews",
    "queue_comments",
    "queue_void_turns",
    "queue_releases",
    "queue_release_items",
    "queue_bundles",
)


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Integer(), primary_key=True)


def _ref(table: str, column: str, refers: str, nullable: bool = False) -> list[Any]:
    return [
        sa.Column(column, sa.Integer(), nullable=nullable),
        sa.ForeignKeyConstraint([column], [f"{refers}.id"], name=f"fk_{table}_{column}_{refers}"),
    ]


def _index(table: str, *columns: str, unique: bool = False) -> None:
    op.create_index(f"ix_{table}_{'_'.join(columns)}", table, list(columns), unique=unique)


def upgrade() -> None:
    t = "queue_requests"
    op.create_table(
        t,
        _id(),
        sa.Column("uuid", sa.String(36), nullable=False),
        *_ref(t, "project_id", "projects"),
        *_ref(t, "author_id", "people"),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("review_turn", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("status_changed_at"),
        _ts("first_submitted_at", nullable=True),
        _ts("last_submitted_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("uuid", name=f"uq_{t}_uuid"),
    )
    for column in ("project_id", "author_id", "status"):
        _index(t, column)

    t = "queue_groups"
    op.create_table(
        t,
        _id(),
        *_ref(t, "request_id", "queue_requests"),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("controls", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("request_id", "name", name=f"uq_{t}_request_id_name"),
    )
    _index(t, "request_id")

    t = "queue_files"
    op.create_table(
        t,
        _id(),
        sa.Column("uuid", sa.String(36), nullable=False),
        *_ref(t, "request_id", "queue_requests"),
        *_ref(t, "group_id", "queue_groups"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("filetype", sa.String(8), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("recipe", sa.Text(), nullable=True),
        sa.Column("exception", sa.Text(), nullable=False),
        sa.Column("automated_status", sa.String(8), nullable=True),
        sa.Column("recheck", sa.String(32), nullable=True),
        sa.Column("check_summary", sa.Text(), nullable=False),
        _ts("checked_at", nullable=True),
        sa.Column("added_turn", sa.Integer(), nullable=False),
        sa.Column("content_turn", sa.Integer(), nullable=False),
        sa.Column("withdrawn_turn", sa.Integer(), nullable=True),
        _ts("added_at"),
        _ts("released_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("uuid", name=f"uq_{t}_uuid"),
        sa.UniqueConstraint("request_id", "name", name=f"uq_{t}_request_id_name"),
    )
    for column in ("request_id", "group_id", "sha256"):
        _index(t, column)

    t = "queue_file_versions"
    op.create_table(
        t,
        _id(),
        *_ref(t, "file_id", "queue_files"),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        _ts("recorded_at"),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
    )
    _index(t, "file_id")

    t = "queue_votes"
    op.create_table(
        t,
        _id(),
        *_ref(t, "file_id", "queue_files"),
        *_ref(t, "reviewer_id", "people"),
        sa.Column("vote", sa.String(24), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("file_id", "reviewer_id", name=f"uq_{t}_file_id_reviewer_id"),
    )
    _index(t, "file_id")

    t = "queue_reviews"
    op.create_table(
        t,
        _id(),
        *_ref(t, "request_id", "queue_requests"),
        *_ref(t, "reviewer_id", "people"),
        sa.Column("turn", sa.Integer(), nullable=False),
        _ts("submitted_at"),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint(
            "request_id", "reviewer_id", "turn", name=f"uq_{t}_request_id_reviewer_id_turn"
        ),
    )
    _index(t, "request_id")
    _index(t, "reviewer_id")

    t = "queue_comments"
    op.create_table(
        t,
        _id(),
        sa.Column("uuid", sa.String(36), nullable=False),
        *_ref(t, "request_id", "queue_requests"),
        *_ref(t, "group_id", "queue_groups", nullable=True),
        *_ref(t, "file_id", "queue_files", nullable=True),
        *_ref(t, "author_id", "people"),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("visibility", sa.String(8), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("uuid", name=f"uq_{t}_uuid"),
    )
    _index(t, "request_id")

    t = "queue_void_turns"
    op.create_table(
        t,
        *_ref(t, "request_id", "queue_requests"),
        sa.Column("turn", sa.Integer(), nullable=False, autoincrement=False),
        _ts("voided_at"),
        *_ref(t, "voided_by_id", "people"),
        sa.PrimaryKeyConstraint("request_id", "turn", name=f"pk_{t}"),
    )

    t = "queue_releases"
    op.create_table(
        t,
        _id(),
        sa.Column("uuid", sa.String(36), nullable=False),
        *_ref(t, "request_id", "queue_requests"),
        *_ref(t, "approved_by_id", "people"),
        _ts("approved_at"),
        sa.Column("comment", sa.Text(), nullable=False),
        _ts("completed_at", nullable=True),
        _ts("registered_at", nullable=True),
        _ts("revoked_at", nullable=True),
        *_ref(t, "revoked_by_id", "people", nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("uuid", name=f"uq_{t}_uuid"),
        sa.UniqueConstraint("request_id", name=f"uq_{t}_request_id"),
    )

    t = "queue_release_items"
    op.create_table(
        t,
        _id(),
        *_ref(t, "release_id", "queue_releases"),
        *_ref(t, "file_id", "queue_files"),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("last_attempt_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        _ts("uploaded_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("release_id", "file_id", name=f"uq_{t}_release_id_file_id"),
    )
    _index(t, "release_id")

    t = "queue_bundles"
    op.create_table(
        t,
        _id(),
        *_ref(t, "project_id", "projects"),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        *_ref(t, "request_id", "queue_requests", nullable=True),
        _ts("consumed_at"),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("project_id", "owner", "name", name=f"uq_{t}_project_id_owner_name"),
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
