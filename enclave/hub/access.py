"""What the authenticators ask the control plane about one person: may they use the hub at
all, in which ``project-<slug>`` groups, and may they start a server for one project.

Shared by both authenticators (local password + TOTP, and OIDC) so that a login, a refresh and
a spawn apply the control plane's own rules: the groups are those of its hub mirror
(``enclave.control.hub.desired_groups``), a spawn is decided by ``SessionPolicy.decide``
(which asks ``authorize_session_for_username`` and audits the decision), and accreditation is
``members.check_accredited``. Nothing here re-decides a rule; it maps the usernames the hub
knows onto the control plane's people, and words refusals for the person without naming anyone.

All functions block (database, argon2): the hub calls them on a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import RuleViolation
from enclave.control.hub import GROUP_PREFIX, desired_groups
from enclave.control.models import Person
from enclave.control.rules import Role
from enclave.control.service.members import check_accredited
from enclave.hub.policy import REFUSALS, SessionDecision, SessionPolicy

NO_PROJECT = "you have no project whose access is in force (an active project and membership)"
NO_SERVER_NAME = "start a server named after one of your projects, not the default server"


@dataclass(frozen=True)
class HubAccess:
    """Whether ``username`` may use the hub now, and in which groups.

    When refused, ``refusal`` is a sentence for the person (it names nobody) and ``rule`` a
    short code for logs; both are None when allowed.
    """

    username: str
    groups: tuple[str, ...]
    refusal: str | None = None
    rule: str | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class _Account:
    email: str
    active: bool
    accredited: bool
    checker: bool  # reviews outputs in the queue: may log in to reach it, with no project


def _account(ctx: Context, username: str) -> _Account | None:
    # The services find people by email; the hub knows usernames. A lookup, not a rule.
    with transaction(ctx.engine, readonly=True) as session:
        person = session.scalar(select(Person).where(Person.username == username))
        if person is None:
            return None
        checker = Role.OUTPUT_CHECKER.value in person.role_names
        try:
            check_accredited(person, ctx.today())
        except RuleViolation:
            return _Account(person.email, person.active, accredited=False, checker=checker)
        return _Account(person.email, person.active, accredited=True, checker=checker)


def email_for_login(ctx: Context, login: str) -> str:
    """The email to authenticate for what someone typed as their login: an email is kept as
    typed; a username is looked up. An unknown username is returned unchanged, so the login
    service refuses it (and counts it towards that name's lockout) like any unknown email."""
    typed = (login or "").strip()
    if "@" in typed:
        return typed
    account = _account(ctx, typed.lower())
    return account.email if account else typed


def _refused(username: str, rule: str) -> HubAccess:
    return HubAccess(username, (), REFUSALS.get(rule, NO_PROJECT), rule)


def hub_access(ctx: Context, username: str) -> HubAccess:
    """May ``username`` use the hub now, and which ``project-<slug>`` groups hold them?

    Allowed when the account exists, is active, holds an accreditation in force and belongs to
    at least one group of ``desired_groups`` (an active project within its dates, an open
    researcher membership that has not expired): the groups the control plane mirrors. An
    output checker needs no group: they log in to reach the review queue, and the spawner
    still refuses them any server of a project they are not a researcher on.
    """
    account = _account(ctx, username)
    if account is None:
        return _refused(username, "unknown_user")
    if not account.active:
        return _refused(username, "inactive")
    if not account.accredited:
        return _refused(username, "accreditation")
    groups = tuple(sorted(g for g, members in desired_groups(ctx).items() if username in members))
    if not groups and not account.checker:
        return _refused(username, "no_project")
    return HubAccess(username, groups)


def project_of(group: str) -> str:
    """``project-<slug>`` -> ``<slug>``; ValueError for a group outside the enclave's prefix."""
    if not group.startswith(GROUP_PREFIX):
        raise ValueError(f"not a project group: {group!r}")
    return group[len(GROUP_PREFIX) :]


def session_decision(ctx: Context, username: str, project: str) -> SessionDecision:
    """``SessionPolicy.decide`` with the default tier: the control plane's audited decision
    (``start_session``) on ``username`` starting the server named ``project``. The default
    server (no name) belongs to no project and is refused without asking."""
    if not project:
        return SessionDecision(
            False, username, "", "server_name", f"Cannot start: {NO_SERVER_NAME}."
        )
    return SessionPolicy(ctx).decide(username, project)


def spawn_refusal(ctx: Context, username: str, project: str) -> str | None:
    """Why ``username`` may not start a server for ``project`` now (a sentence for them that
    names nobody), or None when they may. Audited by the control plane."""
    decision = session_decision(ctx, username, project)
    return None if decision.allowed else decision.message
