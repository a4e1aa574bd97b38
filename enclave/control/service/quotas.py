"""Per-project session quotas (SATRE 2.3.03): an admin sets them; every spawner applies them.

The quota overrides the tier's memory, CPU and process caps for every session of the project;
fields left unset keep the tier's value. ``SessionPolicy.decide`` reads it at each spawn.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.audit import canonical_json
from enclave.control.context import Context
from enclave.control.errors import InvalidInput
from enclave.control.models import Person, Project
from enclave.control.quota import QuotaError, check_quota, stored_quota
from enclave.control.rules import Action
from enclave.control.service._base import authorize, perform, project_row, read, record


def set_limits(
    ctx: Context,
    actor: str,
    project: str,
    memory_bytes: int | None = None,
    cpus: float | None = None,
    pids: int | None = None,
    *,
    clear: bool = False,
) -> dict[str, int | float]:
    """Set (or with ``clear``, remove) the project's session quota; return the quota in force.

    Values must be positive and within the bounds of ``enclave.control.quota``; a new quota
    replaces the old one whole. InvalidInput (``invalid_quota``) for a bad or empty quota.
    """
    try:
        quota = check_quota(memory_bytes, cpus, pids)
    except QuotaError as error:
        raise InvalidInput(str(error), rule="invalid_quota") from error
    if clear == bool(quota):
        raise InvalidInput(
            "give at least one of memory, cpus and pids, or clear (not both)", rule="invalid_quota"
        )

    def work(session: Session, me: Person) -> dict[str, int | float]:
        authorize(me, Action.SET_LIMITS)
        row = project_row(session, project)
        authorize(me, Action.SET_LIMITS, row)
        before = stored_quota(row.session_quota)
        row.session_quota = canonical_json(quota)
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.SET_LIMITS,
            target=project,
            project=project,
            before=before,
            after=quota,
        )
        return quota

    return perform(ctx, actor, Action.SET_LIMITS, work, target=project, project=project)


def project_quota(ctx: Context, project: str) -> dict[str, int | float]:
    """The project's quota for the spawner (empty when none is set or no such project)."""

    def work(session: Session) -> dict[str, int | float]:
        raw = session.scalar(select(Project.session_quota).where(Project.slug == project))
        return stored_quota(raw) if raw is not None else {}

    return read(ctx, work)
