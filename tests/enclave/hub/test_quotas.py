"""Per-project session quotas (SATRE 2.3.03): an admin sets them, the spawner's decision carries
them, nobody else can, and they never leak into the output checker's parameters."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from enclave.cli import main
from enclave.control import audit
from enclave.control.context import Context
from enclave.control.errors import ControlError, InvalidInput
from enclave.control.quota import parse_memory
from enclave.control.service import access, projects, quotas
from enclave.hub.policy import Limits, SessionPolicy
from tests.enclave.control.factories import World, make_project, make_world

GIB = 1024**3


@pytest.fixture
def world(ctx: Context) -> World:
    world = make_world(ctx)
    make_project(ctx, world, "alpha", "active")
    return world


def test_an_operators_quota_reaches_the_spawners_decision(ctx: Context, world: World) -> None:
    tier = Limits(memory_bytes=4 * GIB, cpus=1.0, pids=512)
    assert SessionPolicy(ctx, limits=tier).decide("researcher", "alpha").limits == tier
    quotas.set_limits(ctx, world.admin, "alpha", memory_bytes=16 * GIB, cpus=4)
    decision = SessionPolicy(ctx, limits=tier).decide("researcher", "alpha")
    # the fields set replace the tier's; the one left unset keeps it
    assert decision.allowed and decision.limits == Limits(16 * GIB, 4.0, 512)
    last = audit.records(ctx.engine, action="set_limits")[-1]
    assert (last.actor, last.outcome, last.project) == (world.admin, "ok", "alpha")
    assert last.detail["after"] == {"memory_bytes": 16 * GIB, "cpus": 4.0}
    quotas.set_limits(ctx, world.admin, "alpha", clear=True)
    assert SessionPolicy(ctx, limits=tier).decide("researcher", "alpha").limits == tier


@pytest.mark.parametrize("role", ["data_custodian", "researcher", "output_checker", "none"])
def test_only_an_admin_can_set_a_quota(ctx: Context, world: World, role: str) -> None:
    with pytest.raises(ControlError) as refused:
        quotas.set_limits(ctx, world.by_role(role), "alpha", memory_bytes=512 * GIB)
    assert refused.value.rule == "role"
    assert quotas.project_quota(ctx, "alpha") == {}
    last = audit.records(ctx.engine)[-1]
    assert (last.action, last.outcome) == ("set_limits", "refused")


@pytest.mark.parametrize(
    "values",
    [
        {"memory_bytes": 0},
        {"memory_bytes": 2 * 1024**4},  # over the 1 TiB cap
        {"cpus": -1.0},
        {"cpus": float("nan")},
        {"pids": 1.5},
        {"pids": True},
        {},  # nothing to set
    ],
)
def test_bad_quotas_are_refused_and_change_nothing(
    ctx: Context, world: World, values: dict[str, float]
) -> None:
    quotas.set_limits(ctx, world.admin, "alpha", pids=100)
    with pytest.raises(InvalidInput) as refused:
        quotas.set_limits(ctx, world.admin, "alpha", **values)  # type: ignore[arg-type]
    assert refused.value.rule == "invalid_quota"
    assert quotas.project_quota(ctx, "alpha") == {"pids": 100}


def test_the_quota_survives_disclosure_changes_and_stays_out_of_the_checker(
    ctx: Context, world: World
) -> None:
    quotas.set_limits(ctx, world.admin, "alpha", pids=64)
    view = projects.set_disclosure(ctx, world.admin, "alpha", {"threshold": 12})
    assert view.disclosure == {"threshold": 12}
    assert projects.project_parameters(view).threshold == 12
    assert quotas.project_quota(ctx, "alpha") == {"pids": 64}
    decision = access.authorize_session(ctx, email=world.researcher, project="alpha")
    assert decision.disclosure == {"threshold": 12}


def test_memory_sizes_parse_in_binary_units() -> None:
    assert [parse_memory(s) for s in ("8G", "512M", "1.5T", "1024")] == [
        8 * GIB,
        512 * 1024**2,
        int(1.5 * 1024**4),
        1024,
    ]


def test_the_cli_sets_a_quota_and_refuses_a_bad_one(
    ctx: Context,
    world: World,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in list(os.environ):
        if name.startswith("ENCLAVE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ENCLAVE_DATABASE_URL", database_url)
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(Path(ctx.data_dir)))
    command = f"admin set-limits --as {world.admin} alpha --memory 8G --cpus 2 --pids 256"
    assert main(shlex.split(command)) == 0
    assert quotas.project_quota(ctx, "alpha") == {"memory_bytes": 8 * GIB, "cpus": 2.0, "pids": 256}
    bad = f"admin set-limits --as {world.admin} alpha --memory lots"
    assert main(shlex.split(bad)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "memory 'lots'" in err and "[invalid_quota]" in err
    researcher = f"admin set-limits --as {world.researcher} alpha --memory 900G"
    assert main(shlex.split(researcher)) == 2
    assert quotas.project_quota(ctx, "alpha")["memory_bytes"] == 8 * GIB
