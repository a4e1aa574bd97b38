"""The public transparency register shows approved work only, and no personal data."""

from __future__ import annotations

from enclave.control.context import Context
from enclave.control.service import access, grants, register
from tests.enclave.control.factories import World, make_project, propose


def test_register_lists_only_projects_that_were_approved(ctx: Context, world: World) -> None:
    propose(ctx, world, "secret-proposal")
    make_project(ctx, world, "turned-down", "rejected")
    make_project(ctx, world, "running", "active")
    make_project(ctx, world, "approved-only", "approved", grant="requested")
    make_project(ctx, world, "paused", "suspended")
    make_project(ctx, world, "finished", "closed")
    entries = {e.slug: e for e in register.transparency_register(ctx)}
    assert set(entries) == {"running", "approved-only", "paused", "finished"}
    assert entries["running"].status == "active"
    assert [d.name for d in entries["running"].datasets] == ["Hospital Episode Statistics"]
    assert entries["approved-only"].datasets == (), "a request not yet approved is not use"
    assert [d.source_agency for d in entries["finished"].datasets] == ["Health Agency"]


def test_register_counts_releases_and_holds_no_personal_data(ctx: Context, world: World) -> None:
    make_project(ctx, world, "running", "active")
    access.release_output(ctx, world.checker, "running", request_id="r1", files=["t.csv"])
    (entry,) = register.transparency_register(ctx)
    assert entry.outputs_released == 1
    text = str(entry.to_dict()) + str(register.csv_row(entry))
    for personal in (world.researcher, world.admin, world.custodian, "Rae", "ETH-1", "DSA-1"):
        assert personal not in text
    assert "age_band" not in text, "variable lists stay internal"
    row = register.csv_row(entry)
    assert row["datasets"] == "Hospital Episode Statistics (Health Agency)"
    assert list(row) == list(register.CSV_COLUMNS)


def test_rejected_grant_is_not_listed_as_used(ctx: Context, world: World) -> None:
    make_project(ctx, world, "running", "active", grant="requested")
    pending = grants.list_grants(ctx, world.admin, project="running")[0]
    grants.reject_grant(ctx, world.custodian, pending.uuid, "no")
    (entry,) = register.transparency_register(ctx)
    assert entry.datasets == ()
