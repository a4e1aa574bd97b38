"""Membership changes made on the web are mirrored to JupyterHub groups when a hub is
configured; an unreachable hub leaves the change standing and says so."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from enclave.control.context import Context
from enclave.control.service import projects, tokens
from enclave.control.web import create_app
from enclave.settings import Settings
from tests.enclave.control.factories import FakeClock, World, make_project
from tests.enclave.control.fakehub import TOKEN, fake_hub
from tests.enclave.control.mfa import fresh_code
from tests.enclave.control.web.conftest import SECRET_KEY, Web


def hub_app(ctx: Context, database_url: str, hub_url: str) -> Flask:
    settings = Settings(
        data_dir=ctx.data_dir,
        database_url=database_url,
        secret_key=SECRET_KEY,
        hub_url=hub_url,
        hub_api_token=TOKEN,
    )
    return create_app(settings, context=ctx, testing=True)


def test_admin_pages_mirror_memberships(
    ctx: Context, world: World, clock: FakeClock, database_url: str
) -> None:
    make_project(ctx, world, "beds", "approved", member=False, grant=None)
    with fake_hub() as (url, hub):
        app = hub_app(ctx, database_url, url)
        web = Web(app.test_client(), ctx, world, clock)
        web.login_as("admin")
        web.post("/admin/projects/beds/activate")
        assert hub.groups == {"project-beds": set()}
        form = {"email": world.researcher, "role": "researcher", "expires_on": "2026-12-31"}
        assert web.post("/admin/projects/beds/members", form).status_code == 303
        assert hub.groups == {"project-beds": {"researcher"}}
        web.post("/admin/projects/beds/suspend", {"reason": "incident"})
        assert hub.groups == {}


def test_unreachable_hub_warns_and_the_change_stands(
    ctx: Context, world: World, clock: FakeClock, database_url: str
) -> None:
    make_project(ctx, world, "beds", "approved", member=False, grant=None)
    app = hub_app(ctx, database_url, "http://127.0.0.1:9/hub/api")
    web = Web(app.test_client(), ctx, world, clock)
    web.login_as("admin")
    page = web.page(web.post("/admin/projects/beds/activate").headers["Location"])
    assert "JupyterHub not updated yet" in page
    assert projects.get_project(ctx, world.admin, "beds").state == "active"

    client: FlaskClient = app.test_client()
    code = fresh_code(ctx, world.admin)
    token = tokens.issue_token(ctx, world.admin, world.admin, label="ci", totp=code).token
    response = client.post(
        "/api/projects/beds/suspend",
        json={"reason": "incident"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200 and response.json["state"] == "suspended"
    assert "JupyterHub not updated yet" in response.headers["Warning"]
