"""CSRF: a form POST without the session's token is refused before any view runs, and
changes nothing, even for a logged-in admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from enclave.control.context import Context
from enclave.control.service import projects
from tests.enclave.control.factories import World, counts, propose
from tests.enclave.control.web.conftest import Web


def project_form(ctx: Context) -> dict[str, str]:
    return {
        "slug": "forged",
        "title": "Forged",
        "lay_summary": "L",
        "public_benefit": "P",
        "organisation": "O",
        "purpose": "health_research",
        "start_date": str(ctx.today()),
        "end_date": str(ctx.today() + timedelta(days=30)),
    }


@pytest.mark.parametrize("token", [None, "", "forged-token", "other-session"])
def test_forged_form_posts_are_refused(
    web: Web, client: FlaskClient, ctx: Context, world: World, token: str | None
) -> None:
    if token == "other-session":
        # A valid token, but from another browser's session.
        other = client.application.test_client()
        token = Web(other, ctx, world, web.clock).csrf()
    web.login_as("admin")
    before = counts(ctx)
    data = project_form(ctx) if token is None else {**project_form(ctx), "csrf_token": token}
    response = client.post("/admin/projects", data=data)
    assert response.status_code == 400
    assert "did not come from this site" in response.get_data(as_text=True)
    assert counts(ctx) == before


def test_a_state_change_needs_the_token(
    web: Web, client: FlaskClient, ctx: Context, world: World
) -> None:
    propose(ctx, world, "study")
    web.login_as("admin")
    assert client.post("/admin/projects/study/approve").status_code == 400
    assert projects.get_project(ctx, world.admin, "study").state == "proposed"
    assert web.post("/admin/projects/study/approve").status_code == 303  # the control
    assert projects.get_project(ctx, world.admin, "study").state == "approved"


def test_login_form_needs_the_token(web: Web, client: FlaskClient, world: World) -> None:
    """Login CSRF: another site must not log a browser in to an account of its choosing."""
    data = {"email": world.admin, "password": "x" * 20, "code": web.code(world.admin)}
    assert client.post("/login", data=data).status_code == 400
