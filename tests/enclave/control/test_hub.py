"""Hub group mirroring against a fake JupyterHub REST API that records each call."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.control.context import Context
from enclave.control.errors import IntegrationError
from enclave.control.hub import RestHubClient, desired_groups, reconcile, sync_hub
from enclave.control.service import members, people, projects
from enclave.settings import Settings
from tests.enclave.control.factories import World, audit_tail, make_project
from tests.enclave.control.fakehub import TOKEN, fake_hub


def test_desired_groups_follow_active_projects(ctx: Context, world: World) -> None:
    make_project(ctx, world, "live", "active")
    make_project(ctx, world, "paused", "suspended")
    make_project(ctx, world, "pending", "approved")
    assert desired_groups(ctx) == {"project-live": frozenset({"researcher"})}


def test_reconcile_creates_fixes_and_deletes_groups(ctx: Context, world: World) -> None:
    make_project(ctx, world, "live", "active")
    make_project(ctx, world, "later", "active", member=False)
    with fake_hub() as (url, hub):
        hub.groups = {"project-gone": {"old"}, "project-live": {"stranger"}, "staff": {"x"}}
        hub.users = {"old", "stranger", "x"}
        report = reconcile(ctx, RestHubClient(url, TOKEN))
        assert hub.groups == {
            "project-live": {"researcher"},
            "project-later": set(),
            "staff": {"x"},
        }
        assert report.created_groups == ("project-later",)
        assert report.deleted_groups == ("project-gone",)
        assert report.created_users == ("researcher",)
        assert report.added == {"project-live": ("researcher",)}
        assert report.removed == {"project-live": ("stranger",)}
        assert ("POST", "/hub/api/users", {"usernames": ["researcher"]}) in hub.calls
        assert audit_tail(ctx) == [("sync_hub", "ok", "")]

        hub.calls.clear()
        again = reconcile(ctx, RestHubClient(url, TOKEN))
        assert not again.changed and hub.writes() == [], "a second run changes nothing"


def test_suspension_empties_the_hub_group(ctx: Context, world: World) -> None:
    make_project(ctx, world, "live", "active")
    with fake_hub() as (url, hub):
        client = RestHubClient(url, TOKEN)
        reconcile(ctx, client)
        assert hub.groups == {"project-live": {"researcher"}}
        projects.suspend_project(ctx, world.admin, "live", "incident")
        reconcile(ctx, client)
        assert hub.groups == {}
        projects.activate_project(ctx, world.admin, "live")
        people.set_active(ctx, world.admin, world.researcher, active=False, reason="left")
        reconcile(ctx, client)
        assert hub.groups == {"project-live": set()}


def test_sync_runs_only_when_a_hub_is_configured(
    ctx: Context, world: World, tmp_path: Path
) -> None:
    make_project(ctx, world, "live", "active")
    assert sync_hub(ctx, Settings(data_dir=tmp_path)) is None
    with fake_hub() as (url, hub):
        report = sync_hub(ctx, Settings(data_dir=tmp_path, hub_url=url, hub_api_token=TOKEN))
        assert report is not None and report.created_groups == ("project-live",)
        assert hub.groups == {"project-live": {"researcher"}}
        members.remove_member(
            ctx, world.admin, project="live", email=world.researcher, role="researcher", reason="x"
        )
        sync_hub(ctx, Settings(data_dir=tmp_path, hub_url=url, hub_api_token=TOKEN))
        assert hub.groups == {"project-live": set()}


def test_hub_errors_are_control_errors(ctx: Context, world: World) -> None:
    make_project(ctx, world, "live", "active")
    with fake_hub() as (url, _hub), pytest.raises(IntegrationError, match="HTTP 403"):
        reconcile(ctx, RestHubClient(url, "wrong-token"))
    with pytest.raises(IntegrationError, match="cannot reach JupyterHub"):
        reconcile(ctx, RestHubClient("http://127.0.0.1:9/hub/api", TOKEN, timeout=2))
