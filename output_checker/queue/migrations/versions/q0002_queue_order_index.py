"""Index the queue's order (oldest status change first, then id), so that a page of the
overview is read from the index instead of sorting every visible request.

Revision ID: q0002
Revises: q0001
Create Date: 2027-01-10
"""

from __future__ import annotations

from alembic import op

revision = "q0002"
down_revision = "q0001"
branch_labels = None
depends_on = None

NAME = "ix_queue_requests_status_changed_at_id"


def upgrade() -> None:
    op.create_index(NAME, "queue_requests", ["status_changed_at", "id"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="queue_requests")
