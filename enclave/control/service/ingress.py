"""Data ingress with the custodian's approval (SATRE 3.1.04, 3.1.11, 3.1.20).

A dataset's custodian (or an admin) submits a CSV or Parquet file as a new version: it is
copied into ``<data_dir>/ingress/<sha256>.<format>`` (content-addressed, written under a
temporary name and renamed), validated against the dataset's registered variables and
scanned (``enclave.control.ingress_scan``). The version is ``submitted``, or ``rejected`` at
once when validation fails. Only the dataset's custodian (not an admin) can approve a
submitted version; approval makes it the dataset's current version and the only kind the
linkage unit accepts (``resolve_linkage_inputs``). Reports, errors and audit events carry
counts and column names, never a value from the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.audit import canonical_json
from enclave.control.context import Context
from enclave.control.errors import Conflict, InvalidInput, NotFound, RuleViolation
from enclave.control.ingress_scan import UnreadableTable, read_table, scan, table_format
from enclave.control.models import Dataset, DatasetVersion, Person
from enclave.control.rules import Action, Role
from enclave.control.service._base import (
    authorize,
    clean_text,
    dataset_row,
    email_of,
    perform,
    read_as,
    record,
)

INGRESS_DIR = "ingress"
DATASET_PREFIX = "dataset:"


class VersionState:
    SUBMITTED = "submitted"
    REJECTED = "rejected"
    APPROVED = "approved"


@dataclass(frozen=True)
class VersionView:
    """A dataset version as faces show it; ``report`` is the parsed scan report."""

    uuid: str
    dataset: str
    version: str
    sha256: str
    size: int
    path: str
    state: str
    report: dict[str, Any]
    submitted_at: datetime
    submitted_by: str
    decided_at: datetime | None
    decided_by: str | None
    reason: str


@dataclass(frozen=True)
class LinkageInput:
    """An input the linkage unit may read: the file, and the approved version it is."""

    path: Path
    dataset: str
    version: str
    sha256: str


def _view(session: Session, row: DatasetVersion) -> VersionView:
    dataset = session.get(Dataset, row.dataset_id)
    return VersionView(
        uuid=row.uuid,
        dataset=dataset.slug if dataset else "",
        version=row.version,
        sha256=row.sha256,
        size=row.size,
        path=row.path,
        state=row.state,
        report=json.loads(row.report),
        submitted_at=row.submitted_at,
        submitted_by=email_of(session, row.submitted_by_id) or "",
        decided_at=row.decided_at,
        decided_by=email_of(session, row.decided_by_id),
        reason=row.reason,
    )


def _store(data_dir: Path, source: Path, fmt: str) -> tuple[Path, str, int, bool]:
    """Copy ``source`` into the ingress store under its content hash.

    Returns (stored path, sha256, size, whether this call created it). The copy is hashed
    while written, so what is recorded is what is stored, whatever happens to ``source``.
    """
    folder = data_dir / INGRESS_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = folder / f".incoming-{secrets.token_hex(8)}"
    digest, size = hashlib.sha256(), 0
    try:
        with source.open("rb") as reader, temp.open("xb") as writer:
            for block in iter(lambda: reader.read(1 << 20), b""):
                digest.update(block)
                writer.write(block)
                size += len(block)
            writer.flush()
            os.fsync(writer.fileno())
        os.chmod(temp, 0o400)
        target = folder / f"{digest.hexdigest()}.{fmt}"
        created = not target.exists()
        if created:
            temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
    return target, digest.hexdigest(), size, created


def _check_submitter(me: Person, dataset: Dataset) -> None:
    if Role.ADMIN not in me.role_names and dataset.custodian_id != me.id:
        raise RuleViolation(
            f"only the custodian of {dataset.slug} or an admin may submit its versions",
            rule="custodian_only",
        )


def submit_version(
    ctx: Context, actor: str, dataset: str, path: Path | str, *, label: str | None = None
) -> VersionView:
    """Submit ``path`` (CSV or Parquet) as a new version of ``dataset``: stored, validated,
    scanned; ``submitted``, or ``rejected`` when validation fails (the report says why).

    The copy and the scan run between two transactions (the first checks who may submit),
    so a large file never holds the control plane's write lock. Raises InvalidInput
    (``unsupported_format``, ``no_such_file``), RuleViolation (``custodian_only``), Conflict
    (``duplicate_version``), leaving no row and no stored file behind.
    """
    source = Path(path)
    fmt = table_format(source)
    if fmt is None:
        raise InvalidInput(
            f"{source.name}: a dataset version must be a .csv or .parquet file",
            rule="unsupported_format",
        )
    if not source.is_file():
        raise InvalidInput(f"no such file: {source}", rule="no_such_file")
    given = clean_text(label, "version label", 80) if label and label.strip() else None

    def may_submit(session: Session, me: Person) -> dict[str, str]:
        authorize(me, Action.SUBMIT_DATASET_VERSION)
        data = dataset_row(session, dataset)
        _check_submitter(me, data)
        return {v.name: v.sensitivity for v in data.variables}

    registered = read_as(ctx, actor, Action.SUBMIT_DATASET_VERSION, may_submit, target=dataset)
    stored, sha256, size, created = _store(ctx.data_dir, source, fmt)
    try:
        report = _report(stored, fmt, registered)
        version = given or f"sha256:{sha256[:12]}"

        def work(session: Session, me: Person) -> VersionView:
            may_submit(session, me)  # again, inside the writing transaction
            data = dataset_row(session, dataset)
            return _register(ctx, session, me, data, _Stored(stored, sha256, size), version, report)

        return perform(ctx, actor, Action.SUBMIT_DATASET_VERSION, work, target=dataset)
    except BaseException:
        if created:  # leave no file behind for a submission that did not happen
            stored.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class _Stored:
    path: Path
    sha256: str
    size: int


def _report(stored: Path, fmt: str, registered: dict[str, str]) -> dict[str, Any]:
    try:
        report = scan(read_table(stored, fmt), registered)
    except UnreadableTable as error:
        report = {"valid": False, "problems": [str(error)]}
    report["format"] = fmt
    return report


def _register(
    ctx: Context,
    session: Session,
    me: Person,
    data: Dataset,
    stored: _Stored,
    version: str,
    report: dict[str, Any],
) -> VersionView:
    taken = select(DatasetVersion.id).where(DatasetVersion.dataset_id == data.id)
    if session.scalar(taken.where(DatasetVersion.sha256 == stored.sha256).limit(1)):
        raise Conflict(
            f"this file was already submitted as a version of {data.slug}",
            rule="duplicate_version",
        )
    if session.scalar(taken.where(DatasetVersion.version == version).limit(1)):
        raise Conflict(f"{data.slug} already has a version {version!r}", rule="duplicate_version")
    state = VersionState.SUBMITTED if report["valid"] else VersionState.REJECTED
    row = DatasetVersion(
        uuid=str(uuid.uuid4()),
        dataset_id=data.id,
        version=version,
        sha256=stored.sha256,
        size=stored.size,
        path=stored.path.relative_to(ctx.data_dir).as_posix(),
        state=state,
        report=canonical_json(report),
        submitted_at=ctx.now(),
        submitted_by_id=me.id,
        reason="" if report["valid"] else "; ".join(report["problems"]),
    )
    session.add(row)
    session.flush()
    record(
        session,
        ctx,
        me,
        Action.SUBMIT_DATASET_VERSION,
        target=data.slug,
        version=version,
        uuid=row.uuid,
        sha256=stored.sha256,
        size=stored.size,
        state=state,
        report=report,
    )
    return _view(session, row)


def _version_row(session: Session, version_uuid: str) -> DatasetVersion:
    row = session.scalar(select(DatasetVersion).where(DatasetVersion.uuid == version_uuid))
    if row is None:
        raise NotFound(f"unknown dataset version {version_uuid!r}", rule="unknown_version")
    return row


def _stored_intact(data_dir: Path, row: DatasetVersion) -> Path:
    """The version's stored file if it still has the recorded hash; RuleViolation if not."""
    path = data_dir / row.path
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        raise RuleViolation(
            f"the stored file of version {row.version} is missing", rule="version_tampered"
        ) from None
    if digest.hexdigest() != row.sha256:
        raise RuleViolation(
            f"the stored file of version {row.version} has changed since it was submitted",
            rule="version_tampered",
        )
    return path


def decide_version(
    ctx: Context, actor: str, version_uuid: str, *, approve: bool, reason: str
) -> VersionView:
    """Approve or reject a ``submitted`` version: its dataset's custodian only (an admin
    cannot approve in the custodian's place). Approval re-checks the stored file's hash and
    makes the version the dataset's current one (``Dataset.version`` = its content hash)."""
    why = clean_text(reason, "reason", 500)

    def work(session: Session, me: Person) -> VersionView:
        authorize(me, Action.DECIDE_DATASET_VERSION)
        row = _version_row(session, version_uuid)
        data = session.get(Dataset, row.dataset_id)
        if data is None or data.custodian_id != me.id:
            raise RuleViolation(
                "only the dataset's custodian may decide on its versions", rule="custodian_only"
            )
        if row.state != VersionState.SUBMITTED:
            raise RuleViolation(
                f"version {row.version} is {row.state}; only a submitted version can be decided",
                rule="version_state",
            )
        before = data.version
        if approve:
            _stored_intact(ctx.data_dir, row)
            data.version = f"sha256:{row.sha256}"
        row.state = VersionState.APPROVED if approve else VersionState.REJECTED
        row.decided_at, row.decided_by_id, row.reason = ctx.now(), me.id, why
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.DECIDE_DATASET_VERSION,
            target=data.slug,
            uuid=row.uuid,
            version=row.version,
            sha256=row.sha256,
            decision=row.state,
            reason=why,
            dataset_version_before=before,
            dataset_version_after=data.version,
        )
        return _view(session, row)

    return perform(ctx, actor, Action.DECIDE_DATASET_VERSION, work, target=version_uuid)


def list_versions(ctx: Context, actor: str, dataset: str) -> list[VersionView]:
    """Every version of ``dataset``, oldest first (admins and custodians)."""

    def work(session: Session, me: Person) -> list[VersionView]:
        authorize(me, Action.LIST_DATASET_VERSIONS)
        data = dataset_row(session, dataset)
        query = (
            select(DatasetVersion)
            .where(DatasetVersion.dataset_id == data.id)
            .order_by(DatasetVersion.submitted_at, DatasetVersion.id)
        )
        return [_view(session, row) for row in session.scalars(query)]

    return read_as(ctx, actor, Action.LIST_DATASET_VERSIONS, work, target=dataset)


def _newest_approved(session: Session, dataset: str) -> DatasetVersion:
    data = dataset_row(session, dataset)
    row = session.scalar(
        select(DatasetVersion)
        .where(
            DatasetVersion.dataset_id == data.id,
            DatasetVersion.state == VersionState.APPROVED,
        )
        .order_by(DatasetVersion.decided_at.desc(), DatasetVersion.id.desc())
        .limit(1)
    )
    if row is None:
        raise RuleViolation(
            f"dataset {dataset} has no version approved by its custodian",
            rule="no_approved_version",
        )
    return row


def approved_version_path(session: Session, data_dir: Path, dataset: str) -> Path:
    """The stored file of ``dataset``'s newest approved version, checked against its hash.

    Raises NotFound (``unknown_dataset``) or RuleViolation (``no_approved_version``,
    ``version_tampered``).
    """
    return _stored_intact(data_dir, _newest_approved(session, dataset))


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_linkage_inputs(ctx: Context, actor: str, inputs: Sequence[str]) -> list[LinkageInput]:
    """The files the linkage unit may read for ``inputs``, recorded as one audited use.

    ``dataset:SLUG`` resolves to the dataset's newest approved version; a path is accepted
    only if its content is an approved version of some dataset (by sha256). Anything else is
    refused (RuleViolation ``unapproved_input``), and the refusal is audited.
    """
    paths: dict[str, Path] = {}
    for spec in inputs:
        if not spec.startswith(DATASET_PREFIX):
            candidate = Path(spec)
            if not candidate.is_file():
                raise InvalidInput(f"no such file: {spec}", rule="no_such_file")
            paths[spec] = candidate
    hashes = {spec: _sha256_of(path) for spec, path in paths.items()}

    def work(session: Session, me: Person) -> list[LinkageInput]:
        authorize(me, Action.USE_DATASET_VERSION)
        resolved = [_resolve(session, spec, hashes.get(spec)) for spec in inputs]
        record(
            session,
            ctx,
            me,
            Action.USE_DATASET_VERSION,
            target="linkage",
            inputs=[
                {"dataset": r.dataset, "version": r.version, "sha256": r.sha256} for r in resolved
            ],
        )
        return resolved

    def _resolve(session: Session, spec: str, sha256: str | None) -> LinkageInput:
        if sha256 is None:
            row = _newest_approved(session, spec.removeprefix(DATASET_PREFIX))
            path = _stored_intact(ctx.data_dir, row)
        else:
            row = _approved_with_hash(session, sha256, spec)
            path = paths[spec]
        data = session.get(Dataset, row.dataset_id)
        return LinkageInput(path, data.slug if data else "", row.version, row.sha256)

    return perform(ctx, actor, Action.USE_DATASET_VERSION, work, target="linkage")


def _approved_with_hash(session: Session, sha256: str, spec: str) -> DatasetVersion:
    row = session.scalar(
        select(DatasetVersion)
        .where(DatasetVersion.sha256 == sha256, DatasetVersion.state == VersionState.APPROVED)
        .limit(1)
    )
    if row is None:
        raise RuleViolation(
            f"{Path(spec).name} is not a version of any dataset approved by its custodian",
            rule="unapproved_input",
        )
    return row
