"""Changes of a project's principal investigator or a dataset's custodian (SATRE 1.4.01-02,
1.6.04): admins only, audited with the old and new person, refused for a person without the
role, raising exactly one ``governance_change`` alert per change, and flagged on the
project or dataset until an admin reviews that alert. Also the CLI, and migration 0006
down and up again on a populated database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import current_revision, downgrade, make_engine, upgrade
from enclave.control.errors import ControlError
from enclave.control.service import alerts, datasets, grants, people, projects
from tests.enclave.control.factories import (
    FakeClock,
    World,
    audit_tail,
    counts,
    make_project,
    make_world,
    propose,
)
from tests.enclave.test_cli_admin import (  # noqa: F401 - env is a fixture
    ADMIN,
    CUSTODIAN,
    RESEARCHER,
    env,
    ok,
    provision,
    refused,
)

SECOND_RESEARCHER = "res2@example.org"
SECOND_CUSTODIAN = "cus2@example.org"


def _more_people(ctx: Context, world: World) -> None:
    people.create_person(
        ctx,
        world.admin,
        email=SECOND_RESEARCHER,
        name="R2",
        organisation="Org",
        roles=["researcher"],
    )
    people.create_person(
        ctx,
        world.admin,
        email=SECOND_CUSTODIAN,
        name="C2",
        organisation="Org",
        roles=["data_custodian"],
    )


def _open_governance_alerts(ctx: Context, world: World) -> list[alerts.AlertView]:
    return [a for a in alerts.list_alerts(ctx, world.admin) if a.kind == "governance_change"]


def test_pi_is_set_at_creation_changed_by_an_admin_and_audited(ctx: Context, world: World) -> None:
    _more_people(ctx, world)
    created = propose(ctx, world, "study")
    assert created.pi_email is None
    with_pi = propose(ctx, world, "led", pi=world.researcher)
    assert with_pi.pi_email == world.researcher
    assert audit.records(ctx.engine, action="create_project")[-1].detail["pi"] == world.researcher
    assert not with_pi.flagged_for_review  # naming the first PI at creation is no change

    changed = projects.set_project_pi(ctx, world.admin, "led", SECOND_RESEARCHER, "PI retired")
    assert changed.pi_email == SECOND_RESEARCHER
    assert projects.get_project(ctx, world.admin, "led").pi_email == SECOND_RESEARCHER
    event = audit.records(ctx.engine, action="set_project_pi")[-1]
    assert (event.actor, event.outcome, event.target, event.project) == (
        world.admin,
        "ok",
        "led",
        "led",
    )
    assert event.detail == {
        "before": world.researcher,
        "after": SECOND_RESEARCHER,
        "reason": "PI retired",
    }
    assert audit.verify(ctx.engine).ok


@pytest.mark.parametrize("who", ["custodian", "researcher", "checker", "nobody"])
def test_only_an_admin_changes_a_pi_or_a_custodian(ctx: Context, world: World, who: str) -> None:
    _more_people(ctx, world)
    propose(ctx, world, "study")
    actor = getattr(world, who)
    before = counts(ctx)
    with pytest.raises(ControlError) as refused_pi:
        projects.set_project_pi(ctx, actor, "study", world.researcher, "take over")
    assert refused_pi.value.rule == "role"
    assert audit_tail(ctx) == [("set_project_pi", "refused", "role")]
    with pytest.raises(ControlError) as refused_custody:
        datasets.transfer_custody(ctx, actor, world.dataset, SECOND_CUSTODIAN, "take over")
    assert refused_custody.value.rule == "role"
    assert audit_tail(ctx) == [("transfer_custody", "refused", "role")]
    assert counts(ctx) == before
    assert projects.get_project(ctx, world.admin, "study").pi_email is None
    kept = datasets.get_dataset(ctx, world.admin, world.dataset)
    assert kept.custodian_email == world.custodian and not kept.flagged_for_review


def test_a_pi_must_be_a_researcher_and_a_custodian_must_hold_the_role(
    ctx: Context, world: World
) -> None:
    _more_people(ctx, world)
    propose(ctx, world, "study")
    before = counts(ctx)
    for email in (world.custodian, world.checker, world.nobody):
        with pytest.raises(ControlError) as refused_pi:
            projects.set_project_pi(ctx, world.admin, "study", email, "new PI")
        assert refused_pi.value.rule == "role_required"
        assert audit_tail(ctx) == [("set_project_pi", "refused", "role_required")]
    with pytest.raises(ControlError) as at_creation:
        propose(ctx, world, "other", pi=world.checker)
    assert at_creation.value.rule == "role_required"
    for email in (world.researcher, world.admin, world.nobody):
        with pytest.raises(ControlError) as refused_custody:
            datasets.transfer_custody(ctx, world.admin, world.dataset, email, "new custodian")
        assert refused_custody.value.rule == "role_required"
        assert audit_tail(ctx) == [("transfer_custody", "refused", "role_required")]
    with pytest.raises(ControlError) as same:
        datasets.transfer_custody(ctx, world.admin, world.dataset, world.custodian, "again")
    assert same.value.rule == "no_change"
    assert counts(ctx) == before


def test_custody_moves_to_the_new_custodian_and_is_audited(ctx: Context, world: World) -> None:
    _more_people(ctx, world)
    moved = datasets.transfer_custody(
        ctx, world.admin, world.dataset, SECOND_CUSTODIAN, "custodian moved agency"
    )
    assert moved.custodian_email == SECOND_CUSTODIAN
    listed = {d.slug: d for d in datasets.list_datasets(ctx, world.admin)}
    assert listed[world.dataset].custodian_email == SECOND_CUSTODIAN
    assert listed[world.other_dataset].custodian_email == world.custodian
    event = audit.records(ctx.engine, action="transfer_custody")[-1]
    assert (event.actor, event.outcome, event.target) == (world.admin, "ok", world.dataset)
    assert event.detail == {
        "dataset": world.dataset,
        "before": world.custodian,
        "after": SECOND_CUSTODIAN,
        "reason": "custodian moved agency",
    }
    # the new custodian now decides on the dataset's grants; the old one no longer does
    make_project(ctx, world, "study", "approved", grant="requested")
    grant = audit.records(ctx.engine, action="request_grant")[-1].target
    with pytest.raises(ControlError):
        grants.approve_grant(ctx, world.custodian, grant)
    assert grants.approve_grant(ctx, SECOND_CUSTODIAN, grant).state == "approved"


def test_each_change_raises_one_alert_and_stays_flagged_until_reviewed(
    ctx: Context, world: World
) -> None:
    _more_people(ctx, world)
    propose(ctx, world, "study")
    propose(ctx, world, "calm")
    alerts.scan(ctx)  # the setup's events: nothing of this kind
    assert _open_governance_alerts(ctx, world) == []

    changed = projects.set_project_pi(ctx, world.admin, "study", world.researcher, "named")
    moved = datasets.transfer_custody(ctx, world.admin, world.dataset, SECOND_CUSTODIAN, "moved")
    # flagged from the moment of the change, before any scan
    assert changed.flagged_for_review and moved.flagged_for_review
    assert projects.get_project(ctx, world.admin, "study").flagged_for_review

    report = alerts.scan(ctx)
    raised = sorted((a.kind, a.subject) for a in report.raised)
    assert raised == [
        ("governance_change", f"dataset:{world.dataset}"),
        ("governance_change", "project:study"),
    ]
    by_subject = {a.subject: a for a in report.raised}
    assert by_subject["project:study"].detail["before"] is None
    assert by_subject["project:study"].detail["after"] == world.researcher
    assert by_subject[f"dataset:{world.dataset}"].detail["before"] == world.custodian
    assert by_subject[f"dataset:{world.dataset}"].detail["after"] == SECOND_CUSTODIAN
    assert "reason" not in by_subject["project:study"].detail  # no free text in alerts
    assert alerts.scan(ctx).raised == ()  # scanning again raises nothing twice
    assert len(_open_governance_alerts(ctx, world)) == 2

    flags = {p.slug: p.flagged_for_review for p in projects.list_projects(ctx, world.admin)}
    assert flags == {"study": True, "calm": False}
    sets = {d.slug: d.flagged_for_review for d in datasets.list_datasets(ctx, world.researcher)}
    assert sets == {world.dataset: True, world.other_dataset: False}

    alerts.review_alert(
        ctx, world.admin, by_subject["project:study"].uuid, "benign", "checked the PI's letter"
    )
    assert not projects.get_project(ctx, world.admin, "study").flagged_for_review
    assert datasets.get_dataset(ctx, world.admin, world.dataset).flagged_for_review
    alerts.review_alert(
        ctx, world.admin, by_subject[f"dataset:{world.dataset}"].uuid, "benign", "agreed"
    )
    assert not datasets.get_dataset(ctx, world.admin, world.dataset).flagged_for_review
    assert _open_governance_alerts(ctx, world) == []

    # a second change is a second alert, and flags the project again until reviewed
    projects.set_project_pi(ctx, world.admin, "study", SECOND_RESEARCHER, "handover")
    again = alerts.scan(ctx)
    assert [(a.kind, a.subject) for a in again.raised] == [("governance_change", "project:study")]
    assert again.raised[0].detail["before"] == world.researcher
    assert projects.get_project(ctx, world.admin, "study").flagged_for_review
    # refusals are not changes: they raise nothing of this kind
    with pytest.raises(ControlError):
        projects.set_project_pi(ctx, world.admin, "study", SECOND_RESEARCHER, "same again")
    assert alerts.scan(ctx).raised == ()


def test_cli_set_pi_and_transfer_custody(
    env: Path,  # noqa: F811 - the fixture
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    provision(capsys, tmp_path)
    a = f"--as {ADMIN}"
    ok(
        capsys,
        f"admin create-person {a} --email {SECOND_CUSTODIAN} --name C2 --organisation O "
        "--role data_custodian",
    )
    refused(capsys, "role", f"admin set-pi --as {CUSTODIAN} beds {RESEARCHER} --reason r")
    refused(capsys, "role_required", f"admin set-pi {a} beds {CUSTODIAN} --reason r")
    assert ok(capsys, f"admin set-pi {a} beds {RESEARCHER} --reason 'named'") == (
        f"principal investigator\tbeds\t{RESEARCHER}\tflagged for review\n"
    )
    refused(capsys, "role_required", f"admin transfer-custody {a} hes {RESEARCHER} --reason moved")
    assert ok(capsys, f"admin transfer-custody {a} hes {SECOND_CUSTODIAN} --reason moved") == (
        f"custodian\thes\t{SECOND_CUSTODIAN}\tflagged for review\n"
    )
    scanned = ok(capsys, f"admin scan-alerts {a}").splitlines()
    assert sorted(line.split("\t")[1:3] for line in scanned if line.startswith("alert")) == [
        ["governance_change", "dataset:hes"],
        ["governance_change", "project:beds"],
    ]
    listed = ok(capsys, f"admin list-projects {a}").splitlines()
    assert listed[0].split("\t")[-2:] == ["pi", "flagged_for_review"]
    assert listed[1].split("\t")[-2:] == [RESEARCHER, "True"]
    for line in scanned:
        if line.startswith("alert"):
            ok(capsys, f"admin review-alert {a} {line.split(chr(9))[3]} --outcome benign --note ok")
    listed = ok(capsys, f"admin list-projects {a}").splitlines()
    assert listed[1].split("\t")[-1] == "False"
    assert ok(capsys, f"admin list-datasets {a}").splitlines()[1].endswith("\tFalse")


def test_migration_0006_downgrades_and_upgrades_a_populated_database(
    database_url: str, tmp_path: Path
) -> None:
    """Down to 0005 and up again with a project (with a PI, a member and a grant referring
    to it) in place: the rows survive, the column goes and comes back."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        ctx = Context(engine=engine, data_dir=tmp_path / "data", clock=FakeClock())
        world = make_world(ctx)
        make_project(ctx, world, "study", "active", grant="approved")
        projects.set_project_pi(ctx, world.admin, "study", world.researcher, "named")
        before = counts(ctx)
        downgrade(engine, "0005")
        assert current_revision(engine) == "0005"
        assert "pi_id" not in {c["name"] for c in inspect(engine).get_columns("projects")}
        upgrade(engine)
        assert "pi_id" in {c["name"] for c in inspect(engine).get_columns("projects")}
        assert counts(ctx) == before
        view = projects.get_project(ctx, world.admin, "study")
        assert (view.state, view.pi_email) == ("active", None)  # the PI went with the column
        assert audit.verify(ctx.engine).ok
    finally:
        engine.dispose()
