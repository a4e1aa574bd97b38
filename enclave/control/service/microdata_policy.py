"""Each dataset's microdata risk policy: the custodian's target for record-level data from it.

The research-extract builder holds every table to its dataset's policy
(``enclave.linkage.extract_risk``). The rule itself is ``RiskTarget`` in
``output_checker.microdata.problem``; this module only stores it: the custodian of the
dataset, or an admin, sets it, and the defaults (5-anonymity; global risk 1e-4 for sample
data) hold until then.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.audit import canonical_json
from enclave.control.context import Context
from enclave.control.errors import InvalidInput, PermissionDenied
from enclave.control.models import Dataset, Person
from enclave.control.rules import Action, Role
from enclave.control.service._base import authorize, dataset_row, perform, read, record
from output_checker.microdata.problem import RiskTarget


def _policy(raw: str | None) -> RiskTarget:
    return RiskTarget.from_dict(json.loads(raw or "{}"))


def set_microdata_policy(
    ctx: Context, actor: str, dataset: str, *, k: int, max_global_risk: float
) -> RiskTarget:
    """Set ``dataset``'s policy (its custodian, or an admin). InvalidInput (``invalid_policy``)
    for k below 2 or a risk outside (0, 1)."""
    try:
        if int(k) < 2:
            raise ValueError(f"k must be at least 2, got {k}")
        policy = RiskTarget(k=int(k), max_global_risk=float(max_global_risk))
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"invalid microdata policy: {error}", rule="invalid_policy") from None

    def work(session: Session, me: Person) -> RiskTarget:
        authorize(me, Action.SET_MICRODATA_POLICY)
        row = dataset_row(session, dataset)
        if Role.ADMIN not in me.role_names and row.custodian_id != me.id:
            raise PermissionDenied(
                f"only the custodian of {row.slug} may do this", rule="custodian_only"
            )
        before = _policy(row.microdata_policy)
        row.microdata_policy = canonical_json(
            {"k": policy.k, "max_global_risk": policy.max_global_risk}
        )
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.SET_MICRODATA_POLICY,
            target=row.slug,
            k=policy.k,
            max_global_risk=policy.max_global_risk,
            was={"k": before.k, "max_global_risk": before.max_global_risk},
        )
        return policy

    return perform(ctx, actor, Action.SET_MICRODATA_POLICY, work, target=dataset)


def microdata_policies(ctx: Context, datasets: list[str]) -> dict[str, RiskTarget]:
    """The policy in force for each named dataset (the defaults for one never set)."""

    def work(session: Session) -> dict[str, RiskTarget]:
        rows = session.execute(
            select(Dataset.slug, Dataset.microdata_policy).where(Dataset.slug.in_(datasets))
        )
        found = {slug: _policy(raw) for slug, raw in rows}
        return {slug: found.get(slug, RiskTarget()) for slug in datasets}

    return read(ctx, work)
