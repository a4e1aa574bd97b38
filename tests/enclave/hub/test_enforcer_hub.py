"""The access enforcer against a real sandboxed hub: a session whose access lapses while it runs
is stopped (the hub says so, its sandbox's processes and cgroup are gone, the stop is audited),
and the sessions whose access holds keep running, kernels and all.

The first test leaves it to the managed service the hub runs (every second here); the second
runs ``python -m enclave.hub.enforcer --once`` beside a hub whose service waits an hour.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from enclave.control import audit
from enclave.control.context import Context, open_context
from enclave.control.service import members, people, projects
from enclave.hub.cgroups import Cgroup
from enclave.hub.spawner import process_start
from tests.enclave.control.factories import World
from tests.enclave.hub.sandboxhub import OTHER, SandboxHub, sandbox_hub

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hub-enforcer")]

ADMIN = World().admin
RESEARCHER = World().researcher


@contextmanager
def control_plane(hub: SandboxHub) -> Iterator[Context]:
    """The hub's control plane, as an administrator's tool would open it."""
    ctx = open_context(hub.settings)
    try:
        yield ctx
    finally:
        ctx.close()


def wait_stopped(hub: SandboxHub, user: str, project: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while hub.server(user, project) is not None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{user}/{project} still runs:\n{hub.log()[-3000:]}")
        time.sleep(0.2)


def assert_sandbox_gone(state: dict[str, Any]) -> None:
    """The keeper (and with it bubblewrap and the server) is dead, the cgroup and the session's
    socket directory are removed."""
    assert process_start(state["pid"]) != state["pid_start"]
    assert not Cgroup.from_state(state["cgroup"]).exists()
    assert not Path(state["socket"]).parent.exists()


def assert_sandbox_running(state: dict[str, Any]) -> None:
    assert process_start(state["pid"]) == state["pid_start"]
    assert state["pid"] in Cgroup.from_state(state["cgroup"]).pids()


def enforced_stops(hub: SandboxHub, project: str) -> list[tuple[str, str]]:
    """(actor, reason) of the ``session_stop`` events the enforcer wrote for ``project``."""
    from enclave.control.db import make_engine

    engine = make_engine(hub.settings.database_url)
    try:
        events = audit.records(engine, action="session_stop", project=project)
    finally:
        engine.dispose()
    return [(e.actor, e.detail["reason"]) for e in events if "lapsed" in e.detail["reason"]]


def test_the_managed_enforcer_stops_sessions_whose_access_lapses() -> None:
    with sandbox_hub(hub_env={"ENCLAVE_HUB_ENFORCE_INTERVAL": "1"}) as hub:
        mine = hub.spawn("researcher", "alpha")
        doomed = hub.spawn("researcher", "beta")
        theirs = hub.spawn("other", "alpha")
        kernel = hub.kernel("other", "alpha")
        kernel.run("import json\nx = 42")
        time.sleep(3)  # a few passes while every access holds: nothing is stopped
        for user, project in (("researcher", "alpha"), ("researcher", "beta"), ("other", "alpha")):
            found = hub.server(user, project)
            assert found is not None and found["ready"], f"{user}/{project} was stopped"

        # 1. the project is suspended: its session stops, the other project's stay
        with control_plane(hub) as ctx:
            projects.suspend_project(ctx, ADMIN, "beta", "ethics review")
        wait_stopped(hub, "researcher", "beta")
        assert_sandbox_gone(doomed["state"])
        assert enforced_stops(hub, "beta") == [(RESEARCHER, "access lapsed: project_state")]
        for state in (mine["state"], theirs["state"]):
            assert_sandbox_running(state)
        assert kernel.value("print(json.dumps(x))") == 42  # the same kernel, untouched
        again = hub.api("POST", "/users/researcher/servers/beta")
        assert again.status_code == 403, again.text

        # 2. a membership is removed: that person's session on the project stops
        with control_plane(hub) as ctx:
            members.remove_member(
                ctx, ADMIN, project="alpha", email=OTHER, role="researcher", reason="moved on"
            )
        wait_stopped(hub, "other", "alpha")
        assert_sandbox_gone(theirs["state"])
        assert_sandbox_running(mine["state"])
        assert (hub.server("researcher", "alpha") or {}).get("ready")
        assert enforced_stops(hub, "alpha") == [(OTHER, "access lapsed: membership")]

        log = hub.log()
        assert "stopped researcher/beta: access lapsed (rule project_state)" in log
        assert "stopped other/alpha: access lapsed (rule membership)" in log
        assert "@example.org" not in log  # usernames and rules only, never an email


def test_one_pass_from_the_command_line_stops_a_suspended_persons_sessions() -> None:
    with sandbox_hub(hub_env={"ENCLAVE_HUB_ENFORCE_INTERVAL": "3600"}) as hub:
        mine = hub.spawn("researcher", "alpha")
        theirs = hub.spawn("other", "alpha")
        with control_plane(hub) as ctx:
            people.set_active(ctx, ADMIN, OTHER, active=False, reason="left the organisation")
        time.sleep(1)
        assert hub.server("other", "alpha") is not None  # the service's next pass is an hour away

        env = {
            "PATH": os.environ["PATH"],
            "ENCLAVE_DATA_DIR": str(hub.settings.data_dir),
            "JUPYTERHUB_API_TOKEN": hub.settings.hub_api_token or "",
        }
        once = subprocess.run(
            [sys.executable, "-m", "enclave.hub.enforcer", "--once", f"--url={hub.url}/hub/api"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert once.returncode == 0, once.stderr
        assert once.stdout.splitlines() == [
            "stopped other/alpha (rule inactive)",
            "2 running, 1 stopped",
        ]
        assert "@" not in once.stdout + once.stderr
        wait_stopped(hub, "other", "alpha")
        assert_sandbox_gone(theirs["state"])
        assert (hub.server("researcher", "alpha") or {}).get("ready")
        assert_sandbox_running(mine["state"])
        assert enforced_stops(hub, "alpha") == [(OTHER, "access lapsed: inactive")]

        # a second pass finds nothing more to stop
        again = subprocess.run(
            [sys.executable, "-m", "enclave.hub.enforcer", "--once", f"--url={hub.url}/hub/api"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert (again.returncode, again.stdout.splitlines()) == (0, ["1 running, 0 stopped"])
        assert enforced_stops(hub, "alpha") == [(OTHER, "access lapsed: inactive")]
