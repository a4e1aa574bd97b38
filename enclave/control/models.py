"""SQLAlchemy models of the control plane. Only the service layer and ``audit`` touch them.

Internal integer keys join the tables; the outside world sees UUIDs (people, grants, tokens,
audit events) or slugs (projects, datasets). Timestamps are timezone-aware UTC in Python on
every backend (``UTCDateTime``). The schema itself is created by the Alembic migrations in
``migrations/``; a test keeps these classes and the migrations in step.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that must be aware on the way in and is aware UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        value = value.astimezone(UTC)
        # SQLite keeps no offset: store naive UTC and restore the zone when reading.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _people_fk(nullable: bool = False) -> Mapped[Any]:
    return mapped_column(ForeignKey("people.id"), nullable=nullable)


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    roles: Mapped[list[PersonRole]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="PersonRole.role"
    )
    accreditations: Mapped[list[Accreditation]] = relationship(
        lazy="selectin",
        foreign_keys="Accreditation.person_id",
        order_by="Accreditation.expires_on",
    )

    @property
    def role_names(self) -> frozenset[str]:
        return frozenset(r.role for r in self.roles)


class PersonRole(Base):
    __tablename__ = "person_roles"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class Accreditation(Base):
    __tablename__ = "accreditations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    scheme: Mapped[str] = mapped_column(String(100))
    reference: Mapped[str] = mapped_column(String(100))
    issued_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by_id: Mapped[int | None] = _people_fk(nullable=True)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    lay_summary: Mapped[str] = mapped_column(Text)
    public_benefit: Mapped[str] = mapped_column(Text)
    organisation: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(64))
    legal_basis: Mapped[str] = mapped_column(String(300))
    ethics_reference: Mapped[str] = mapped_column(String(200))
    dsa_reference: Mapped[str] = mapped_column(String(200))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16), index=True)
    disclosure: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON overrides
    # canonical JSON: the operator's caps on each session (memory_bytes, cpus, pids)
    session_quota: Mapped[str] = mapped_column(Text, default="{}")
    outputs_released: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int] = _people_fk()
    # the principal investigator (a researcher); a change is flagged for an admin's review
    pi_id: Mapped[int | None] = _people_fk(nullable=True)

    pi: Mapped[Person | None] = relationship(foreign_keys=[pi_id], lazy="joined")


class Membership(Base):
    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    expires_on: Mapped[date] = mapped_column(Date)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    added_by_id: Mapped[int] = _people_fk()
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    person: Mapped[Person] = relationship(foreign_keys=[person_id], lazy="joined")
    project: Mapped[Project] = relationship(lazy="joined")


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    source_agency: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(String(80))
    custodian_id: Mapped[int] = _people_fk()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int] = _people_fk()
    # whether releasing outputs derived from it needs the custodian's (or a delegate's) sign-off
    egress_signoff: Mapped[bool] = mapped_column(default=False)
    # the custodian's risk target for record-level data from it, canonical JSON (k,
    # max_global_risk; empty: the defaults of output_checker.microdata.problem.RiskTarget)
    microdata_policy: Mapped[str] = mapped_column(Text, default="{}")

    custodian: Mapped[Person] = relationship(foreign_keys=[custodian_id], lazy="joined")
    variables: Mapped[list[DatasetVariable]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="DatasetVariable.position"
    )
    purposes: Mapped[list[DatasetPurpose]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="DatasetPurpose.purpose"
    )


class DatasetVariable(Base):
    __tablename__ = "dataset_variables"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    sensitivity: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")


class DatasetPurpose(Base):
    __tablename__ = "dataset_purposes"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(64), primary_key=True)


class Grant(Base):
    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    expires_on: Mapped[date] = mapped_column(Date)
    requested_by_id: Mapped[int] = _people_fk()
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = _people_fk(nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")

    project: Mapped[Project] = relationship(lazy="joined")
    dataset: Mapped[Dataset] = relationship(lazy="joined")
    requested_by: Mapped[Person] = relationship(foreign_keys=[requested_by_id], lazy="joined")
    decided_by: Mapped[Person | None] = relationship(foreign_keys=[decided_by_id], lazy="joined")
    variables: Mapped[list[GrantVariable]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="GrantVariable.name"
    )


class GrantVariable(Base):
    __tablename__ = "grant_variables"

    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex, never the token
    label: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    person: Mapped[Person] = relationship(lazy="joined")


class AuditEvent(Base):
    """One link of the hash chain. Rows are never updated or deleted (database triggers)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    at: Mapped[str] = mapped_column(String(32))  # ISO 8601 UTC, hashed as stored
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(200))
    project: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The single row naming the chain's last event; appends lock it to serialise."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class StateVersion(Base):
    """The single row counting write transactions; see ``enclave.control.readcache``."""

    __tablename__ = "state_version"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger)


# ----- governance records (SATRE pillars 1-3) ----------------------------------------------------


class Organisation(Base):
    """An organisation people belong to (matched on ``Person.organisation``) and its assurance
    (for example a DSPT or ISO 27001 certificate) with an expiry: its people are blocked while
    it is missing, lapsed or withdrawn."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    assurance_scheme: Mapped[str] = mapped_column(String(100))
    assurance_reference: Mapped[str] = mapped_column(String(100))
    assured_until: Mapped[date] = mapped_column(Date)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by_id: Mapped[int] = _people_fk()


class ComplianceRecord(Base):
    """One time-limited compliance item of a project (data-sharing agreement, ethics approval,
    funding, DPIA) or of a person (training): valid from one date to another. A newer record
    of the same kind supersedes the older one, which is kept."""

    __tablename__ = "compliance_records"
    __table_args__ = (
        CheckConstraint("(project_id IS NULL) <> (person_id IS NULL)", name="one_subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")  # e.g. a course's version
    valid_from: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by_id: Mapped[int] = _people_fk()
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AgreementAcceptance(Base):
    """A person's acceptance of one version of the user agreement."""

    __tablename__ = "agreement_acceptances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Sanction(Base):
    """A person suspended (until lifted) or barred (for good) across every project after a
    breach, with the reason, and the person's appeal and its outcome."""

    __tablename__ = "sanctions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # suspended | barred
    reason: Mapped[str] = mapped_column(Text)
    imposed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    imposed_by_id: Mapped[int] = _people_fk()
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_by_id: Mapped[int | None] = _people_fk(nullable=True)
    lift_reason: Mapped[str] = mapped_column(Text, default="")
    appeal: Mapped[str] = mapped_column(Text, default="")
    appealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    appeal_outcome: Mapped[str] = mapped_column(String(16), default="")  # upheld | overturned
    appeal_decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    appeal_decided_by_id: Mapped[int | None] = _people_fk(nullable=True)


class Freeze(Base):
    """An incident freeze: every session stopped and every release held, for one project or
    (``project_id`` NULL) the whole enclave, until it is ended."""

    __tablename__ = "freezes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_by_id: Mapped[int] = _people_fk()
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by_id: Mapped[int | None] = _people_fk(nullable=True)


class Alert(Base):
    """A security alert raised from the audit log (repeated failed logins, refused access,
    unusual export volume), waiting in the admins' review queue until someone closes it."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(320))  # who or which project it is about
    key: Mapped[str] = mapped_column(String(200), unique=True)  # one alert per occurrence
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON, no person-level data
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by_id: Mapped[int | None] = _people_fk(nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default="")  # benign | incident
    note: Mapped[str] = mapped_column(Text, default="")


class EgressRight(Base):
    """The custodian's (or a delegate's) grant to one person of the right to request the
    release of outputs derived from one dataset in one project (SATRE 3.1.06)."""

    __tablename__ = "egress_rights"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    granted_by_id: Mapped[int] = _people_fk()
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = _people_fk(nullable=True)


class DatasetDelegate(Base):
    """A person the custodian delegates egress decisions for their dataset to."""

    __tablename__ = "dataset_delegates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    added_by_id: Mapped[int] = _people_fk()
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeletionCertificate(Base):
    """The signed record of what a governed project close deleted or archived (hashes, when,
    by whom) and which keys it destroyed (SATRE 1.4.04, 3.1.10)."""

    __tablename__ = "deletion_certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    issued_by_id: Mapped[int] = _people_fk()
    body: Mapped[str] = mapped_column(Text)  # canonical JSON, what the signature covers
    signature: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(100))


class DatasetVersion(Base):
    """A version of a dataset brought in by its custodian: validated and scanned, then usable
    (by linkage and extracts) only once the custodian approves it (SATRE 3.1.04)."""

    __tablename__ = "dataset_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    version: Mapped[str] = mapped_column(String(80))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(500))  # inside the data directory
    state: Mapped[str] = mapped_column(String(16))  # submitted | rejected | approved
    report: Mapped[str] = mapped_column(Text)  # canonical JSON: validation and scan findings
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    submitted_by_id: Mapped[int] = _people_fk()
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = _people_fk(nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")


class PackageRequest(Base):
    """A researcher's request for a package in the sessions' wheelhouse (SATRE 2.1.12-13):
    reviewed by an admin, who approves it with the wheel files the operator fetched on the
    host (``wheels``: canonical JSON list of ``{"filename", "sha256"}``) or rejects it."""

    __tablename__ = "package_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    requested_by_id: Mapped[int] = _people_fk()
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    name: Mapped[str] = mapped_column(String(100))  # PEP 503-normalised
    version_spec: Mapped[str] = mapped_column(String(100), default="")
    justification: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # requested | approved | rejected
    decided_by_id: Mapped[int | None] = _people_fk(nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    wheels: Mapped[str] = mapped_column(Text, default="[]")
