"""Governance records (SATRE, issue 12): organisations and their assurance, time-limited
compliance records, user-agreement acceptances, sanctions and appeals, incident freezes,
security alerts, custodian egress rights and delegates, deletion certificates and custodian-
approved dataset versions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agreement_acceptances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_agreement_acceptances_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreement_acceptances")),
    )
    op.create_index(
        op.f("ix_agreement_acceptances_person_id"),
        "agreement_acceptances",
        ["person_id"],
        unique=False,
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=320), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reviewed_by_id"], ["people.id"], name=op.f("fk_alerts_reviewed_by_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_alerts_key")),
        sa.UniqueConstraint("uuid", name=op.f("uq_alerts_uuid")),
    )
    op.create_index(op.f("ix_alerts_kind"), "alerts", ["kind"], unique=False)
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("assurance_scheme", sa.String(length=100), nullable=False),
        sa.Column("assurance_reference", sa.String(length=100), nullable=False),
        sa.Column("assured_until", sa.Date(), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["people.id"], name=op.f("fk_organisations_recorded_by_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    op.create_table(
        "sanctions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("imposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imposed_by_id", sa.Integer(), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by_id", sa.Integer(), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=False),
        sa.Column("appeal", sa.Text(), nullable=False),
        sa.Column("appealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("appeal_outcome", sa.String(length=16), nullable=False),
        sa.Column("appeal_decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("appeal_decided_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["appeal_decided_by_id"],
            ["people.id"],
            name=op.f("fk_sanctions_appeal_decided_by_id_people"),
        ),
        sa.ForeignKeyConstraint(
            ["imposed_by_id"], ["people.id"], name=op.f("fk_sanctions_imposed_by_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["lifted_by_id"], ["people.id"], name=op.f("fk_sanctions_lifted_by_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_sanctions_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sanctions")),
        sa.UniqueConstraint("uuid", name=op.f("uq_sanctions_uuid")),
    )
    op.create_index(op.f("ix_sanctions_person_id"), "sanctions", ["person_id"], unique=False)
    op.create_table(
        "compliance_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(project_id IS NULL) <> (person_id IS NULL)",
            name=op.f("ck_compliance_records_one_subject"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_compliance_records_person_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_compliance_records_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["people.id"],
            name=op.f("fk_compliance_records_recorded_by_id_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_records")),
        sa.UniqueConstraint("uuid", name=op.f("uq_compliance_records_uuid")),
    )
    op.create_index(
        op.f("ix_compliance_records_person_id"), "compliance_records", ["person_id"], unique=False
    )
    op.create_index(
        op.f("ix_compliance_records_project_id"), "compliance_records", ["project_id"], unique=False
    )
    op.create_table(
        "dataset_delegates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by_id", sa.Integer(), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["added_by_id"], ["people.id"], name=op.f("fk_dataset_delegates_added_by_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_delegates_dataset_id_datasets")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_dataset_delegates_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_delegates")),
    )
    op.create_index(
        op.f("ix_dataset_delegates_dataset_id"), "dataset_delegates", ["dataset_id"], unique=False
    )
    op.create_index(
        op.f("ix_dataset_delegates_person_id"), "dataset_delegates", ["person_id"], unique=False
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=80), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_by_id", sa.Integer(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_versions_dataset_id_datasets")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["people.id"], name=op.f("fk_dataset_versions_decided_by_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_id"],
            ["people.id"],
            name=op.f("fk_dataset_versions_submitted_by_id_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_versions")),
        sa.UniqueConstraint("uuid", name=op.f("uq_dataset_versions_uuid")),
    )
    op.create_index(
        op.f("ix_dataset_versions_dataset_id"), "dataset_versions", ["dataset_id"], unique=False
    )
    op.create_table(
        "deletion_certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_by_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("key_id", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["issued_by_id"],
            ["people.id"],
            name=op.f("fk_deletion_certificates_issued_by_id_people"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_deletion_certificates_project_id_projects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_certificates")),
        sa.UniqueConstraint("project_id", name=op.f("uq_deletion_certificates_project_id")),
        sa.UniqueConstraint("uuid", name=op.f("uq_deletion_certificates_uuid")),
    )
    op.create_table(
        "egress_rights",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by_id", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_egress_rights_dataset_id_datasets")
        ),
        sa.ForeignKeyConstraint(
            ["granted_by_id"], ["people.id"], name=op.f("fk_egress_rights_granted_by_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_egress_rights_person_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_egress_rights_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by_id"], ["people.id"], name=op.f("fk_egress_rights_revoked_by_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_egress_rights")),
    )
    op.create_index(
        op.f("ix_egress_rights_dataset_id"), "egress_rights", ["dataset_id"], unique=False
    )
    op.create_index(
        op.f("ix_egress_rights_person_id"), "egress_rights", ["person_id"], unique=False
    )
    op.create_index(
        op.f("ix_egress_rights_project_id"), "egress_rights", ["project_id"], unique=False
    )
    op.create_table(
        "freezes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by_id", sa.Integer(), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ended_by_id"], ["people.id"], name=op.f("fk_freezes_ended_by_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_freezes_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["started_by_id"], ["people.id"], name=op.f("fk_freezes_started_by_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freezes")),
        sa.UniqueConstraint("uuid", name=op.f("uq_freezes_uuid")),
    )
    op.create_index(op.f("ix_freezes_project_id"), "freezes", ["project_id"], unique=False)
    op.add_column(
        "datasets",
        sa.Column("egress_signoff", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("datasets", "egress_signoff")
    op.drop_index(op.f("ix_freezes_project_id"), table_name="freezes")
    op.drop_table("freezes")
    op.drop_index(op.f("ix_egress_rights_project_id"), table_name="egress_rights")
    op.drop_index(op.f("ix_egress_rights_person_id"), table_name="egress_rights")
    op.drop_index(op.f("ix_egress_rights_dataset_id"), table_name="egress_rights")
    op.drop_table("egress_rights")
    op.drop_table("deletion_certificates")
    op.drop_index(op.f("ix_dataset_versions_dataset_id"), table_name="dataset_versions")
    op.drop_table("dataset_versions")
    op.drop_index(op.f("ix_dataset_delegates_person_id"), table_name="dataset_delegates")
    op.drop_index(op.f("ix_dataset_delegates_dataset_id"), table_name="dataset_delegates")
    op.drop_table("dataset_delegates")
    op.drop_index(op.f("ix_compliance_records_project_id"), table_name="compliance_records")
    op.drop_index(op.f("ix_compliance_records_person_id"), table_name="compliance_records")
    op.drop_table("compliance_records")
    op.drop_index(op.f("ix_sanctions_person_id"), table_name="sanctions")
    op.drop_table("sanctions")
    op.drop_table("organisations")
    op.drop_index(op.f("ix_alerts_kind"), table_name="alerts")
    op.drop_table("alerts")
    op.drop_index(op.f("ix_agreement_acceptances_person_id"), table_name="agreement_acceptances")
    op.drop_table("agreement_acceptances")
