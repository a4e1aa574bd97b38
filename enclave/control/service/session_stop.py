"""Stopping running sessions at once (after a sanction, an incident freeze or a project close),
through a ``SessionStopper``: the hub's REST API in production, a recording fake in tests.

The database row (sanction, freeze, closed project) is the authority: a hub that cannot be
reached never blocks it, a failed stop is audited and returned, never raised, and the hub's
access enforcer stops whatever the immediate stop missed on its next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import ControlError, IntegrationError
from enclave.control.models import Person
from enclave.control.service._base import record
from enclave.control.service.access import record_session_stop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Server:
    """A running session: the hub username and its server name (the project's slug)."""

    user: str
    project: str

    def __str__(self) -> str:
        return f"{self.user}/{self.project}"


class SessionStopper(Protocol):
    """Stops running sessions at once. ``username`` and ``project`` narrow the sessions to
    stop (both None: every session); returns the sessions stopped. Raises ControlError
    (``IntegrationError``) when the hub cannot be asked or refuses."""

    def stop_sessions(
        self, *, username: str | None = None, project: str | None = None
    ) -> Sequence[Server]: ...


class PartialStop(IntegrationError):
    """Some sessions were stopped (``stopped``) before the hub refused or failed."""

    def __init__(self, message: str, stopped: Sequence[Server]) -> None:
        super().__init__(message, rule="hub")
        self.stopped = tuple(stopped)


class HubServerCalls(Protocol):
    """The two hub calls a stopper needs (``enclave.hub.enforcer.HubServers`` has them)."""

    def active_users(self) -> list[dict[str, Any]]: ...

    def stop(self, server: Any) -> None: ...


@dataclass(frozen=True)
class HubSessionStopper:
    """A SessionStopper over the hub's REST API, through the access enforcer's own calls:
    list the ready servers, stop each that matches."""

    hub: HubServerCalls

    def stop_sessions(
        self, *, username: str | None = None, project: str | None = None
    ) -> list[Server]:
        from enclave.hub.enforcer import running_servers  # the hub's view of "running"

        stopped: list[Server] = []
        failed: list[str] = []
        for server in running_servers(self.hub.active_users()):
            if username not in (None, server.user) or project not in (None, server.project):
                continue
            try:
                self.hub.stop(server)
            except IntegrationError as error:  # the others are still worth stopping
                failed.append(error.message)
                continue
            stopped.append(Server(server.user, server.project))
        if failed:
            raise PartialStop(f"{len(failed)} session(s) not stopped: {failed[0]}", stopped)
        return stopped


def hub_stopper(api_url: str | None, token: str | None) -> HubSessionStopper | None:
    """The hub's stopper when a hub is configured (its API root and token), else None."""
    if not api_url:
        return None
    from enclave.hub.enforcer import HubServers

    return HubSessionStopper(HubServers.at(api_url, token or ""))


@dataclass(frozen=True)
class StopOutcome:
    """What the immediate stop did. ``error`` is set when the hub could not stop them (the
    enforcer's next pass does); ``attempted`` is False when no hub is configured."""

    attempted: bool
    stopped: tuple[str, ...] = ()
    error: str = ""


def stop_sessions(
    ctx: Context,
    stopper: SessionStopper | None,
    reason: str,
    *,
    username: str | None = None,
    project: str | None = None,
) -> StopOutcome:
    """Stop the matching sessions and audit each stop (``session_stop``); a failure is
    audited (``session_stop``, outcome ``failed``) and returned, never raised."""
    if stopper is None:
        return StopOutcome(attempted=False)
    stopped: list[Server] = []
    try:
        stopped = list(stopper.stop_sessions(username=username, project=project))
    except ControlError as error:
        if isinstance(error, PartialStop):
            _audit_stops(ctx, error.stopped, reason)
        log.error("immediate session stop failed (%s): left to the access enforcer", error)
        with transaction(ctx.engine) as session:
            scope = f"{username or '*'}/{project or '*'}"
            record(
                session,
                ctx,
                "system",
                "session_stop",
                outcome="failed",
                target=scope,
                project=project,
                reason=reason,
                error=error.message,
            )
        done = tuple(str(s) for s in getattr(error, "stopped", ()))
        return StopOutcome(attempted=True, stopped=done, error=error.message)
    _audit_stops(ctx, stopped, reason)
    return StopOutcome(attempted=True, stopped=tuple(str(s) for s in stopped))


def _audit_stops(ctx: Context, stopped: Sequence[Server], reason: str) -> None:
    """One ``session_stop`` per stopped session, naming its person by email."""
    emails = _emails_of(ctx, {s.user for s in stopped})
    for server in stopped:
        record_session_stop(
            ctx, email=emails.get(server.user, server.user), project=server.project, reason=reason
        )


def _emails_of(ctx: Context, usernames: set[str]) -> dict[str, str]:
    if not usernames:
        return {}
    query = select(Person.username, Person.email).where(Person.username.in_(usernames))
    with transaction(ctx.engine, readonly=True) as session:
        return {name: email for name, email in session.execute(query)}
