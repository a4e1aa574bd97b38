"""Handlers of ``enclave admin ...`` for what a custodian decides about a dataset's data
leaving: its egress rights (SATRE 3.1.06: sign-off policy, delegates, people's rights) and its
microdata risk policy for extracts. Each calls one service function and prints its result;
wiring lives in ``enclave.cli_admin``."""

from __future__ import annotations

import argparse

from enclave.control.context import Context
from enclave.control.service import egress
from enclave.control.service.microdata_policy import set_microdata_policy
from enclave.settings import Settings


def _out(*columns: object) -> None:
    print("\t".join("" if c is None else str(c) for c in columns))


def egress_policy(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    """Set whether releases of a dataset's outputs need its custodian's sign-off."""
    view = egress.set_egress_policy(ctx, a.actor, a.dataset, a.signoff)
    _out(view.dataset, "signoff" if view.signoff else "no-signoff", view.custodian)
    for email in view.delegates:
        _out("delegate", email)
    return 0


def microdata_policy(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    """Set a dataset's microdata risk policy (its custodian, or an admin)."""
    policy = set_microdata_policy(ctx, a.actor, a.dataset, k=a.k, max_global_risk=a.max_global_risk)
    _out(a.dataset, f"k={policy.k}", f"max_global_risk={policy.max_global_risk:g}")
    return 0


def delegate(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    """Name (or, with ``--remove``, end) a delegate for a dataset's egress decisions."""
    if a.remove:
        view = egress.remove_delegate(ctx, a.actor, a.dataset, a.email)
    else:
        view = egress.add_delegate(ctx, a.actor, a.dataset, a.email)
    state = "removed" if view.removed_at else "delegate"
    _out(view.dataset, view.email, state)
    return 0


def egress_right(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    """Grant (or, with ``--revoke``, revoke) a person's egress right in a project."""
    if a.revoke:
        view = egress.revoke_egress_right(ctx, a.actor, a.dataset, a.project, a.email)
    else:
        view = egress.grant_egress_right(ctx, a.actor, a.dataset, a.project, a.email)
    state = "revoked" if view.revoked_at else "granted"
    _out(view.dataset, view.project, view.email, state)
    return 0
