"""Projects: proposal checks, the state machine, disclosure parameters and the governed close."""

from __future__ import annotations

import tarfile
from datetime import timedelta
from pathlib import Path

import pytest

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.errors import Conflict, ControlError, InvalidInput, RuleViolation
from enclave.control.service import grants, projects
from enclave.control.workspace import workspace_dir
from output_checker.parameters import NKRule, Parameters
from tests.enclave.control.factories import World, audit_tail, counts, make_project, propose


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"start_date": "2026-02-30"}, "invalid_date"),
        ({"start_date": "2026-07-01", "end_date": "2026-06-30"}, "invalid_date"),
        ({"start_date": "2025-01-01", "end_date": "2026-01-01"}, "invalid_date"),
        ({"purpose": "immigration_enforcement"}, "unknown_purpose"),
        ({"slug": "Not A Slug"}, "invalid_slug"),
        ({"title": ""}, "invalid_input"),
        ({"disclosure": {"threshold": 5}}, "disclosure_tighten_only"),
        ({"disclosure": {"no_such_rule": 1}}, "disclosure_tighten_only"),
    ],
)
def test_bad_proposals_are_refused_and_nothing_changes(
    ctx: Context, world: World, change: dict[str, object], rule: str
) -> None:
    values: dict[str, object] = {
        "slug": "p1",
        "title": "T",
        "lay_summary": "L",
        "public_benefit": "B",
        "organisation": "O",
        "purpose": "health_research",
        "start_date": "2026-06-01",
        "end_date": "2027-06-01",
    }
    before = counts(ctx)
    with pytest.raises(ControlError) as error:
        projects.create_project(ctx, world.admin, **{**values, **change})  # type: ignore[arg-type]
    assert error.value.rule == rule
    assert str(error.value) and "\n" not in str(error.value)
    assert counts(ctx) == before


def test_duplicate_slug_is_refused(ctx: Context, world: World) -> None:
    propose(ctx, world, "p1")
    with pytest.raises(Conflict) as error:
        propose(ctx, world, "p1")
    assert error.value.rule == "duplicate_slug"


def test_approval_needs_the_governance_references(ctx: Context, world: World) -> None:
    projects.create_project(
        ctx,
        world.admin,
        slug="bare",
        title="T",
        lay_summary="L",
        public_benefit="B",
        organisation="O",
        purpose="health_research",
        start_date=ctx.today(),
        end_date=ctx.today() + timedelta(days=9),
    )
    with pytest.raises(RuleViolation, match="legal basis, ethics approval reference") as error:
        projects.approve_project(ctx, world.admin, "bare")
    assert error.value.rule == "approval_requirements"
    assert projects.get_project(ctx, world.admin, "bare").state == "proposed"


def test_lifecycle_records_every_transition(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    view = projects.suspend_project(ctx, world.admin, "p1", "incident 12")
    assert view.state == "suspended"
    assert projects.activate_project(ctx, world.admin, "p1").state == "active"
    transitions = [
        (e.detail["before"], e.detail["after"])
        for e in audit.records(ctx.engine, project="p1")
        if "after" in e.detail
    ]
    assert transitions == [
        ("proposed", "approved"),
        ("approved", "active"),
        ("active", "suspended"),
        ("suspended", "active"),
    ]


def test_illegal_transition_names_the_state(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "proposed")
    with pytest.raises(ControlError, match="not allowed while the project is proposed") as error:
        projects.activate_project(ctx, world.admin, "p1")
    assert error.value.rule == "project_state"
    assert audit_tail(ctx) == [("activate_project", "refused", "project_state")]


def test_suspend_needs_a_reason(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    with pytest.raises(InvalidInput, match="reason is required"):
        projects.suspend_project(ctx, world.admin, "p1", " ")


def test_disclosure_may_only_tighten(ctx: Context, world: World) -> None:
    propose(ctx, world, "p1")
    view = projects.set_disclosure(
        ctx, world.admin, "p1", {"threshold": 20, "nk_rules": [[1, 40.0], [2, 80.0]]}
    )
    assert view.disclosure == {"nk_rules": [[1, 40.0], [2, 80.0]], "threshold": 20}
    params = projects.project_parameters(view)
    assert params.threshold == 20 and params.nk_rules == (NKRule(1, 40.0), NKRule(2, 80.0))
    for loosen in ({"threshold": 3}, {"p_percent": 5.0}, {"conventions": "acro"}):
        with pytest.raises(RuleViolation) as error:
            projects.set_disclosure(ctx, world.admin, "p1", loosen)
        assert error.value.rule == "disclosure_tighten_only"
    assert projects.get_project(ctx, world.admin, "p1").disclosure == view.disclosure
    assert projects.project_parameters(propose(ctx, world, "p2")) == Parameters()


def test_close_revokes_archives_and_destroys_the_key(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    make_project(ctx, world, "p1-b", "active", member=False)
    workspace = workspace_dir(ctx.data_dir, "p1")
    (workspace / "home" / "rae").mkdir(parents=True)
    (workspace / "home" / "rae" / "analysis.py").write_text("print(1)\n")
    (workspace / "data").mkdir()
    (workspace / "data" / "extract.parquet").write_bytes(b"microdata")
    keys = ctx.data_dir / "keys"
    keys.mkdir(parents=True)
    for name in ("p1", "p1.key", "p1-b.key"):
        (keys / name).write_text("secret")

    report = projects.close_project(ctx, world.admin, "p1", "study finished")

    assert report.project.state == "closed" and report.project.closed_at is not None
    assert report.grants_revoked == 1 and report.memberships_ended == 1
    assert report.keys_destroyed == ("p1", "p1.key")
    assert (keys / "p1-b.key").exists(), "another project's key must survive"
    assert not workspace.exists()
    assert report.archive and Path(report.archive).is_file()
    with tarfile.open(report.archive) as tar:
        names = tar.getnames()
    assert "p1/home/rae/analysis.py" in names
    assert not any("extract" in n for n in names), "the research extract is deleted"
    assert all(g.state == "revoked" for g in grants.list_grants(ctx, world.admin, project="p1"))
    last = audit.records(ctx.engine)[-1]
    assert last.action == "close_project" and last.detail["keys_destroyed"] == ["p1", "p1.key"]


class FailingDestroyer:
    def destroy(self, project_slug: str) -> list[str]:
        raise OSError("key store unavailable")


def test_failed_key_destruction_leaves_the_project_open(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    broken = Context(ctx.engine, ctx.data_dir, ctx.clock, key_destroyer=FailingDestroyer())
    with pytest.raises(ControlError, match="key store unavailable") as error:
        projects.close_project(broken, world.admin, "p1", "finished")
    assert error.value.rule == "close_hooks"
    assert audit_tail(ctx) == [("close_project", "refused", "close_hooks")]
    assert projects.get_project(ctx, world.admin, "p1").state == "active"
    assert [g.state for g in grants.list_grants(ctx, world.admin, project="p1")] == ["approved"]
    # Retrying with a working hook completes the close.
    assert projects.close_project(ctx, world.admin, "p1", "finished").project.state == "closed"


def test_listing_shows_staff_everything_and_members_their_own(ctx: Context, world: World) -> None:
    make_project(ctx, world, "mine", "active")
    make_project(ctx, world, "theirs", "active", member=False)
    assert [p.slug for p in projects.list_projects(ctx, world.admin)] == ["mine", "theirs"]
    assert [p.slug for p in projects.list_projects(ctx, world.researcher)] == ["mine"]
    assert [p.slug for p in projects.list_projects(ctx, world.admin, state="proposed")] == []
    with pytest.raises(ControlError) as error:
        projects.get_project(ctx, world.researcher, "theirs")
    assert error.value.rule == "unknown_project"
    with pytest.raises(InvalidInput):
        projects.list_projects(ctx, world.admin, state="dormant")
