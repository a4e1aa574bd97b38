"""Mirror project memberships to JupyterHub groups ``project-<slug>`` through the hub's REST API.

``reconcile`` is idempotent, in the style of JupyterHub's own ``check_routes``: it computes the
groups that should exist (one per active project, holding the usernames of its researchers
whose access is in force), creates missing groups and users, fixes membership, deletes stale
``project-*`` groups, and audits what it changed. Groups without the prefix are left alone.
It runs only when ``settings.hub_url`` is set; call it after membership changes and on a timer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.hubapi import HubApi, quote_name
from enclave.control.models import Membership, Project
from enclave.control.rules import ProjectState, Role
from enclave.control.service._base import read, record
from enclave.settings import Settings

GROUP_PREFIX = "project-"


class HubClient(Protocol):
    """The few JupyterHub operations the mirror needs."""

    def groups(self) -> dict[str, set[str]]:
        """Every group and its usernames."""
        ...

    def users(self) -> set[str]:
        """Every username the hub knows."""
        ...

    def create_users(self, names: Sequence[str]) -> None: ...

    def create_group(self, name: str) -> None: ...

    def delete_group(self, name: str) -> None: ...

    def add_users(self, group: str, names: Sequence[str]) -> None: ...

    def remove_users(self, group: str, names: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class RestHubClient:
    """HubClient over JupyterHub's REST API (``enclave.control.hubapi``). ``api_url`` is the
    API root, like JupyterHub's own ``JUPYTERHUB_API_URL`` (``http://127.0.0.1:8081/hub/api``)."""

    api_url: str
    token: str = field(repr=False)
    timeout: float = 10.0

    @property
    def _api(self) -> HubApi:
        return HubApi(self.api_url, self.token, self.timeout)

    def groups(self) -> dict[str, set[str]]:
        return {g["name"]: set(g.get("users") or ()) for g in self._api.paged("/groups")}

    def users(self) -> set[str]:
        return {u["name"] for u in self._api.paged("/users")}

    def create_users(self, names: Sequence[str]) -> None:
        self._api.call("POST", "/users", {"usernames": list(names)})

    def create_group(self, name: str) -> None:
        self._api.call("POST", f"/groups/{quote_name(name)}")

    def delete_group(self, name: str) -> None:
        self._api.call("DELETE", f"/groups/{quote_name(name)}")

    def add_users(self, group: str, names: Sequence[str]) -> None:
        self._api.call("POST", f"/groups/{quote_name(group)}/users", {"users": list(names)})

    def remove_users(self, group: str, names: Sequence[str]) -> None:
        self._api.call("DELETE", f"/groups/{quote_name(group)}/users", {"users": list(names)})


@dataclass(frozen=True)
class HubReport:
    """What a reconcile changed."""

    created_groups: tuple[str, ...] = ()
    deleted_groups: tuple[str, ...] = ()
    created_users: tuple[str, ...] = ()
    added: dict[str, tuple[str, ...]] = field(default_factory=dict)
    removed: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        parts = (self.created_groups, self.deleted_groups, self.created_users)
        return any(parts) or bool(self.added) or bool(self.removed)


def desired_groups(ctx: Context) -> dict[str, frozenset[str]]:
    """``project-<slug>`` -> usernames, for every active project within its dates: its
    researchers whose membership and accreditation are in force and whose account is active."""
    today = ctx.today()

    def work(session: Session) -> dict[str, frozenset[str]]:
        projects = session.scalars(
            select(Project).where(
                Project.state == ProjectState.ACTIVE.value,
                Project.start_date <= today,
                Project.end_date >= today,
            )
        ).all()
        groups: dict[str, frozenset[str]] = {}
        for project in projects:
            members = session.scalars(
                select(Membership).where(
                    Membership.project_id == project.id,
                    Membership.role == Role.RESEARCHER.value,
                    Membership.removed_at.is_(None),
                    Membership.expires_on >= today,
                )
            ).all()
            groups[GROUP_PREFIX + project.slug] = frozenset(
                m.person.username
                for m in members
                if m.person.active
                and any(a.issued_on <= today <= a.expires_on for a in m.person.accreditations)
            )
        return groups

    return read(ctx, work)


def reconcile(ctx: Context, client: HubClient, *, actor: str = "system") -> HubReport:
    """Make the hub's ``project-*`` groups match ``desired_groups``; audit any change."""
    desired = desired_groups(ctx)
    actual = {n: u for n, u in client.groups().items() if n.startswith(GROUP_PREFIX)}
    wanted_users = set().union(*desired.values()) if desired else set()
    new_users = tuple(sorted(wanted_users - client.users()))
    if new_users:
        client.create_users(new_users)
    created = tuple(sorted(desired.keys() - actual.keys()))
    for name in created:
        client.create_group(name)
    added: dict[str, tuple[str, ...]] = {}
    removed: dict[str, tuple[str, ...]] = {}
    for name, want in sorted(desired.items()):
        have = actual.get(name, set())
        if plus := tuple(sorted(want - have)):
            client.add_users(name, plus)
            added[name] = plus
        if minus := tuple(sorted(have - want)):
            client.remove_users(name, minus)
            removed[name] = minus
    deleted = tuple(sorted(actual.keys() - desired.keys()))
    for name in deleted:
        client.delete_group(name)
    report = HubReport(created, deleted, new_users, added, removed)
    if report.changed:
        with transaction(ctx.engine) as session:
            record(
                session,
                ctx,
                actor,
                "sync_hub",
                created_groups=list(created),
                deleted_groups=list(deleted),
                created_users=list(new_users),
                added={k: list(v) for k, v in added.items()},
                removed={k: list(v) for k, v in removed.items()},
            )
    return report


def sync_hub(
    ctx: Context, settings: Settings, *, client: HubClient | None = None, actor: str = "system"
) -> HubReport | None:
    """Reconcile when a hub is configured (``settings.hub_url``); None when it is not."""
    if not settings.hub_url:
        return None
    chosen = client or RestHubClient(settings.hub_url, settings.hub_api_token or "")
    return reconcile(ctx, chosen, actor=actor)
