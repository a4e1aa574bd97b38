"""Standing checks over the database: read a person's or a project's compliance facts and ask
the pure rules of ``enclave.control.standing``. Called inside other actions' transactions
(session start, login, release approval, the release worker), so nothing here is audited on
its own: the calling action audits its refusal with the rule named here.

Reasons name items and dates, never a person, so they may go into logs and the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from enclave.control.errors import PermissionDenied, RuleViolation
from enclave.control.models import (
    AgreementAcceptance,
    ComplianceRecord,
    Freeze,
    Organisation,
    Person,
    Project,
    Sanction,
)
from enclave.control.standing import (
    PERSON_RULES,
    TRAINING,
    FreezeFact,
    OrganisationFact,
    PersonFacts,
    ProjectFacts,
    Record,
    SanctionFact,
    Standing,
    StandingPolicy,
    person_standing,
    project_standing,
)

# Refusals that are about who someone is rather than about a rule they can satisfy.
DENIALS = frozenset({"sanctioned", "frozen"})


def _record(row: ComplianceRecord) -> Record:
    return Record(row.kind, row.reference, row.valid_from, row.expires_on, row.detail)


def person_facts(session: Session, person: Person) -> PersonFacts:
    """The person's current training, organisation assurance, acceptances and sanctions."""
    training = session.scalars(
        select(ComplianceRecord).where(
            ComplianceRecord.person_id == person.id,
            ComplianceRecord.kind == TRAINING,
            ComplianceRecord.superseded_at.is_(None),
        )
    )
    org = session.scalar(select(Organisation).where(Organisation.name == person.organisation))
    versions = session.scalars(
        select(AgreementAcceptance.version).where(AgreementAcceptance.person_id == person.id)
    )
    return PersonFacts(
        organisation=person.organisation,
        assurance=None
        if org is None
        else OrganisationFact(org.name, org.assured_until, org.withdrawn_at is not None),
        training=tuple(_record(r) for r in training),
        accepted_versions=frozenset(versions),
        sanctions=_sanctions(session, person),
    )


def _sanctions(session: Session, person: Person) -> tuple[SanctionFact, ...]:
    rows = session.scalars(select(Sanction).where(Sanction.person_id == person.id))
    return tuple(
        SanctionFact(s.kind, s.lifted_at is not None, s.appeal_outcome == "overturned")
        for s in rows
    )


def check_not_sanctioned(session: Session, person: Person) -> None:
    """PermissionDenied (``sanctioned``) while a sanction on ``person`` is in force. Checked
    on every action and every web request, so a sanction also ends sessions already open."""
    if any(fact.active for fact in _sanctions(session, person)):
        raise PermissionDenied(
            f"the account {person.email} is suspended or barred", rule="sanctioned"
        )


def _legacy(project: Project, recorded: set[str]) -> list[Record]:
    """A project approved before compliance records existed has only its references: each
    counts as valid for the project's lifetime until a record of its kind is made."""
    references = {"dsa": project.dsa_reference, "ethics": project.ethics_reference}
    return [
        Record(kind, reference, project.start_date, project.end_date)
        for kind, reference in references.items()
        if reference and kind not in recorded
    ]


def project_facts(session: Session, project: Project) -> ProjectFacts:
    """The project's current compliance records and the freezes that reach it."""
    rows = list(
        session.scalars(select(ComplianceRecord).where(ComplianceRecord.project_id == project.id))
    )
    recorded = {r.kind for r in rows}
    freezes = session.scalars(
        select(Freeze).where(
            or_(Freeze.project_id == project.id, Freeze.project_id.is_(None)),
            Freeze.ended_at.is_(None),
        )
    )
    return ProjectFacts(
        records=tuple(_record(r) for r in rows if r.superseded_at is None)
        + tuple(_legacy(project, recorded)),
        freezes=tuple(FreezeFact(f.project_id is None) for f in freezes),
    )


def person_standing_of(
    session: Session,
    person: Person,
    today: date,
    policy: StandingPolicy,
    *,
    rules: Iterable[str] = PERSON_RULES,
) -> Standing:
    """The person's standing on ``today`` under ``policy`` (``rules`` checked only)."""
    return person_standing(person_facts(session, person), today, policy, rules=rules)


def project_standing_of(
    session: Session, project: Project, today: date, policy: StandingPolicy
) -> Standing:
    """The project's standing on ``today`` under ``policy``."""
    return project_standing(project_facts(session, project), today, policy)


def raise_unless(standing: Standing) -> None:
    """PermissionDenied (sanctioned, frozen) or RuleViolation (a lapse) unless in standing."""
    if standing.rule is None:
        return
    error = PermissionDenied if standing.rule in DENIALS else RuleViolation
    raise error(standing.reason, rule=standing.rule)


def check_person_standing(
    session: Session,
    person: Person,
    today: date,
    policy: StandingPolicy,
    *,
    rules: Iterable[str] = PERSON_RULES,
) -> None:
    """Raise (rule ``sanctioned``, ``organisation_assurance``, ``training`` or
    ``user_agreement``) unless the person may work."""
    raise_unless(person_standing_of(session, person, today, policy, rules=rules))


def check_project_standing(
    session: Session, project: Project, today: date, policy: StandingPolicy
) -> None:
    """Raise (rule ``frozen`` or ``compliance_lapsed``) unless the project may run sessions
    and release outputs."""
    raise_unless(project_standing_of(session, project, today, policy))


def release_standing(
    session: Session,
    project: Project,
    author_id: int,
    today: date,
    policy: StandingPolicy,
) -> Standing:
    """Whether outputs of ``project`` written by the person ``author_id`` may be approved or
    released: the project in standing and the author not sanctioned. The one check the
    review queue's approval and its release worker share."""
    standing = project_standing_of(session, project, today, policy)
    if not standing.ok:
        return standing
    author = session.get_one(Person, author_id)
    refused = person_standing_of(session, author, today, policy, rules=("sanctioned",))
    if refused.ok:
        return refused
    return Standing(refused.rule, f"the request's author: {refused.reason}")


def check_release_standing(
    session: Session,
    project: Project,
    author_id: int,
    today: date,
    policy: StandingPolicy,
    *,
    approver: Person | None = None,
) -> None:
    """Raise unless ``release_standing`` allows it (and ``approver``, when given, is not
    sanctioned)."""
    if approver is not None:
        check_person_standing(session, approver, today, policy, rules=("sanctioned",))
    raise_unless(release_standing(session, project, author_id, today, policy))
