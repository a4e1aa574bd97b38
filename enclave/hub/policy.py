"""Who gets which session: one frozen decision per (username, project), asked of the control plane.

Every spawner backend (bubblewrap, systemd, Kubernetes) asks ``SessionPolicy.decide`` before it
starts anything and applies the answer as it is: whether to start at all, which directories to
mount (the project's research extract read-only, a private home per user and project, the
user's outbox), the resource limits and the tier. Backends never decide access themselves.

The zones follow the data directory layout: ``projects/<slug>/data/`` (extract),
``projects/<slug>/home/<user>/`` and ``projects/<slug>/outbox/<user>/``. The control plane
audits every decision (``start_session``), allowed or refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from enclave.control.context import Context
from enclave.control.service.access import authorize_session_for_username
from enclave.control.service.dictionary import granted_dictionary
from enclave.control.service.quotas import project_quota
from enclave.hub.guidance import render_dictionary

# the control plane's slug and username grammars: both end up in host paths
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

# What the researcher is told for each refusal rule. The control plane's own reasons name
# people (emails), so they go to its audit log, never to the hub's log or the browser.
REFUSALS = {
    "unknown_user": "your account is not known to the enclave",
    "unknown_actor": "your account is not known to the enclave",
    "unknown_project": "there is no such project",
    "invalid_name": "there is no such project",
    "inactive": "your account is suspended",
    "role": "your account does not hold the researcher role",
    "project_state": "the project is not active",
    "project_dates": "the project is outside its approved dates",
    "membership": "you are not a researcher on this project",
    "membership_expired": "your membership of this project has expired",
    "accreditation": "your accreditation is missing or has expired",
}


@dataclass(frozen=True)
class Limits:
    """Resource limits of one session; None means no limit.

    ``memory_bytes`` bounds resident memory (and swap, where the host accounts it),
    ``cpus`` the CPU time in cores (1.5 = one and a half cores), ``pids`` the number of
    processes and threads together.
    """

    memory_bytes: int | None = 4 * 1024**3
    cpus: float | None = 1.0
    pids: int | None = 512

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "cpus", "pids"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"limit {name} must be positive or None; got {value!r}")


@dataclass(frozen=True)
class SessionDecision:
    """The answer to "may ``username`` start a session on ``project``, and with what?".

    When refused, ``rule`` names the rule and ``message`` says why in words fit for the
    researcher (no person-level data). When allowed, ``data``, ``home`` and ``outbox`` are host
    paths (``data`` read-only in the session, the other two writable), ``datasets`` the grants
    in force, ``valid_until`` the last day the decision holds and ``dictionary`` the data
    dictionary of the grants.
    """

    allowed: bool
    username: str
    project: str
    rule: str | None = None
    message: str = ""
    tier: str = ""
    limits: Limits = field(default_factory=Limits)
    data: Path | None = None
    home: Path | None = None
    outbox: Path | None = None
    datasets: tuple[str, ...] = ()
    valid_until: date | None = None
    email: str = field(default="", repr=False)  # for the control plane's audit only
    # the Markdown data dictionary of the grants (metadata only), written into the home
    dictionary: str = field(default="", repr=False)


def refused(username: str, project: str, rule: str) -> SessionDecision:
    """A refusal with the researcher-facing text of ``rule``."""
    text = REFUSALS.get(rule, "the access policy refused it")
    return SessionDecision(False, username, project, rule, f"Cannot start {project}: {text}.")


@dataclass(frozen=True)
class SessionPolicy:
    """The one policy object of the hub: the control plane decides access; this adds the
    directories and the limits of the tier. ``project_limits`` overrides ``limits`` per project
    slug (a bigger machine for one study), and an operator's quota set in the control plane
    (``enclave admin set-limits``) overrides both, field by field."""

    ctx: Context
    tier: str = "2"
    limits: Limits = field(default_factory=Limits)
    project_limits: dict[str, Limits] = field(default_factory=dict)

    def project_dir(self, project: str) -> Path:
        """``<data_dir>/projects/<slug>``: the caller must have checked the slug."""
        return self.ctx.data_dir / "projects" / project

    def limits_for(self, project: str) -> Limits:
        """The configured limits of ``project`` with the operator's quota laid over them."""
        base = self.project_limits.get(project, self.limits)
        quota = project_quota(self.ctx, project)
        memory, cpus, pids = (quota.get(k) for k in ("memory_bytes", "cpus", "pids"))
        return Limits(
            memory_bytes=base.memory_bytes if memory is None else int(memory),
            cpus=base.cpus if cpus is None else float(cpus),
            pids=base.pids if pids is None else int(pids),
        )

    def decide(self, username: str, project: str) -> SessionDecision:
        """Ask the control plane (which audits the decision) and build the session's plan.

        Names that cannot be a slug or username are refused before any path is built.
        """
        if not SLUG.match(project):
            return refused(username, project, "invalid_name")
        if not USERNAME.match(username):
            return refused(username, project, "unknown_user")
        access = authorize_session_for_username(self.ctx, username=username, project=project)
        if not access.allowed:
            return refused(username, project, access.rule or "policy")
        root = self.project_dir(project)
        return SessionDecision(
            allowed=True,
            username=username,
            project=project,
            message="allowed",
            tier=self.tier,
            limits=self.limits_for(project),
            data=root / "data",
            home=root / "home" / username,
            outbox=root / "outbox" / username,
            datasets=tuple(m.dataset for m in access.data),
            valid_until=access.valid_until,
            email=access.email,
            dictionary=render_dictionary(project, granted_dictionary(self.ctx, access.data)),
        )
