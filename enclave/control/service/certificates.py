"""The disk side of a governed close and its signed deletion certificate (SATRE 1.4.04,
3.1.10); reading and verifying certificates.

``close_on_disk`` runs inside the closing transaction, after every database change of the
close. Its order is what makes a failure harmless: the signing key is loaded first (nothing
written yet), then everything is hashed and the writing steps run (audit export, workspace
archive; both removed again if a later writing step fails), then the destroying steps (keys,
workspace with its extract), and last the certificate row. Any exception rolls the whole
transaction back, so there is never a certificate for a project that is still open.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.audit import HASHED_FIELDS, canonical_json, format_time
from enclave.control.certificates import (
    CertificateKeyError,
    key_id,
    load_or_create_signing_key,
    load_public_key,
    public_key_pem,
    sign_body,
    signature_valid,
)
from enclave.control.context import Context
from enclave.control.errors import IntegrationError, NotFound
from enclave.control.models import (
    AuditEvent,
    AuditHead,
    Dataset,
    DeletionCertificate,
    Grant,
    Person,
    Project,
)
from enclave.control.rules import Action, Role
from enclave.control.service._base import authorize, project_row, read_as
from enclave.control.workspace import (
    export_audit,
    inventory,
    pack_workspace,
    remove_workspace,
)


@dataclass(frozen=True)
class DiskClose:
    """What the disk steps of a close did, and the certificate that records it."""

    archive: Path | None
    archive_sha256: str | None
    extract_deleted: bool
    keys_destroyed: tuple[str, ...]
    audit_export: Path
    audit_export_sha256: str
    certificate: str  # uuid
    certificate_sha256: str  # sha256 of the signed body, kept in the audit chain


@dataclass(frozen=True)
class CertificateView:
    """A stored certificate: the signed body (and its parsed fields) and the signature."""

    uuid: str
    project: str
    issued_at: datetime
    issued_by: str
    body: str
    signature: str
    key_id: str

    @property
    def fields(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass(frozen=True)
class CertificateCheck:
    """The outcome of verifying a certificate; ``problems`` is empty exactly when ``ok``."""

    certificate: CertificateView
    signature_ok: bool
    audit_ok: bool
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _project_events(session: Session, slug: str) -> Iterator[str]:
    """The project's audit events as JSON lines in the form ``enclave audit export`` writes."""
    query = select(AuditEvent).where(AuditEvent.project == slug).order_by(AuditEvent.seq)
    for event in session.scalars(query):
        row = {name: getattr(event, name) for name in (*HASHED_FIELDS, "hash")}
        row["detail"] = json.loads(row["detail"])
        yield canonical_json(row)


def close_on_disk(
    ctx: Context, session: Session, project: Project, closer: Person, at: datetime, reason: str
) -> DiskClose:
    """Export the project's audit events, archive and delete its workspace, destroy its keys
    and add the signed certificate of all that (see the module docstring for the order)."""
    slug, data_dir = project.slug, ctx.data_dir
    signing_key = load_or_create_signing_key(data_dir)  # before anything is written
    items = inventory(data_dir, slug)
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    written: list[Path] = []
    try:
        exported = export_audit(data_dir, slug, at, _project_events(session, slug))
        written.append(exported.path)
        packed = pack_workspace(data_dir, slug, at)
        if packed.archive is not None:
            written.append(packed.archive)
        keys = tuple(ctx.destroyer.destroy(slug))
    except BaseException:
        for path in written:  # the workspace is still there: these copies are not needed
            path.unlink(missing_ok=True)
        raise
    extract_deleted = remove_workspace(data_dir, slug)
    fields = {
        "certificate": str(uuid.uuid4()),
        "project": slug,
        "closed_at": format_time(at),
        "closed_by": closer.email,
        "reason": reason,
        "items": [item.to_dict() for item in items],
        "archive": _archive(data_dir, packed.archive, packed.sha256),
        "audit_export": {
            "path": exported.path.relative_to(data_dir).as_posix(),
            "sha256": exported.sha256,
            "events": exported.lines,
        },
        "audit_head": {"seq": head.seq, "hash": head.hash},
        "keys_destroyed": list(keys),
    }
    signed = sign_body(signing_key, fields)
    session.add(
        DeletionCertificate(
            uuid=fields["certificate"],
            project_id=project.id,
            issued_at=at,
            issued_by_id=closer.id,
            body=signed.body,
            signature=signed.signature,
            key_id=signed.key_id,
        )
    )
    session.flush()
    return DiskClose(
        archive=packed.archive,
        archive_sha256=packed.sha256,
        extract_deleted=extract_deleted,
        keys_destroyed=keys,
        audit_export=exported.path,
        audit_export_sha256=exported.sha256,
        certificate=str(fields["certificate"]),
        certificate_sha256=hashlib.sha256(signed.body.encode("utf-8")).hexdigest(),
    )


def _archive(data_dir: Path, path: Path | None, digest: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    return {"path": path.relative_to(data_dir).as_posix(), "sha256": digest}


def _certificate_row(session: Session, me: Person, slug: str) -> DeletionCertificate:
    """The project's certificate if ``me`` may see it; one NotFound for every other case, so
    a custodian cannot learn which projects of other custodians were closed."""
    missing = NotFound(f"no deletion certificate for project {slug!r}", rule="no_certificate")
    try:
        project = project_row(session, slug)
    except NotFound:
        raise missing from None
    row = session.scalar(
        select(DeletionCertificate).where(DeletionCertificate.project_id == project.id)
    )
    if row is None:
        raise missing
    if Role.ADMIN not in me.role_names:
        held = select(Grant.id).join(Dataset, Grant.dataset_id == Dataset.id)
        held = held.where(Grant.project_id == project.id, Dataset.custodian_id == me.id)
        if session.scalar(held.limit(1)) is None:
            raise missing
    return row


def _view(session: Session, row: DeletionCertificate, slug: str) -> CertificateView:
    issuer = session.get(Person, row.issued_by_id)
    return CertificateView(
        uuid=row.uuid,
        project=slug,
        issued_at=row.issued_at,
        issued_by=issuer.email if issuer else "",
        body=row.body,
        signature=row.signature,
        key_id=row.key_id,
    )


def get_certificate(ctx: Context, actor: str, slug: str) -> CertificateView:
    """The deletion certificate of a closed project (admins; custodians of its data)."""

    def work(session: Session, me: Person) -> CertificateView:
        authorize(me, Action.VIEW_CERTIFICATE)
        return _view(session, _certificate_row(session, me, slug), slug)

    return read_as(ctx, actor, Action.VIEW_CERTIFICATE, work, target=slug, project=slug)


def check_certificate(
    view: CertificateView, public_pem: str, head_event_hash: str | None
) -> CertificateCheck:
    """Verify ``view`` against a public key and the hash the audit chain now holds at the
    certificate's head (None: no such event). Pure: usable offline with an exported key."""
    problems: list[str] = []
    try:
        public = load_public_key(public_pem)
    except CertificateKeyError as error:
        return CertificateCheck(view, False, False, (str(error),))
    signature_ok = signature_valid(public, view.body, view.signature)
    if not signature_ok:
        problems.append("the signature does not match the certificate body")
    try:
        fields = json.loads(view.body)
        head = fields["audit_head"]
        claimed_key, claimed_hash = fields["key_id"], head["hash"]
    except (ValueError, KeyError, TypeError):
        return CertificateCheck(view, signature_ok, False, (*problems, "malformed body"))
    if claimed_key != view.key_id:
        problems.append(f"the body names key {claimed_key}, the record {view.key_id}")
    if key_id(public) != claimed_key:
        problems.append(f"the certificate names key {claimed_key}, not the key {key_id(public)}")
    audit_ok = head_event_hash is not None and head_event_hash == claimed_hash
    if not audit_ok:
        problems.append(f"the audit chain no longer holds event {head.get('seq')} as certified")
    return CertificateCheck(view, signature_ok, audit_ok, tuple(problems))


def verify_certificate(
    ctx: Context, actor: str, slug: str, *, public_pem: str | None = None
) -> CertificateCheck:
    """Check the project's certificate: its signature (by ``public_pem``, default the
    enclave's own key) and that the audit event it names as head is still in the chain."""

    def work(session: Session, me: Person) -> tuple[CertificateView, str | None]:
        authorize(me, Action.VIEW_CERTIFICATE)
        view = _view(session, _certificate_row(session, me, slug), slug)
        try:
            seq = int(view.fields["audit_head"]["seq"])
        except (ValueError, KeyError, TypeError):
            return view, None
        return view, session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))

    view, head_hash = read_as(ctx, actor, Action.VIEW_CERTIFICATE, work, target=slug, project=slug)
    return check_certificate(view, public_pem or public_key(ctx, actor), head_hash)


def public_key(ctx: Context, actor: str) -> str:
    """The enclave's certificate public key as PEM (the key is made on first use)."""

    def work(_session: Session, me: Person) -> None:
        authorize(me, Action.VIEW_CERTIFICATE)

    read_as(ctx, actor, Action.VIEW_CERTIFICATE, work)
    try:
        return public_key_pem(load_or_create_signing_key(ctx.data_dir).public_key())
    except (CertificateKeyError, OSError) as error:
        raise IntegrationError(f"no certificate signing key: {error}") from error
