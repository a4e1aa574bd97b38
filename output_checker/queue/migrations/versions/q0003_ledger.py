"""The differencing ledger: every approved output's published cells, append-only, and each
file's audit against it.

Revision ID: q0003
Revises: q0002
Create Date: 2027-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0003"
down_revision = "q0002"
branch_labels = None
depends_on = None

TABLE = "queue_ledger_entries"


def upgrade() -> None:
    with op.batch_alter_table("queue_files") as batch:
        batch.add_column(sa.Column("ledger_report", sa.Text(), nullable=True))
        batch.add_column(sa.Column("ledger_sha256", sa.String(64), nullable=True))
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=f"fk_{TABLE}_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["release_id"], ["queue_releases.id"], name=f"fk_{TABLE}_release_id_queue_releases"
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["queue_files.id"], name=f"fk_{TABLE}_file_id_queue_files"
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{TABLE}"),
        sa.UniqueConstraint("file_id", name=f"uq_{TABLE}_file_id"),
    )
    op.create_index(f"ix_{TABLE}_project_id", TABLE, ["project_id"])
    op.create_index(f"ix_{TABLE}_release_id", TABLE, ["release_id"])


def downgrade() -> None:
    op.drop_table(TABLE)
    with op.batch_alter_table("queue_files") as batch:
        batch.drop_column("ledger_sha256")
        batch.drop_column("ledger_report")
