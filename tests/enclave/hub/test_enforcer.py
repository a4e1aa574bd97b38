"""The access enforcer without a hub: its pure decision, the control plane's read-only answer for
every kind of lapse (every database backend), the service's registration in the hub's
configuration, and the command line's refusals. The real hub is in ``test_enforcer_hub.py``."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.control.hubapi import HubApi
from enclave.control.service import members, people, projects
from enclave.control.service.access import AccessDecision
from enclave.hub.config import ENFORCER, ENFORCER_SCOPES, HubOptions, configure
from enclave.hub.enforcer import (
    RunningServer,
    Stop,
    decisions_for,
    main,
    running_servers,
    servers_to_stop,
)
from enclave.settings import Settings, SettingsError
from tests.enclave.control.factories import FakeClock, World, make_project

RAE_LIVE = RunningServer("rae", "live")
RAE_PAUSED = RunningServer("rae", "paused")
SAM_LIVE = RunningServer("sam", "live")


def _allowed(server: RunningServer) -> AccessDecision:
    return AccessDecision(True, f"{server.user}@example.org", server.project, None, "allowed")


def _refused(server: RunningServer, rule: str, email: str = "") -> AccessDecision:
    return AccessDecision(False, email, server.project, rule, "refused")


# --- the pure decision ---------------------------------------------------------------------------


def test_running_servers_are_the_ready_ones_of_every_user() -> None:
    users: list[dict[str, Any]] = [
        {
            "name": "rae",
            "servers": {
                "paused": {"name": "paused", "ready": True, "pending": None},
                "live": {"name": "live", "ready": True, "pending": None},
                "starting": {"name": "starting", "ready": False, "pending": "spawn"},
                "stopping": {"name": "stopping", "ready": False, "pending": "stop"},
            },
        },
        {"name": "sam", "servers": {"live": {"ready": True}}},
        {"name": "ted", "servers": {"": {"ready": True}}},  # the default server
        {"name": "uma"},  # a model without servers: no read:servers, or none running
    ]
    assert running_servers(users) == [
        RAE_LIVE,
        RAE_PAUSED,
        SAM_LIVE,
        RunningServer("ted", ""),
    ]


def test_refused_servers_are_stopped_with_the_rule_and_allowed_ones_kept() -> None:
    running = [RAE_LIVE, RAE_PAUSED, SAM_LIVE]
    decisions = {
        RAE_LIVE: _allowed(RAE_LIVE),
        RAE_PAUSED: _refused(RAE_PAUSED, "project_state", "rae@example.org"),
        SAM_LIVE: _refused(SAM_LIVE, "membership", "sam@example.org"),
    }
    stops = servers_to_stop(running, decisions)
    assert stops == [
        Stop(RAE_PAUSED, "project_state", "rae@example.org"),
        Stop(SAM_LIVE, "membership", "sam@example.org"),
    ]
    assert [s.reason for s in stops] == [
        "access lapsed: project_state",
        "access lapsed: membership",
    ]
    assert servers_to_stop(running, {s: _allowed(s) for s in running}) == []


def test_a_server_the_control_plane_was_not_asked_about_keeps_running() -> None:
    decisions = {RAE_PAUSED: _refused(RAE_PAUSED, "project_state", "rae@example.org")}
    assert servers_to_stop([RAE_LIVE, RAE_PAUSED], decisions) == [
        Stop(RAE_PAUSED, "project_state", "rae@example.org")
    ]
    assert servers_to_stop([RAE_LIVE], {}) == []


def test_a_person_unknown_to_the_control_plane_is_stopped_under_their_username() -> None:
    ghost = RunningServer("ghost", "live")
    no_rule = AccessDecision(False, "", "live", None, "refused")
    assert servers_to_stop([ghost], {ghost: _refused(ghost, "unknown_user")}) == [
        Stop(ghost, "unknown_user", "ghost")
    ]
    assert servers_to_stop([ghost], {ghost: no_rule})[0].rule == "policy"


# --- the control plane's answer, on every backend ---------------------------------------------


def _researcher(ctx: Context, world: World, username: str, *, accredited_days: int) -> str:
    email = f"{username}@example.org"
    people.create_person(
        ctx, world.admin, email=email, name=f"R {username}", organisation="Org",
        roles=["researcher"], username=username,
    )  # fmt: skip
    today = ctx.today()
    people.accredit(
        ctx, world.admin, email, scheme="Safe Researcher", reference=f"SR-{username}",
        issued_on=today - timedelta(days=1), expires_on=today + timedelta(days=accredited_days),
    )  # fmt: skip
    return email


def test_every_kind_of_lapse_is_refused_and_no_check_is_audited(ctx: Context, world: World) -> None:
    for slug in ("live", "paused", "closing", "leaving"):
        make_project(ctx, world, slug)
    short = _researcher(ctx, world, "short", accredited_days=10)
    gone = _researcher(ctx, world, "gone", accredited_days=300)
    for email in (short, gone):
        members.add_member(
            ctx, world.admin, project="live", email=email, role="researcher",
            expires_on=ctx.today() + timedelta(days=300),
        )  # fmt: skip
    running = [
        RunningServer("researcher", slug) for slug in ("live", "paused", "closing", "leaving")
    ] + [RunningServer("short", "live"), RunningServer("gone", "live")]
    before = len(audit.records(ctx.engine))
    assert servers_to_stop(running, decisions_for(ctx, running)) == []

    projects.suspend_project(ctx, world.admin, "paused", "ethics review")
    projects.close_project(ctx, world.admin, "closing", "study ended")
    members.remove_member(
        ctx, world.admin, project="leaving", email=world.researcher, role="researcher",
        reason="moved on",
    )  # fmt: skip
    people.set_active(ctx, world.admin, gone, active=False, reason="left")
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    clock.advance(days=11)  # short's accreditation has run out; everyone else's holds
    changes = len(audit.records(ctx.engine)) - before

    stops = servers_to_stop(running, decisions_for(ctx, running))
    assert [(str(s.server), s.rule, s.actor) for s in stops] == [
        ("researcher/paused", "project_state", world.researcher),
        ("researcher/closing", "project_state", world.researcher),
        ("researcher/leaving", "membership", world.researcher),
        ("short/live", "accreditation", short),
        ("gone/live", "inactive", gone),
    ]
    # the admin's four changes are audited; the two rounds of checks added nothing
    assert len(audit.records(ctx.engine)) - before == changes == 4
    assert audit.records(ctx.engine, action="start_session") == []


def test_servers_the_control_plane_does_not_know_are_refused(ctx: Context, world: World) -> None:
    make_project(ctx, world, "live")
    running = [
        RunningServer("nobody-here", "live"),
        RunningServer("researcher", "gamma"),
        RunningServer("researcher", ""),  # the default server belongs to no project
    ]
    stops = servers_to_stop(running, decisions_for(ctx, running))
    assert [(s.rule, s.actor) for s in stops] == [
        ("unknown_user", "nobody-here"),
        ("unknown_project", world.researcher),
        ("unknown_project", world.researcher),
    ]


# --- the hub's configuration -------------------------------------------------------------------


def test_the_hub_runs_the_enforcer_as_a_service_with_the_least_scopes(tmp_path: Path) -> None:
    c = Config()
    settings = Settings(data_dir=tmp_path, hub_api_token="t" * 40)
    configure(c, settings, HubOptions(run_dir=tmp_path / "run", enforce_interval=15))
    service = {s["name"]: s for s in c.JupyterHub.services}[ENFORCER]
    assert service["command"][1:] == ["-m", "enclave.hub.enforcer", "--interval=15"]
    assert service["environment"] == {
        "ENCLAVE_DATA_DIR": str(tmp_path),
        "ENCLAVE_DATABASE_URL": settings.database_url,
    }
    assert "api_token" not in service and "url" not in service  # the hub makes its token
    role = {r["name"]: r for r in c.JupyterHub.load_roles}[ENFORCER]
    assert role["services"] == [ENFORCER]
    assert sorted(role["scopes"]) == sorted(ENFORCER_SCOPES)
    assert set(ENFORCER_SCOPES) == {"list:users", "read:servers", "delete:servers"}


def test_the_enforcement_interval_is_read_from_the_environment_and_must_be_positive(
    tmp_path: Path,
) -> None:
    assert HubOptions().enforce_interval == 60
    assert HubOptions.load({"ENCLAVE_HUB_ENFORCE_INTERVAL": "5"}).enforce_interval == 5
    with pytest.raises(SettingsError, match="ENCLAVE_HUB_ENFORCE_INTERVAL"):
        HubOptions.load({"ENCLAVE_HUB_ENFORCE_INTERVAL": "soon"})
    for interval in (0, -1):
        with pytest.raises(SettingsError, match="must be a positive number"):
            configure(Config(), Settings(data_dir=tmp_path), HubOptions(enforce_interval=interval))


# --- the command line -------------------------------------------------------------------------


def test_the_command_line_refuses_to_run_without_a_token_url_or_interval(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_URL", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["--once", "--url", "http://127.0.0.1:1/hub/api"])
    assert exited.value.code == 2 and "JUPYTERHUB_API_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t" * 32)
    for argv, error in (
        (["--once"], "--url or JUPYTERHUB_API_URL"),
        (["--url", "http://127.0.0.1:1/hub/api", "--interval", "0"], "must be positive"),
        (["--once", "--url", "ftp://hub/api"], "http, https or http+unix"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2 and error in capsys.readouterr().err
    with pytest.raises(ValueError, match="http, https or http\\+unix"):
        HubApi("hub.example.org/hub/api", "t")


def test_an_unreachable_hub_fails_the_pass_and_stops_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "db").mkdir()
    upgrade(make_engine(Settings(data_dir=tmp_path).database_url))
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t" * 32)
    missing = "http+unix://" + str(tmp_path / "hub.sock").replace("/", "%2F") + "/hub/api"
    with caplog.at_level(logging.ERROR, logger="enclave.hub.enforcer"):
        assert main(["--once", "--url", missing]) == 2
    assert "enforcement pass failed (IntegrationError: cannot reach JupyterHub" in caplog.text
    assert audit.records(make_engine(Settings(data_dir=tmp_path).database_url)) == []
