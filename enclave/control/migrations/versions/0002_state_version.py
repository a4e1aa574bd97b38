"""The state version: a counter every write transaction moves on, so that readers can keep
results while it stands still (``enclave.control.readcache``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "state_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_state_version"),
        sa.CheckConstraint("id = 1", name="ck_state_version_single_row"),
    )
    op.execute(sa.text("INSERT INTO state_version (id, n) VALUES (1, 0)"))


def downgrade() -> None:
    op.drop_table("state_version")
