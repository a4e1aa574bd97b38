"""What the service layer returns: frozen dataclasses, never ORM rows, so faces cannot lazy-load
or change the database behind the service layer's back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from enclave.control import models


@dataclass(frozen=True)
class AccreditationView:
    scheme: str
    reference: str
    issued_on: date
    expires_on: date
    recorded_at: datetime


@dataclass(frozen=True)
class PersonView:
    """A person; ``accredited_until`` is the latest accreditation expiry (None if none)."""

    uuid: str
    email: str
    username: str
    name: str
    organisation: str
    roles: tuple[str, ...]
    active: bool
    accredited_until: date | None
    mfa_enrolled: bool
    has_password: bool
    created_at: datetime
    accreditations: tuple[AccreditationView, ...]

    def accredited_on(self, day: date) -> bool:
        """Whether an accreditation covers ``day``."""
        return any(a.issued_on <= day <= a.expires_on for a in self.accreditations)


@dataclass(frozen=True)
class ProjectView:
    """A project. ``pi_email``: its principal investigator, if named. ``flagged_for_review``:
    a change of PI that no admin has reviewed yet (filled in by ``get_project``,
    ``list_projects`` and ``set_project_pi``; False elsewhere)."""

    slug: str
    title: str
    lay_summary: str
    public_benefit: str
    organisation: str
    purpose: str
    legal_basis: str
    ethics_reference: str
    dsa_reference: str
    start_date: date
    end_date: date
    state: str
    disclosure: dict[str, Any]  # the project's tightening overrides of the checker defaults
    outputs_released: int
    created_at: datetime
    approved_at: datetime | None
    closed_at: datetime | None
    pi_email: str | None = None
    flagged_for_review: bool = False


@dataclass(frozen=True)
class MembershipView:
    project: str
    person_uuid: str
    email: str
    name: str
    role: str
    expires_on: date
    added_at: datetime
    removed_at: datetime | None


@dataclass(frozen=True)
class VariableView:
    name: str
    sensitivity: str
    description: str


@dataclass(frozen=True)
class DatasetView:
    """A registered dataset. ``flagged_for_review``: a change of custodian that no admin has
    reviewed yet (filled in by ``get_dataset``, ``list_datasets`` and ``transfer_custody``;
    False elsewhere)."""

    slug: str
    name: str
    source_agency: str
    description: str
    version: str
    custodian_email: str
    custodian_name: str
    permitted_purposes: tuple[str, ...]
    variables: tuple[VariableView, ...]
    created_at: datetime
    flagged_for_review: bool = False


@dataclass(frozen=True)
class GrantView:
    uuid: str
    project: str
    dataset: str
    dataset_version: str
    variables: tuple[str, ...]
    state: str
    expires_on: date
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    revoked_at: datetime | None
    reason: str

    def in_force(self, day: date) -> bool:
        """Approved, not revoked and not expired on ``day``."""
        return self.state == "approved" and self.revoked_at is None and day <= self.expires_on


@dataclass(frozen=True)
class TokenView:
    uuid: str
    email: str
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class IssuedToken:
    """A new bearer token: ``token`` is shown once and only its sha256 is stored."""

    token: str
    info: TokenView


@dataclass(frozen=True)
class TotpEnrolment:
    """A new TOTP secret and the otpauth:// URI an authenticator app scans."""

    secret: str
    uri: str


def person_view(row: models.Person) -> PersonView:
    accreditations = tuple(
        AccreditationView(a.scheme, a.reference, a.issued_on, a.expires_on, a.recorded_at)
        for a in row.accreditations
    )
    return PersonView(
        uuid=row.uuid,
        email=row.email,
        username=row.username,
        name=row.name,
        organisation=row.organisation,
        roles=tuple(sorted(row.role_names)),
        active=row.active,
        accredited_until=max((a.expires_on for a in accreditations), default=None),
        mfa_enrolled=row.totp_secret is not None,
        has_password=row.password_hash is not None,
        created_at=row.created_at,
        accreditations=accreditations,
    )


def project_view(row: models.Project, *, flagged: bool = False) -> ProjectView:
    return ProjectView(
        slug=row.slug,
        title=row.title,
        lay_summary=row.lay_summary,
        public_benefit=row.public_benefit,
        organisation=row.organisation,
        purpose=row.purpose,
        legal_basis=row.legal_basis,
        ethics_reference=row.ethics_reference,
        dsa_reference=row.dsa_reference,
        start_date=row.start_date,
        end_date=row.end_date,
        state=row.state,
        disclosure=json.loads(row.disclosure),
        outputs_released=row.outputs_released,
        created_at=row.created_at,
        approved_at=row.approved_at,
        closed_at=row.closed_at,
        pi_email=row.pi.email if row.pi is not None else None,
        flagged_for_review=flagged,
    )


def membership_view(row: models.Membership) -> MembershipView:
    return MembershipView(
        project=row.project.slug,
        person_uuid=row.person.uuid,
        email=row.person.email,
        name=row.person.name,
        role=row.role,
        expires_on=row.expires_on,
        added_at=row.added_at,
        removed_at=row.removed_at,
    )


def dataset_view(row: models.Dataset, *, flagged: bool = False) -> DatasetView:
    return DatasetView(
        slug=row.slug,
        name=row.name,
        source_agency=row.source_agency,
        description=row.description,
        version=row.version,
        custodian_email=row.custodian.email,
        custodian_name=row.custodian.name,
        permitted_purposes=tuple(p.purpose for p in row.purposes),
        variables=tuple(VariableView(v.name, v.sensitivity, v.description) for v in row.variables),
        created_at=row.created_at,
        flagged_for_review=flagged,
    )


def grant_view(row: models.Grant) -> GrantView:
    return GrantView(
        uuid=row.uuid,
        project=row.project.slug,
        dataset=row.dataset.slug,
        dataset_version=row.dataset.version,
        variables=tuple(v.name for v in row.variables),
        state=row.state,
        expires_on=row.expires_on,
        requested_by=row.requested_by.email,
        requested_at=row.requested_at,
        decided_by=row.decided_by.email if row.decided_by else None,
        decided_at=row.decided_at,
        revoked_at=row.revoked_at,
        reason=row.reason,
    )


def token_view(row: models.ApiToken) -> TokenView:
    return TokenView(
        uuid=row.uuid,
        email=row.person.email,
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
