"""Deny by default: every route not explicitly public refuses an anonymous request, and the
public ones are exactly the expected few. Parametrised over the app's URL map, so a new route
is covered without anyone adding it here.

The gate refuses before any database access, so these run against one SQLite database per
module (and worker), with a client logged in once, to keep ~100 cases fast."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.control.web import create_app
from enclave.control.web.security import access_of
from enclave.settings import Settings
from tests.enclave.control.factories import FakeClock, counts, make_world
from tests.enclave.control.web.conftest import Web, make_settings

PUBLIC = {
    "static",
    "auth.login_form",
    "auth.login",
    "register.home",
    "register.page",
    "register.as_json",
    "register.as_csv",
    "api.openapi_document",
}


def _url_map_app() -> Flask:
    # Only the URL map is read: the engine is never connected.
    engine = make_engine("sqlite://")
    context = Context(engine=engine, data_dir=Path("/nonexistent"))
    return create_app(Settings(), context=context, testing=True)


def _requests() -> list[tuple[str, str, str]]:
    app = _url_map_app()
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule, rule.endpoint))
    return found


def _url(app: Flask, method: str, rule: str, endpoint: str) -> str:
    """A concrete URL for ``rule`` with made-up values for its arguments."""
    (found,) = [r for r in app.url_map.iter_rules(endpoint) if r.rule == rule]
    values = {
        name: str(uuid.uuid4()) if f"<uuid:{name}>" in rule else "x" for name in found.arguments
    }
    return app.url_map.bind("localhost").build(endpoint, values, method=method)


REQUESTS = _requests()


@dataclass(frozen=True)
class Site:
    app: Flask
    ctx: Context
    web: Web


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("routes")
    url = f"sqlite:///{tmp / 'enclave.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    clock = FakeClock()
    ctx = Context(engine=engine, data_dir=tmp / "data", clock=clock)
    app = create_app(make_settings(ctx, url), context=ctx, testing=True)
    yield Site(app, ctx, Web(app.test_client(), ctx, make_world(ctx), clock))
    ctx.close()


def test_the_public_endpoints_are_exactly_the_expected_ones() -> None:
    app = _url_map_app()
    public = {endpoint for _m, _r, endpoint in REQUESTS if access_of(app, endpoint) == "public"}
    assert public == PUBLIC


@pytest.mark.parametrize(
    ("method", "rule", "endpoint"),
    [r for r in REQUESTS if r[2] not in PUBLIC],
    ids=[f"{m} {r}" for m, r, e in REQUESTS if e not in PUBLIC],
)
def test_anonymous_requests_are_refused(site: Site, method: str, rule: str, endpoint: str) -> None:
    before = counts(site.ctx)
    client = site.app.test_client()
    url = _url(site.app, method, rule, endpoint)
    response = client.open(url, method=method, data={"reason": "x"})
    if endpoint.startswith("api."):
        assert response.status_code == 401
        assert response.json == {"error": "a bearer token is required", "rule": "token_missing"}
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    else:
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
    assert counts(site.ctx) == before


@pytest.mark.parametrize(
    ("method", "rule", "endpoint"),
    [(m, r, e) for m, r, e in REQUESTS if e.startswith("api.") and e not in PUBLIC],
    ids=[f"{m} {r}" for m, r, e in REQUESTS if e.startswith("api.") and e not in PUBLIC],
)
def test_the_api_ignores_a_logged_in_session_cookie(
    site: Site, method: str, rule: str, endpoint: str
) -> None:
    """The API is exempt from CSRF, so a cookie must never authenticate it."""
    if site.web.client.get("/admin/").status_code != 200:
        site.web.login_as("admin")
    assert site.web.client.get("/admin/").status_code == 200
    url = _url(site.app, method, rule, endpoint)
    response = site.web.client.open(url, method=method, json={})
    assert response.status_code == 401


def test_public_pages_need_no_login(client: FlaskClient) -> None:
    for url in ("/register", "/register.json", "/register.csv", "/login", "/api/openapi.json"):
        assert client.get(url).status_code == 200, url
    assert client.get("/").headers["Location"] == "/register"


def test_a_login_redirect_remembers_the_page(client: FlaskClient) -> None:
    response = client.get("/admin/projects?state=active")
    assert response.headers["Location"] == "/login?next=/admin/projects?state%3Dactive"
