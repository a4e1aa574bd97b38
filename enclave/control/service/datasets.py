"""Datasets: the register of data held, with custodian, version and permitted purposes
(Safe Data)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.errors import Conflict, InvalidInput, RuleViolation
from enclave.control.models import Dataset, DatasetPurpose, DatasetVariable, Person
from enclave.control.rules import Action, Role
from enclave.control.service import alerts
from enclave.control.service._base import (
    authorize,
    clean_paragraph,
    clean_slug,
    clean_text,
    dataset_row,
    perform,
    person_with_role,
    read_as,
    record,
)
from enclave.control.service.projects import check_purpose
from enclave.control.varspec import VariableSpec, check_variables
from enclave.control.views import DatasetView, dataset_view

VERSION = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


def check_version(version: str) -> str:
    """A content hash as ``sha256:<64 hex>``; InvalidInput (``invalid_version``) otherwise."""
    match = VERSION.match((version or "").strip().lower())
    if not match:
        raise InvalidInput(
            f"dataset version {version!r} must be a sha256 content hash (64 hex digits)",
            rule="invalid_version",
        )
    return f"sha256:{match.group(1)}"


def content_version(path: Path) -> str:
    """The version string of a file's content: ``sha256:<hex>`` of its bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def register_dataset(
    ctx: Context,
    actor: str,
    *,
    slug: str,
    name: str,
    source_agency: str,
    description: str,
    version: str,
    custodian: str,
    permitted_purposes: Iterable[str],
    variables: Iterable[VariableSpec],
) -> DatasetView:
    """Register a dataset. ``custodian`` (an email) must hold the data_custodian role; a
    custodian who is not an admin may register only datasets in their own custody."""
    fields = {
        "slug": clean_slug(slug, "dataset slug"),
        "name": clean_text(name, "name", 200),
        "source_agency": clean_text(source_agency, "source agency", 200),
        "description": clean_paragraph(description, "description"),
        "version": check_version(version),
    }
    purposes = sorted({check_purpose(p) for p in permitted_purposes})
    if not purposes:
        raise InvalidInput("a dataset needs at least one permitted purpose", rule="unknown_purpose")
    specs = check_variables(variables)

    def work(session: Session, me: Person) -> DatasetView:
        authorize(me, Action.REGISTER_DATASET)
        keeper = person_with_role(session, custodian, Role.DATA_CUSTODIAN)
        if Role.ADMIN not in me.role_names and keeper.id != me.id:
            raise RuleViolation(
                "a custodian may register only datasets in their own custody", rule="custodian_only"
            )
        if session.scalar(select(Dataset.id).where(Dataset.slug == fields["slug"])):
            raise Conflict(f"a dataset {fields['slug']!r} already exists", rule="duplicate_slug")
        dataset = Dataset(
            **fields,
            custodian_id=keeper.id,
            created_at=ctx.now(),
            created_by_id=me.id,
            purposes=[DatasetPurpose(purpose=p) for p in purposes],
            variables=[
                DatasetVariable(
                    name=s.name,
                    position=i,
                    sensitivity=s.sensitivity.value,
                    description=s.description,
                )
                for i, s in enumerate(specs)
            ],
        )
        session.add(dataset)
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.REGISTER_DATASET,
            target=dataset.slug,
            version=dataset.version,
            custodian=keeper.email,
            purposes=purposes,
            variables={s.name: s.sensitivity.value for s in specs},
        )
        return dataset_view(dataset)

    return perform(ctx, actor, Action.REGISTER_DATASET, work, target=slug)


def transfer_custody(
    ctx: Context, actor: str, dataset: str, new_custodian: str, reason: str
) -> DatasetView:
    """Hand ``dataset`` to ``new_custodian`` (who must hold the data_custodian role; admins
    only). From then on the new custodian decides its grants, versions and egress. Audited
    with the old and new custodian; the change raises a ``governance_change`` alert and the
    dataset shows ``flagged_for_review`` until an admin reviews it. Handing it to its
    current custodian is refused (``no_change``)."""
    why = clean_text(reason, "reason", 500)

    def work(session: Session, me: Person) -> DatasetView:
        authorize(me, Action.TRANSFER_CUSTODY)
        data = dataset_row(session, dataset)
        keeper = person_with_role(session, new_custodian, Role.DATA_CUSTODIAN)
        if data.custodian_id == keeper.id:
            raise Conflict(
                f"{keeper.email} is already the custodian of {dataset}", rule="no_change"
            )
        before = data.custodian.email
        data.custodian_id = keeper.id
        session.flush()
        session.refresh(data, ["custodian"])
        record(
            session,
            ctx,
            me,
            Action.TRANSFER_CUSTODY,
            target=data.slug,
            dataset=data.slug,
            before=before,
            after=keeper.email,
            reason=why,
        )
        return dataset_view(data, flagged=data.slug in alerts.flagged(session, "dataset"))

    return perform(ctx, actor, Action.TRANSFER_CUSTODY, work, target=dataset)


def get_dataset(ctx: Context, actor: str, slug: str) -> DatasetView:
    """One dataset, with its variables (roles allowed to LIST_DATASETS)."""

    def work(session: Session, me: Person) -> DatasetView:
        authorize(me, Action.LIST_DATASETS)
        flagged = slug in alerts.flagged(session, "dataset")
        return dataset_view(dataset_row(session, slug), flagged=flagged)

    return read_as(ctx, actor, Action.LIST_DATASETS, work, target=slug)


def list_datasets(ctx: Context, actor: str) -> list[DatasetView]:
    """Every registered dataset, by slug (roles allowed to LIST_DATASETS)."""

    def work(session: Session, me: Person) -> list[DatasetView]:
        authorize(me, Action.LIST_DATASETS)
        marked = alerts.flagged(session, "dataset")
        rows = session.scalars(select(Dataset).order_by(Dataset.slug))
        return [dataset_view(d, flagged=d.slug in marked) for d in rows]

    return read_as(ctx, actor, Action.LIST_DATASETS, work)
