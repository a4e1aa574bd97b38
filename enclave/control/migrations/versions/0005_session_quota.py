"""Per-project session quotas (SATRE 2.3.03): the operator's caps on each session of a
project, as canonical JSON (memory_bytes, cpus, pids), laid over the tier's.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "projects",
        sa.Column("session_quota", sa.Text(), nullable=False, server_default="{}"),
    )


def downgrade() -> None:
    op.drop_column("projects", "session_quota")
