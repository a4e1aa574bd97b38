"""A dataset's microdata risk policy: set by its custodian or an admin, nobody else, and read
by the extract builder (the defaults until it is set)."""

from __future__ import annotations

import pytest

from enclave.cli import main
from enclave.control.context import Context
from enclave.control.errors import ControlError
from enclave.control.service import people
from enclave.control.service.microdata_policy import microdata_policies, set_microdata_policy
from output_checker.microdata.problem import RiskTarget
from tests.enclave.control.factories import World, audit_tail


def test_the_defaults_hold_until_the_custodian_sets_a_policy(ctx: Context, world: World) -> None:
    assert microdata_policies(ctx, [world.dataset]) == {world.dataset: RiskTarget()}
    set_microdata_policy(ctx, world.custodian, world.dataset, k=10, max_global_risk=1e-5)
    found = microdata_policies(ctx, [world.dataset, world.other_dataset])
    assert found[world.dataset] == RiskTarget(10, 1e-5)
    assert found[world.other_dataset] == RiskTarget()
    assert audit_tail(ctx) == [("set_microdata_policy", "ok", "")]
    set_microdata_policy(ctx, world.admin, world.dataset, k=3, max_global_risk=1e-4)
    assert microdata_policies(ctx, [world.dataset])[world.dataset].k == 3


@pytest.mark.parametrize("role", ["researcher", "output_checker", "datalab_client", "none"])
def test_no_one_else_may_set_it(ctx: Context, world: World, role: str) -> None:
    with pytest.raises(ControlError):
        set_microdata_policy(ctx, world.by_role(role), world.dataset, k=2, max_global_risk=0.5)
    assert microdata_policies(ctx, [world.dataset])[world.dataset] == RiskTarget()
    assert audit_tail(ctx)[0][1] != "ok"


def test_the_custodian_of_another_dataset_may_not_set_it(ctx: Context, world: World) -> None:
    people.create_person(
        ctx,
        world.admin,
        email="keeper@example.org",
        name="Other Keeper",
        organisation="Org",
        roles=["data_custodian"],
    )
    with pytest.raises(ControlError, match="only the custodian"):
        set_microdata_policy(ctx, "keeper@example.org", world.dataset, k=2, max_global_risk=0.5)
    assert audit_tail(ctx) == [("set_microdata_policy", "refused", "custodian_only")]


@pytest.mark.parametrize(("k", "risk"), [(1, 1e-4), (5, 0.0), (5, 1.0)])
def test_an_invalid_policy_is_refused(ctx: Context, world: World, k: int, risk: float) -> None:
    with pytest.raises(ControlError, match="invalid microdata policy"):
        set_microdata_policy(ctx, world.custodian, world.dataset, k=k, max_global_risk=risk)
    assert microdata_policies(ctx, [world.dataset])[world.dataset] == RiskTarget()


def test_the_cli_sets_it(
    ctx: Context, world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENCLAVE_DATABASE_URL", str(ctx.engine.url.render_as_string(False)))
    argv = ["admin", "microdata-policy", world.dataset, "--k", "7", "--as", world.custodian]
    assert main(argv) == 0
    assert capsys.readouterr().out.split() == [world.dataset, "k=7", "max_global_risk=0.0001"]
    assert microdata_policies(ctx, [world.dataset])[world.dataset].k == 7
    assert main([*argv[:3], "--k", "1", "--as", world.custodian]) == 2
    assert "invalid microdata policy" in capsys.readouterr().err
