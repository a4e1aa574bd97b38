"""The state-changing service calls that the admin pages and the API both expose under a URL
word (``/projects/<slug>/approve``, ``/grants/<uuid>/reject``...), in one shape:
``call(ctx, actor, key, reason)``, with whether a reason is required."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from enclave.control.context import Context
from enclave.control.service import grants, projects
from enclave.control.views import GrantView, ProjectView

ProjectCall = Callable[[Context, str, str, str], ProjectView]
GrantCall = Callable[[Context, str, str, str], GrantView]


def _approve(ctx: Context, actor: str, slug: str, _reason: str) -> ProjectView:
    return projects.approve_project(ctx, actor, slug)


def _activate(ctx: Context, actor: str, slug: str, _reason: str) -> ProjectView:
    return projects.activate_project(ctx, actor, slug)


def _close(ctx: Context, actor: str, slug: str, reason: str) -> ProjectView:
    return projects.close_project(ctx, actor, slug, reason).project


def _approve_grant(ctx: Context, actor: str, grant: str, _reason: str) -> GrantView:
    return grants.approve_grant(ctx, actor, grant)


# The project state machine's actions (``rules.TRANSITIONS``), by URL word.
PROJECT_TRANSITIONS: Mapping[str, tuple[ProjectCall, bool]] = MappingProxyType(
    {
        "approve": (_approve, False),
        "reject": (projects.reject_project, True),
        "activate": (_activate, False),
        "suspend": (projects.suspend_project, True),
        "close": (_close, True),
    }
)

# A custodian's decisions on a grant request, and revocation, by URL word.
GRANT_DECISIONS: Mapping[str, tuple[GrantCall, bool]] = MappingProxyType(
    {
        "approve": (_approve_grant, False),
        "reject": (grants.reject_grant, True),
        "revoke": (grants.revoke_grant, True),
    }
)
