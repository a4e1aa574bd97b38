"""Custodian sign-offs: a dataset custodian's (or delegate's) decision on releasing a
request's outputs derived from their dataset, per turn (SATRE 3.1.06).

Revision ID: q0004
Revises: q0003
Create Date: 2027-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0004"
down_revision = "q0003"
branch_labels = None
depends_on = None

TABLE = "queue_signoffs"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("signer_id", sa.Integer(), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["queue_requests.id"], name=f"fk_{TABLE}_request_id_queue_requests"
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=f"fk_{TABLE}_dataset_id_datasets"
        ),
        sa.ForeignKeyConstraint(["signer_id"], ["people.id"], name=f"fk_{TABLE}_signer_id_people"),
        sa.PrimaryKeyConstraint("id", name=f"pk_{TABLE}"),
        sa.UniqueConstraint("uuid", name=f"uq_{TABLE}_uuid"),
        sa.UniqueConstraint(
            "request_id",
            "dataset_id",
            "signer_id",
            "turn",
            name=f"uq_{TABLE}_request_id_dataset_id_signer_id_turn",
        ),
    )
    op.create_index(f"ix_{TABLE}_request_id", TABLE, ["request_id"])


def downgrade() -> None:
    op.drop_table(TABLE)
