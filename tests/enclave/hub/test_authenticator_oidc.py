"""The production authenticator: identity from an OpenID Connect provider, everything else from
the control plane. A small provider (authorize, token and userinfo endpoints) runs in a thread
and vouches for whichever username the test chooses; a real JupyterHub runs the OAuth dance
against it."""

from __future__ import annotations

import json
import secrets
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.hub.policy import REFUSALS
from enclave.settings import Settings
from tests.enclave.control.factories import World, make_project, make_world
from tests.enclave.hub.hubprocess_auth import Browser, Hub, enrol, free_port, running_hub

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hub-oidc")]


class Provider(ThreadingHTTPServer):
    """An identity provider that has already authenticated ``user`` (MFA is its business)."""

    user = ""
    codes: dict[str, str]
    tokens: dict[str, str]


class ProviderHandler(BaseHTTPRequestHandler):
    server: Provider

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _json(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/authorize":
            code = secrets.token_hex(8)
            self.server.codes[code] = self.server.user
            target = (
                query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
            )
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
        elif url.path == "/userinfo":
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            self._json({"sub": token[:8], "preferred_username": self.server.tokens[token]})
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if urlparse(self.path).path != "/token" or form.get("code") not in self.server.codes:
            self.send_error(400)
            return
        token = secrets.token_hex(16)
        self.server.tokens[token] = self.server.codes.pop(form["code"])
        self._json({"access_token": token, "token_type": "Bearer", "expires_in": 3600})


@dataclass
class Site:
    hub: Hub
    provider: Provider
    ctx: Context
    world: World


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("hub-oidc")
    settings = Settings(data_dir=root / "data", database_url=f"sqlite:///{root / 'enclave.db'}")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    ctx = Context(engine=engine, data_dir=settings.data_dir)
    world = make_world(ctx)
    make_project(ctx, world, "alpha")
    make_project(ctx, world, "paused", "suspended")
    enrol(ctx, world, "fresh@example.org", accredited=False)
    provider = Provider(("127.0.0.1", 0), ProviderHandler)
    provider.codes, provider.tokens = {}, {}
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    idp = f"http://127.0.0.1:{provider.server_address[1]}"
    ports = (free_port(), free_port(), free_port())
    extra = f"""
c.JupyterHub.authenticator_class = "enclave.hub.authenticator.EnclaveOIDCAuthenticator"
c.EnclaveOIDCAuthenticator.client_id = "hub"
c.EnclaveOIDCAuthenticator.client_secret = "not-a-real-secret"
c.EnclaveOIDCAuthenticator.oauth_callback_url = "http://127.0.0.1:{ports[0]}/hub/oauth_callback"
c.EnclaveOIDCAuthenticator.authorize_url = "{idp}/authorize"
c.EnclaveOIDCAuthenticator.token_url = "{idp}/token"
c.EnclaveOIDCAuthenticator.userdata_url = "{idp}/userinfo"
c.EnclaveOIDCAuthenticator.username_claim = "preferred_username"
"""
    try:
        with running_hub(
            root / "hub", settings, Path(sys.executable), extra_config=extra, ports=ports
        ) as hub:
            yield Site(hub, provider, ctx, world)
    finally:
        provider.shutdown()
        provider.server_close()
        ctx.close()


def _sign_in(site: Site, username: str) -> tuple[Browser, int, str]:
    site.provider.user = username
    browser = Browser(site.hub)
    response = browser.session.get(f"{site.hub.url}/hub/oauth_login", timeout=60)
    return browser, response.status_code, response.text


def test_the_providers_user_gets_in_with_groups_from_the_control_plane(site: Site) -> None:
    browser, status, _ = _sign_in(site, "researcher")
    assert status == 200
    assert site.hub.groups_of("researcher") == ["project-alpha"]
    assert browser.session.get(f"{site.hub.url}/hub/home", timeout=30).status_code == 200
    logins = [
        e.detail.get("method")
        for e in audit.records(site.ctx.engine, action="login")
        if e.actor == site.world.researcher
    ]
    assert logins == ["oidc"]


def test_a_vouched_person_without_accreditation_is_refused_and_told_why(site: Site) -> None:
    browser, status, text = _sign_in(site, "fresh")
    assert status == 403
    assert REFUSALS["accreditation"] in text
    assert "jupyterhub-hub-login" not in browser.session.cookies


def test_a_provider_user_unknown_to_the_enclave_is_refused(site: Site) -> None:
    _, status, text = _sign_in(site, "stranger")
    assert status == 403
    assert "no active account here" in text
    assert site.hub.api("GET", "/users/stranger").status_code == 404
