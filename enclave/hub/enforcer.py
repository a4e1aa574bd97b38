"""The access enforcer: stops running sessions whose access has lapsed.

The authenticator and the spawner ask the control plane at login and at spawn; a server that
is already running would otherwise outlive a suspended or closed project, a removed
membership, an expired accreditation or a suspended account. The hub runs this module as a
managed service (``enclave.hub.config.enforcer_service``; ``python -m enclave.hub.enforcer``)
whose token may only list users, read their servers and stop them. Every ``--interval``
seconds it lists the running named servers through the hub's REST API, asks the control plane
whether each (user, project) may still run (``session_access_for_username``: the rules of
``start_session``, read-only, so the check itself fills no audit log), stops each refused one
and audits each stop (``session_stop``, reason ``access lapsed: <rule>``). ``--once`` makes
one pass and exits, for operators and tests.

``servers_to_stop`` is the whole decision and does no I/O; the rest is the thin shell around
it. Logs name usernames, projects and rule codes only: the control plane's reasons name people.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from enclave.control.context import Context, open_context
from enclave.control.errors import IntegrationError
from enclave.control.hubapi import HubApi, quote_name
from enclave.control.service.access import (
    AccessDecision,
    record_session_stop,
    session_access_for_username,
)
from enclave.settings import Settings

log = logging.getLogger("enclave.hub.enforcer")

REASON = "access lapsed: {rule}"


@dataclass(frozen=True)
class RunningServer:
    """A server the hub reports ready: ``project`` is its name ("" for the default server)."""

    user: str
    project: str

    def __str__(self) -> str:
        return f"{self.user}/{self.project}"


@dataclass(frozen=True)
class Stop:
    """A server to stop, the control plane's rule that refused it, and whom the audit event
    names (the person's email, as for every session event, else the username)."""

    server: RunningServer
    rule: str
    actor: str = field(repr=False)

    @property
    def reason(self) -> str:
        return REASON.format(rule=self.rule)


def running_servers(users: Iterable[Mapping[str, Any]]) -> list[RunningServer]:
    """The ready servers in the hub's user models (``GET /users?state=active``). A server
    still starting is skipped (its spawn was just decided; the next pass sees it ready), and
    so is one already stopping."""
    found = []
    for user in users:
        for name, server in sorted((user.get("servers") or {}).items()):
            if server.get("ready"):
                found.append(RunningServer(str(user["name"]), str(name)))
    return found


def servers_to_stop(
    running: Sequence[RunningServer], decisions: Mapping[RunningServer, AccessDecision]
) -> list[Stop]:
    """Every running server whose (user, project) the control plane now refuses, in the order
    given. A server without a decision is left running: the control plane could not be asked
    about it, and the pass is repeated."""
    stops = []
    for server in running:
        decision = decisions.get(server)
        if decision is not None and not decision.allowed:
            stops.append(Stop(server, decision.rule or "policy", decision.email or server.user))
    return stops


# -- the shell: the hub's REST API, the control plane, the loop ---------------------------------


@dataclass(frozen=True)
class HubServers:
    """The two calls the enforcer makes, over ``enclave.control.hubapi``. The token needs
    ``list:users``, ``read:servers`` and ``delete:servers``. A stop can take the hub's
    ``slow_stop_timeout`` before it answers, hence the long timeout."""

    api: HubApi

    @classmethod
    def at(cls, api_url: str, token: str) -> HubServers:
        return cls(HubApi(api_url, token, timeout=60.0))

    def active_users(self) -> list[dict[str, Any]]:
        """The models of every user with a server running or pending."""
        return self.api.paged("/users", "state=active")

    def stop(self, server: RunningServer) -> None:
        """Ask the hub to stop ``server`` (its spawner kills the sandbox); the server stays
        defined, so its home and outbox remain for when access returns."""
        user = quote_name(server.user)
        if server.project:
            self.api.call("DELETE", f"/users/{user}/servers/{quote_name(server.project)}")
        else:
            self.api.call("DELETE", f"/users/{user}/server")


@dataclass(frozen=True)
class PassReport:
    """One pass: how many servers ran, which were stopped, which stops the hub refused."""

    running: int
    stopped: tuple[Stop, ...] = ()
    failed: tuple[Stop, ...] = ()


def decisions_for(
    ctx: Context, running: Iterable[RunningServer]
) -> dict[RunningServer, AccessDecision]:
    """The control plane's current decision on each running (user, project), not audited."""
    return {
        server: session_access_for_username(ctx, username=server.user, project=server.project)
        for server in running
    }


def enforce_once(hub: HubServers, ctx: Context) -> PassReport:
    """List, decide, stop and audit once. A stop the hub refuses is logged and left for the
    next pass; each stop the hub accepted is audited as ``session_stop``."""
    running = running_servers(hub.active_users())
    stopped: list[Stop] = []
    failed: list[Stop] = []
    for stop in servers_to_stop(running, decisions_for(ctx, running)):
        try:
            hub.stop(stop.server)
        except IntegrationError as error:
            log.error("could not stop %s (rule %s): %s", stop.server, stop.rule, error)
            failed.append(stop)
            continue
        log.info("stopped %s: access lapsed (rule %s)", stop.server, stop.rule)
        stopped.append(stop)
        try:
            record_session_stop(
                ctx, email=stop.actor, project=stop.server.project, reason=stop.reason
            )
        except Exception as error:  # the server is stopped either way; the gap is logged
            log.error("could not audit the stop of %s (%s)", stop.server, _kind(error))
    return PassReport(len(running), tuple(stopped), tuple(failed))


def _kind(error: Exception) -> str:
    """What to log of an unexpected error: its type and, for ours, the message. A database
    error's message may quote the rows it touched, so its text is never logged."""
    return (
        f"{type(error).__name__}: {error}"
        if isinstance(error, IntegrationError)
        else type(error).__name__
    )


def checked_pass(hub: HubServers, ctx: Context) -> PassReport | None:
    """``enforce_once``, or None (logged) when the pass failed: the hub or the control plane
    could not be asked."""
    try:
        return enforce_once(hub, ctx)
    except Exception as error:
        log.error("enforcement pass failed (%s)", _kind(error))
        return None


def run_forever(hub: HubServers, ctx: Context, interval: float) -> None:
    """A pass every ``interval`` seconds; a failed pass is logged and the next one tried."""
    while True:
        started = time.monotonic()
        checked_pass(hub, ctx)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the hub stops its services with SIGTERM


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m enclave.hub.enforcer",
        description="Stop the hub's running servers whose access the control plane refuses. "
        "The token is read from JUPYTERHUB_API_TOKEN; the control plane from ENCLAVE_* settings.",
    )
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between passes")
    parser.add_argument("--once", action="store_true", help="make one pass and exit")
    parser.add_argument(
        "--url",
        default=os.environ.get("JUPYTERHUB_API_URL", ""),
        help="the hub's API root (default: $JUPYTERHUB_API_URL, set by the hub)",
    )
    args = parser.parse_args(argv)
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not token:
        parser.error("JUPYTERHUB_API_TOKEN must be set")
    if not args.url:
        parser.error("--url or JUPYTERHUB_API_URL must be set")
    if args.interval <= 0:
        parser.error(f"--interval must be positive; got {args.interval}")
    try:
        hub = HubServers.at(args.url, token)
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname).1s %(asctime)s access-enforcer] %(message)s"
    )
    ctx = open_context(Settings.load())
    try:
        if args.once:
            report = checked_pass(hub, ctx)
            if report is None:
                return 2
            for stop in report.stopped:
                print(f"stopped {stop.server} (rule {stop.rule})")
            print(f"{report.running} running, {len(report.stopped)} stopped")
            return 1 if report.failed else 0
        signal.signal(signal.SIGTERM, _interrupt)
        log.info("checking running servers every %g s", args.interval)
        run_forever(hub, ctx, args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
