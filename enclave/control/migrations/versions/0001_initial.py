"""Initial control-plane schema: people, projects, datasets, grants, tokens, audit chain.

Revision ID: 0001
Revises:
Create Date: 2026-11-20
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(name: str, table: str, refers: str, nullable: bool = False) -> list[SchemaItem]:
    return [
        sa.Column(name, sa.Integer(), nullable=nullable),
        sa.ForeignKeyConstraint([name], [f"{refers}.id"], name=f"fk_{table}_{name}_{refers}"),
    ]


def upgrade() -> None:
    _create_tables()
    _create_audit_tables()
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    op.execute(sa.text(f"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS}')"))


def _create_tables() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("totp_secret", sa.String(64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_people"),
        sa.UniqueConstraint("uuid", name="uq_people_uuid"),
        sa.UniqueConstraint("email", name="uq_people_email"),
        sa.UniqueConstraint("username", name="uq_people_username"),
    )
    op.create_table(
        "person_roles",
        *_fk("person_id", "person_roles", "people"),
        sa.Column("role", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("person_id", "role", name="pk_person_roles"),
    )
    op.create_table(
        "accreditations",
        sa.Column("id", sa.Integer(), primary_key=True),
        *_fk("person_id", "accreditations", "people"),
        sa.Column("scheme", sa.String(100), nullable=False),
        sa.Column("reference", sa.String(100), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        _ts("recorded_at"),
        *_fk("recorded_by_id", "accreditations", "people", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_accreditations"),
    )
    op.create_index("ix_accreditations_person_id", "accreditations", ["person_id"])
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("lay_summary", sa.Text(), nullable=False),
        sa.Column("public_benefit", sa.Text(), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("legal_basis", sa.String(300), nullable=False),
        sa.Column("ethics_reference", sa.String(200), nullable=False),
        sa.Column("dsa_reference", sa.String(200), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("disclosure", sa.Text(), nullable=False),
        sa.Column("outputs_released", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("approved_at", nullable=True),
        _ts("closed_at", nullable=True),
        *_fk("created_by_id", "projects", "people"),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("slug", name="uq_projects_slug"),
    )
    op.create_index("ix_projects_state", "projects", ["state"])
    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), primary_key=True),
        *_fk("project_id", "memberships", "projects"),
        *_fk("person_id", "memberships", "people"),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        _ts("added_at"),
        *_fk("added_by_id", "memberships", "people"),
        _ts("removed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_memberships"),
    )
    op.create_index("ix_memberships_project_id", "memberships", ["project_id"])
    op.create_index("ix_memberships_person_id", "memberships", ["person_id"])
    _create_data_tables()


def _create_data_tables() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source_agency", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("version", sa.String(80), nullable=False),
        *_fk("custodian_id", "datasets", "people"),
        _ts("created_at"),
        *_fk("created_by_id", "datasets", "people"),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("slug", name="uq_datasets_slug"),
    )
    op.create_table(
        "dataset_variables",
        *_fk("dataset_id", "dataset_variables", "datasets"),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sensitivity", sa.String(32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", "name", name="pk_dataset_variables"),
    )
    op.create_table(
        "dataset_purposes",
        *_fk("dataset_id", "dataset_purposes", "datasets"),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", "purpose", name="pk_dataset_purposes"),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uuid", sa.String(36), nullable=False),
        *_fk("project_id", "grants", "projects"),
        *_fk("dataset_id", "grants", "datasets"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        *_fk("requested_by_id", "grants", "people"),
        _ts("requested_at"),
        *_fk("decided_by_id", "grants", "people", nullable=True),
        _ts("decided_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_grants"),
        sa.UniqueConstraint("uuid", name="uq_grants_uuid"),
    )
    op.create_index("ix_grants_project_id", "grants", ["project_id"])
    op.create_index("ix_grants_dataset_id", "grants", ["dataset_id"])
    op.create_table(
        "grant_variables",
        *_fk("grant_id", "grant_variables", "grants"),
        sa.Column("name", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", "name", name="pk_grant_variables"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uuid", sa.String(36), nullable=False),
        *_fk("person_id", "api_tokens", "people"),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("uuid", name="uq_api_tokens_uuid"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_person_id", "api_tokens", ["person_id"])


def _create_audit_tables() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("project", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sa.UniqueConstraint("uuid", name="uq_audit_events_uuid"),
        sa.UniqueConstraint("hash", name="uq_audit_events_hash"),
    )
    op.create_index("ix_audit_events_action", "audit_events", ["action"])
    op.create_index("ix_audit_events_project", "audit_events", ["project"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
    )


# The log is append-only at the database level: events cannot be changed or removed, a new
# event must extend the head, and the head only moves forward onto the newest event.
SQLITE_TRIGGERS = (
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER audit_events_extend_head BEFORE INSERT ON audit_events
    WHEN NEW.seq IS NOT (SELECT seq + 1 FROM audit_head WHERE id = 1)
      OR NEW.prev_hash IS NOT (SELECT hash FROM audit_head WHERE id = 1)
    BEGIN SELECT RAISE(ABORT, 'an audit event must extend the chain head'); END""",
    """CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
    WHEN NEW.id IS NOT OLD.id OR NEW.seq IS NOT OLD.seq + 1
      OR NEW.hash IS NOT (SELECT hash FROM audit_events WHERE seq = NEW.seq)
    BEGIN SELECT RAISE(ABORT, 'the audit head only moves forward'); END""",
    """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
)

POSTGRESQL_TRIGGERS = (
    """CREATE FUNCTION enclave_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$""",
    """CREATE FUNCTION enclave_audit_extend() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE head audit_head%ROWTYPE;
    BEGIN
      SELECT * INTO head FROM audit_head WHERE id = 1;
      IF NEW.seq IS DISTINCT FROM head.seq + 1 OR NEW.prev_hash IS DISTINCT FROM head.hash THEN
        RAISE EXCEPTION 'an audit event must extend the chain head';
      END IF;
      RETURN NEW;
    END $$""",
    """CREATE FUNCTION enclave_audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.id IS DISTINCT FROM OLD.id OR NEW.seq IS DISTINCT FROM OLD.seq + 1
         OR NEW.hash IS DISTINCT FROM (SELECT hash FROM audit_events WHERE seq = NEW.seq) THEN
        RAISE EXCEPTION 'the audit head only moves forward';
      END IF;
      RETURN NEW;
    END $$""",
    """CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION enclave_audit_refuse()""",
    """CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION enclave_audit_refuse()""",
    """CREATE TRIGGER audit_events_extend_head BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION enclave_audit_extend()""",
    """CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION enclave_audit_head_forward()""",
    """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION enclave_audit_refuse()""",
    """CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION enclave_audit_refuse()""",
)


def downgrade() -> None:
    for table in (
        "audit_head",
        "audit_events",
        "api_tokens",
        "grant_variables",
        "grants",
        "dataset_purposes",
        "dataset_variables",
        "datasets",
        "memberships",
        "projects",
        "accreditations",
        "person_roles",
        "people",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        for function in (
            "enclave_audit_refuse",
            "enclave_audit_extend",
            "enclave_audit_head_forward",
        ):
            op.execute(f"DROP FUNCTION {function}()")
