"""The session policy: the control plane decides, the policy adds directories, limits and tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.control.service import projects
from enclave.hub.policy import Limits, SessionPolicy
from enclave.hub.spawner import SessionSpawner
from tests.enclave.control.factories import World, make_project, make_world


@pytest.fixture
def world(ctx: Context) -> World:
    world = make_world(ctx)
    make_project(ctx, world, "alpha", "active")
    return world


def test_an_allowed_session_gets_its_projects_zones_and_limits(ctx: Context, world: World) -> None:
    limits = Limits(memory_bytes=2 * 1024**3, cpus=0.5, pids=100)
    policy = SessionPolicy(ctx, tier="3", limits=limits, project_limits={"beta": Limits()})
    decision = policy.decide("researcher", "alpha")
    project = ctx.data_dir / "projects" / "alpha"
    assert decision.allowed and decision.rule is None
    assert (decision.data, decision.home, decision.outbox) == (
        project / "data",
        project / "home" / "researcher",
        project / "outbox" / "researcher",
    )
    assert (decision.tier, decision.limits) == ("3", limits)
    assert decision.datasets == (world.dataset,)
    assert decision.email == world.researcher and world.researcher not in repr(decision)
    last = audit.records(ctx.engine)[-1]
    assert (last.action, last.outcome, last.project) == ("start_session", "allowed", "alpha")


def test_project_limits_override_the_tiers(ctx: Context, world: World) -> None:
    big = Limits(memory_bytes=16 * 1024**3, cpus=4, pids=2048)
    decision = SessionPolicy(ctx, project_limits={"alpha": big}).decide("researcher", "alpha")
    assert decision.limits == big


@pytest.mark.parametrize(
    ("username", "project", "rule", "says"),
    [
        ("researcher", "nope", "unknown_project", "there is no such project"),
        ("ghost", "alpha", "unknown_user", "your account is not known"),
        ("checker", "alpha", "role", "does not hold the researcher role"),
        ("researcher", "../alpha", "invalid_name", "there is no such project"),
        ("../researcher", "alpha", "unknown_user", "your account is not known"),
        ("researcher", "Alpha", "invalid_name", "there is no such project"),
    ],
)
def test_refusals_name_the_rule_and_no_person(
    ctx: Context, world: World, username: str, project: str, rule: str, says: str
) -> None:
    decision = SessionPolicy(ctx).decide(username, project)
    assert not decision.allowed and decision.rule == rule
    assert says in decision.message and "@" not in decision.message
    assert decision.data is decision.home is decision.outbox is None


def test_suspension_refuses_the_next_session(ctx: Context, world: World) -> None:
    policy = SessionPolicy(ctx)
    assert policy.decide("researcher", "alpha").allowed
    projects.suspend_project(ctx, world.admin, "alpha", "incident")
    refused = policy.decide("researcher", "alpha")
    assert (refused.allowed, refused.rule) == (False, "project_state")
    assert refused.message == "Cannot start alpha: the project is not active."
    last = audit.records(ctx.engine)[-1]
    assert (last.action, last.outcome, last.detail["rule"]) == (
        "start_session",
        "refused",
        "project_state",
    )


def test_an_unknown_username_is_audited(ctx: Context, world: World) -> None:
    SessionPolicy(ctx).decide("ghost", "alpha")
    last = audit.records(ctx.engine)[-1]
    assert (last.actor, last.outcome, last.detail["rule"]) == ("ghost", "refused", "unknown_user")


@pytest.mark.parametrize("field", ["memory_bytes", "cpus", "pids"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})


def test_the_spawner_enforces_the_installations_standing_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spawner reads the installation's settings: a training requirement configured for
    the enclave is one its session decisions apply (not the defaults' empty one)."""
    url = f"sqlite:///{tmp_path}/control.db"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    monkeypatch.setenv("ENCLAVE_REQUIRED_TRAINING", "safe-researcher")
    spawner = SessionSpawner(enclave_database_url=url, enclave_data_dir=str(tmp_path))
    policy = spawner.policy()
    try:
        assert policy.ctx.policy.required_training == ("safe-researcher",)
        assert policy.ctx.data_dir == tmp_path
    finally:
        policy.ctx.close()
