"""Reading the audit log through the service layer (admins only), for the admin faces."""

from __future__ import annotations

from sqlalchemy.orm import Session

from enclave.control import audit
from enclave.control.audit import AuditRecord, VerifyReport
from enclave.control.context import Context
from enclave.control.models import Person
from enclave.control.rules import Action
from enclave.control.service._base import authorize, read_as


def list_events(
    ctx: Context,
    actor: str,
    *,
    project: str | None = None,
    action: str | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[AuditRecord]:
    """Audit events in chain order after ``after_seq`` (at most ``limit``; admins only)."""

    def work(_session: Session, me: Person) -> None:
        authorize(me, Action.VIEW_AUDIT)

    read_as(ctx, actor, Action.VIEW_AUDIT, work)
    return audit.records(
        ctx.engine, project=project, action=action, after_seq=after_seq, limit=max(1, limit)
    )


def verify_chain(ctx: Context, actor: str, *, anchor: str | None = None) -> VerifyReport:
    """Verify the whole chain (admins only); see ``audit.verify``."""

    def work(_session: Session, me: Person) -> None:
        authorize(me, Action.VIEW_AUDIT)

    read_as(ctx, actor, Action.VIEW_AUDIT, work)
    return audit.verify(ctx.engine, anchor=anchor)
