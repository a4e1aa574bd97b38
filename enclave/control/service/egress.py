"""Custodian egress rights (SATRE 3.1.06): a dataset's policy may require its custodian's (or a
delegate's) sign-off before outputs derived from it leave the enclave, and only people the
custodian (or a delegate) granted an egress right, per project, may ask for such a release.

The custodian sets the policy (or an admin) and names delegates, who hold the role
output_checker or data_custodian. The review queue reads ``egress_requirements`` in its own
transaction and enforces the rest: submitting needs the author's right, approval needs one
sign-off per dataset by a signer with no tie to the project (``output_checker.queue``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.errors import Conflict, NotFound, PermissionDenied, RuleViolation
from enclave.control.models import (
    Dataset,
    DatasetDelegate,
    EgressRight,
    Grant,
    Membership,
    Person,
    Project,
)
from enclave.control.rules import Action, GrantState, Role
from enclave.control.service._base import (
    authorize,
    dataset_row,
    perform,
    person_row,
    project_row,
    read_as,
    record,
)

# A delegate must be trusted with outputs already: an output checker or a data custodian.
DELEGATE_ROLES = frozenset({Role.OUTPUT_CHECKER, Role.DATA_CUSTODIAN})


@dataclass(frozen=True)
class EgressPolicyView:
    """A dataset's egress policy and who may sign off for it."""

    dataset: str
    signoff: bool
    custodian: str
    delegates: tuple[str, ...]


@dataclass(frozen=True)
class DelegateView:
    """A custodian's delegate for one dataset."""

    dataset: str
    email: str
    added_at: datetime
    removed_at: datetime | None


@dataclass(frozen=True)
class EgressRightView:
    """One person's right to ask for the release of outputs of a dataset in a project."""

    dataset: str
    project: str
    email: str
    granted_at: datetime
    granted_by: str
    revoked_at: datetime | None


@dataclass(frozen=True)
class EgressRequirement:
    """A dataset of the project whose policy requires sign-off: whether the author holds an
    egress right for it, and who may sign off (custodian first, then active delegates)."""

    dataset: str
    has_right: bool
    signers: tuple[str, ...]


# ----- reads the queue shares ----------------------------------------------------------------


def active_delegates(session: Session, dataset: Dataset) -> list[Person]:
    """The dataset's delegates not removed, by email."""
    query = (
        select(Person)
        .join(DatasetDelegate, DatasetDelegate.person_id == Person.id)
        .where(DatasetDelegate.dataset_id == dataset.id, DatasetDelegate.removed_at.is_(None))
        .order_by(Person.email)
    )
    return list(session.scalars(query))


def signers_of(session: Session, dataset: Dataset) -> tuple[str, ...]:
    """Who may sign off releases of ``dataset``: its custodian, then its active delegates."""
    return (dataset.custodian.email, *(p.email for p in active_delegates(session, dataset)))


def _active_right(
    session: Session, dataset: Dataset, project: Project, person: Person
) -> EgressRight | None:
    query = select(EgressRight).where(
        EgressRight.dataset_id == dataset.id,
        EgressRight.project_id == project.id,
        EgressRight.person_id == person.id,
        EgressRight.revoked_at.is_(None),
    )
    return session.scalars(query).first()


def signoff_datasets(session: Session, project: Project) -> list[Dataset]:
    """The datasets whose policy requires sign-off that the project holds or held. Every one
    counts for every output of the project: which data an output came from is not known for
    outputs without a recipe. A grant revoked after approval still counts (its data may be
    in outputs made before), an expired one too."""
    was_approved = or_(
        Grant.state == GrantState.APPROVED.value,
        and_(Grant.state == GrantState.REVOKED.value, Grant.decided_at.is_not(None)),
    )
    query = (
        select(Dataset)
        .join(Grant, Grant.dataset_id == Dataset.id)
        .where(Grant.project_id == project.id, was_approved, Dataset.egress_signoff.is_(True))
        .order_by(Dataset.slug)
    )
    return list(session.scalars(query).unique())


def egress_requirements(
    session: Session, project: Project, author: Person
) -> tuple[EgressRequirement, ...]:
    """For a request by ``author`` in ``project``: each dataset needing sign-off, whether the
    author holds an egress right for it, and who may sign off. Read in the caller's
    transaction (the queue's), not audited."""
    return tuple(
        EgressRequirement(
            dataset=dataset.slug,
            has_right=_active_right(session, dataset, project, author) is not None,
            signers=signers_of(session, dataset),
        )
        for dataset in signoff_datasets(session, project)
    )


# ----- the custodian's actions ---------------------------------------------------------------


def _check_custodian(me: Person, dataset: Dataset) -> None:
    if dataset.custodian_id != me.id:
        raise PermissionDenied(
            f"only the custodian of {dataset.slug} may do this", rule="custodian_only"
        )


def _check_signer(session: Session, me: Person, dataset: Dataset) -> None:
    if dataset.custodian_id == me.id or me.email in signers_of(session, dataset):
        return
    raise PermissionDenied(
        f"only the custodian of {dataset.slug} or a delegate may do this",
        rule="custodian_or_delegate",
    )


def _policy_view(session: Session, dataset: Dataset) -> EgressPolicyView:
    return EgressPolicyView(
        dataset=dataset.slug,
        signoff=dataset.egress_signoff,
        custodian=dataset.custodian.email,
        delegates=tuple(p.email for p in active_delegates(session, dataset)),
    )


def set_egress_policy(ctx: Context, actor: str, dataset: str, signoff: bool) -> EgressPolicyView:
    """Whether releases of outputs derived from ``dataset`` need its custodian's (or a
    delegate's) sign-off: its custodian, or an admin, decides."""

    def work(session: Session, me: Person) -> EgressPolicyView:
        authorize(me, Action.SET_EGRESS_POLICY)
        data = dataset_row(session, dataset)
        if Role.ADMIN not in me.role_names:
            _check_custodian(me, data)
        before, data.egress_signoff = data.egress_signoff, bool(signoff)
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.SET_EGRESS_POLICY,
            target=data.slug,
            signoff=data.egress_signoff,
            was=before,
        )
        return _policy_view(session, data)

    return perform(ctx, actor, Action.SET_EGRESS_POLICY, work, target=dataset)


def _delegate_view(row: DatasetDelegate, dataset: Dataset, person: Person) -> DelegateView:
    return DelegateView(dataset.slug, person.email, row.added_at, row.removed_at)


def _open_delegation(session: Session, dataset: Dataset, person: Person) -> DatasetDelegate | None:
    query = select(DatasetDelegate).where(
        DatasetDelegate.dataset_id == dataset.id,
        DatasetDelegate.person_id == person.id,
        DatasetDelegate.removed_at.is_(None),
    )
    return session.scalars(query).first()


def add_delegate(ctx: Context, actor: str, dataset: str, email: str) -> DelegateView:
    """The custodian names ``email`` a delegate for ``dataset``'s egress decisions; the
    delegate must hold the role output_checker or data_custodian. Whether the delegate may
    sign off a given request (no tie to its project) is checked when they sign off."""

    def work(session: Session, me: Person) -> DelegateView:
        authorize(me, Action.ADD_DELEGATE)
        data = dataset_row(session, dataset)
        _check_custodian(me, data)
        person = person_row(session, email)
        if not DELEGATE_ROLES & person.role_names:
            raise RuleViolation(
                f"{person.email} needs the role output_checker or data_custodian to be a delegate",
                rule="role_required",
            )
        if person.id == data.custodian_id:
            raise RuleViolation("the custodian cannot be their own delegate", rule="self_delegate")
        if _open_delegation(session, data, person) is not None:
            raise Conflict(
                f"{person.email} is already a delegate for {data.slug}", rule="duplicate_delegate"
            )
        row = DatasetDelegate(
            dataset_id=data.id, person_id=person.id, added_at=ctx.now(), added_by_id=me.id
        )
        session.add(row)
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.ADD_DELEGATE,
            target=person.uuid,
            dataset=data.slug,
            email=person.email,
        )
        return _delegate_view(row, data, person)

    return perform(ctx, actor, Action.ADD_DELEGATE, work, target=dataset)


def remove_delegate(ctx: Context, actor: str, dataset: str, email: str) -> DelegateView:
    """The custodian ends a delegation at once (kept on record with ``removed_at``); the
    delegate's sign-offs on requests not yet approved no longer count."""

    def work(session: Session, me: Person) -> DelegateView:
        authorize(me, Action.REMOVE_DELEGATE)
        data = dataset_row(session, dataset)
        _check_custodian(me, data)
        person = person_row(session, email)
        row = _open_delegation(session, data, person)
        if row is None:
            raise NotFound(
                f"{person.email} is not a delegate for {data.slug}", rule="unknown_delegate"
            )
        row.removed_at = ctx.now()
        session.flush()
        record(session, ctx, me, Action.REMOVE_DELEGATE, target=person.uuid, dataset=data.slug)
        return _delegate_view(row, data, person)

    return perform(ctx, actor, Action.REMOVE_DELEGATE, work, target=dataset)


def _check_researcher_member(
    session: Session, project: Project, person: Person, ctx: Context
) -> None:
    query = select(Membership.id).where(
        Membership.project_id == project.id,
        Membership.person_id == person.id,
        Membership.role == Role.RESEARCHER.value,
        Membership.removed_at.is_(None),
        Membership.expires_on >= ctx.today(),
    )
    if session.scalar(query.limit(1)) is None:
        raise RuleViolation(
            f"{person.email} is not a researcher on {project.slug}", rule="membership"
        )


def _check_granted(session: Session, project: Project, dataset: Dataset, ctx: Context) -> None:
    query = select(Grant.id).where(
        Grant.project_id == project.id,
        Grant.dataset_id == dataset.id,
        Grant.state == GrantState.APPROVED.value,
        Grant.expires_on >= ctx.today(),
    )
    if session.scalar(query.limit(1)) is None:
        raise RuleViolation(
            f"project {project.slug} holds no approved grant of {dataset.slug}", rule="no_grant"
        )


def _right_view(
    row: EgressRight, dataset: Dataset, project: Project, person: Person, by: str
) -> EgressRightView:
    return EgressRightView(
        dataset.slug, project.slug, person.email, row.granted_at, by, row.revoked_at
    )


def grant_egress_right(
    ctx: Context, actor: str, dataset: str, project: str, email: str
) -> EgressRightView:
    """The custodian or a delegate lets ``email``, a researcher on ``project``, ask for the
    release of outputs derived from ``dataset`` there. The project must hold an approved
    grant of the dataset; nobody grants the right to themselves."""

    def work(session: Session, me: Person) -> EgressRightView:
        authorize(me, Action.GRANT_EGRESS_RIGHT)
        row = project_row(session, project)
        authorize(me, Action.GRANT_EGRESS_RIGHT, row)
        data = dataset_row(session, dataset)
        _check_signer(session, me, data)
        person = person_row(session, email)
        if person.id == me.id:
            raise RuleViolation("nobody grants an egress right to themselves", rule="two_person")
        _check_researcher_member(session, row, person, ctx)
        _check_granted(session, row, data, ctx)
        if _active_right(session, data, row, person) is not None:
            raise Conflict(
                f"{person.email} already holds an egress right for {data.slug} on {row.slug}",
                rule="duplicate_right",
            )
        right = EgressRight(
            dataset_id=data.id,
            project_id=row.id,
            person_id=person.id,
            granted_at=ctx.now(),
            granted_by_id=me.id,
        )
        session.add(right)
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.GRANT_EGRESS_RIGHT,
            target=person.uuid,
            project=row.slug,
            dataset=data.slug,
            email=person.email,
        )
        return _right_view(right, data, row, person, me.email)

    return perform(ctx, actor, Action.GRANT_EGRESS_RIGHT, work, target=email, project=project)


def revoke_egress_right(
    ctx: Context, actor: str, dataset: str, project: str, email: str
) -> EgressRightView:
    """The custodian or a delegate ends a person's egress right at once, in any project
    state; requests the person submitted can then not be approved."""

    def work(session: Session, me: Person) -> EgressRightView:
        authorize(me, Action.REVOKE_EGRESS_RIGHT)
        row = project_row(session, project)
        data = dataset_row(session, dataset)
        _check_signer(session, me, data)
        person = person_row(session, email)
        right = _active_right(session, data, row, person)
        if right is None:
            raise NotFound(
                f"{person.email} holds no egress right for {data.slug} on {row.slug}",
                rule="unknown_right",
            )
        right.revoked_at, right.revoked_by_id = ctx.now(), me.id
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.REVOKE_EGRESS_RIGHT,
            target=person.uuid,
            project=row.slug,
            dataset=data.slug,
        )
        granter = session.scalar(select(Person.email).where(Person.id == right.granted_by_id))
        return _right_view(right, data, row, person, str(granter))

    return perform(ctx, actor, Action.REVOKE_EGRESS_RIGHT, work, target=email, project=project)


def egress_policy(ctx: Context, actor: str, dataset: str) -> EgressPolicyView:
    """A dataset's egress policy and signers (roles allowed to LIST_DATASETS)."""

    def work(session: Session, me: Person) -> EgressPolicyView:
        authorize(me, Action.LIST_DATASETS)
        return _policy_view(session, dataset_row(session, dataset))

    return read_as(ctx, actor, Action.LIST_DATASETS, work, target=dataset)
