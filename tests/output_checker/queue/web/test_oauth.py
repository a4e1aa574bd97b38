"""Login through JupyterHub's OAuth with PKCE, against a fake provider that binds codes to
the PKCE challenge as the hub does, and the adapter over ``HubOAuth`` against a stand-in with
its interface. The real hub's integration test belongs to the JupyterHub work."""

from __future__ import annotations

import base64
import hashlib
import secrets
import sys
import types
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask.testing import FlaskClient

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.errors import AuthenticationFailed, IntegrationError
from enclave.control.service import people
from enclave.settings import Settings, SettingsError
from output_checker.queue.web import create_app
from output_checker.queue.web.oauth import HubOAuthClient, configured, pkce_pair
from output_checker.queue.web.state import QueueOptions
from tests.enclave.control.web.conftest import PASSWORD, SECRET_KEY, Web
from tests.output_checker.queue.factories import QueueWorld
from tests.output_checker.queue.web.conftest import LIMITS, AsPerson


@dataclass
class FakeHub:
    """A provider that behaves like JupyterHub's: codes are single-use and bound to the PKCE
    challenge of the authorisation request; tokens name a user."""

    grants: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> challenge, user
    tokens: dict[str, str] = field(default_factory=dict)
    challenges: list[str] = field(default_factory=list)

    def authorize_url(self, *, state: str, code_challenge: str) -> str:
        self.challenges.append(code_challenge)
        query = {"state": state, "code_challenge": code_challenge, "code_challenge_method": "S256"}
        return f"https://hub.invalid/hub/api/oauth2/authorize?{urlencode(query)}"

    def approve(self, location: str, user: str) -> str:
        """The hub after the user logged in there: the callback URL with a code."""
        query = parse_qs(urlsplit(location).query)
        assert query["code_challenge_method"] == ["S256"]
        code = secrets.token_urlsafe(8)
        self.grants[code] = (query["code_challenge"][0], user)
        return f"/oauth_callback?{urlencode({'code': code, 'state': query['state'][0]})}"

    def token_for_code(self, code: str, *, code_verifier: str) -> str:
        challenge, user = self.grants.pop(code, ("", ""))
        digest = hashlib.sha256(code_verifier.encode()).digest()
        if not challenge or base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
            raise AuthenticationFailed("invalid_grant", rule="oauth")
        token = secrets.token_urlsafe(8)
        self.tokens[token] = user
        return token

    def username_for_token(self, token: str) -> str | None:
        return self.tokens.get(token)


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub()


@pytest.fixture
def options(hub: FakeHub) -> QueueOptions:
    return QueueOptions(limits=LIMITS, oauth=hub)


def _username(ctx: Context, qw: QueueWorld, email: str) -> str:
    return people.get_person(ctx, qw.admin, email).username


def test_hub_login_with_pkce(
    client: FlaskClient, hub: FakeHub, ctx: Context, qw: QueueWorld
) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert "Log in with JupyterHub" in page and 'name="password"' not in page
    start = client.get("/oauth/login?next=/requests?status=submitted")
    assert start.status_code == 303
    callback = hub.approve(start.headers["Location"], _username(ctx, qw, qw.checker_a))
    done = client.get(callback)
    assert done.status_code == 303 and done.headers["Location"] == "/requests?status=submitted"
    assert qw.checker_a in client.get("/requests").get_data(as_text=True)
    logins = [e for e in audit.records(ctx.engine) if e.action == "login" and e.outcome == "ok"]
    assert logins[-1].actor == qw.checker_a and logins[-1].detail["method"] == "hub_oauth"
    assert client.get(callback).status_code == 401  # the state and the code are spent


def test_hub_login_refuses_a_forged_state_a_stolen_code_and_unknown_users(
    app: Any, client: FlaskClient, hub: FakeHub, ctx: Context, qw: QueueWorld
) -> None:
    user = _username(ctx, qw, qw.author)
    for forge in (lambda state: "x" + state, lambda state: "é", lambda state: ""):
        callback = hub.approve(client.get("/oauth/login").headers["Location"], user)
        query = parse_qs(urlsplit(callback).query)
        forged = {"code": query["code"][0], "state": forge(query["state"][0])}
        assert client.get(f"/oauth_callback?{urlencode(forged)}").status_code == 401
    assert client.get("/requests").status_code == 302  # not logged in
    # A code stolen from this login cannot be used from another browser: no matching state,
    # and its own state carries another PKCE verifier.
    victim = app.test_client()
    stolen = hub.approve(victim.get("/oauth/login").headers["Location"], user)
    attacker = app.test_client()
    mine = attacker.get("/oauth/login")
    code = parse_qs(urlsplit(stolen).query)["code"][0]
    state = parse_qs(urlsplit(mine.headers["Location"]).query)["state"][0]
    assert attacker.get(f"/oauth_callback?code={code}&state={state}").status_code == 401
    assert attacker.get("/requests").status_code == 302
    stranger = hub.approve(client.get("/oauth/login").headers["Location"], "not-a-person")
    assert client.get(stranger).status_code == 401
    refused = [e for e in audit.records(ctx.engine) if e.action == "login"]
    assert refused[-1].outcome == "refused" and refused[-1].detail["method"] == "hub_oauth"


def test_local_login_is_off_when_the_hub_logs_people_in(
    web: Web, qw: QueueWorld, as_person: AsPerson
) -> None:
    as_person(web.client, qw.collaborator)  # only to get a valid CSRF token from a page
    web.enrol(qw.author)
    data = {"email": qw.author, "password": PASSWORD, "code": web.code(qw.author)}
    response = web.client.post("/login", data={**data, "csrf_token": web.csrf("/requests")})
    assert response.status_code == 404


def test_pkce_pair_is_rfc_7636_s256() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pkce_pair()[0] != verifier


class StubHubOAuth:
    """Stands in for jupyterhub.services.auth.HubOAuth (its attributes and calls)."""

    oauth_client_id = "service-queue"
    oauth_redirect_uri = "https://enclave.invalid/services/queue/oauth_callback"
    oauth_authorization_url = "https://enclave.invalid/hub/api/oauth2/authorize"

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.calls: list[tuple[str, Any]] = []

    def token_for_code(self, code: str, *, code_verifier: str | None = None) -> str:
        self.calls.append(("token", (code, code_verifier)))
        if code == "bad":
            raise RuntimeError("HTTP 400")
        return "tok"

    def user_for_token(self, token: str, use_cache: bool = True) -> dict[str, Any] | None:
        self.calls.append(("user", (token, use_cache)))
        return {"name": "rae"} if token == "tok" else None


def test_the_hub_adapter_speaks_huboauth(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("jupyterhub.services.auth")
    module.HubOAuth = StubHubOAuth  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "jupyterhub.services.auth", module)
    assert configured({}) is None
    client = configured({"JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_CLIENT_ID": "service-queue"})
    assert isinstance(client, HubOAuthClient) and client.hub_auth.config == {"pkce_enabled": True}
    url = urlsplit(client.authorize_url(state="s1", code_challenge="c1"))
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == StubHubOAuth.oauth_authorization_url
    assert query == {
        "client_id": ["service-queue"],
        "redirect_uri": [StubHubOAuth.oauth_redirect_uri],
        "response_type": ["code"],
        "state": ["s1"],
        "code_challenge": ["c1"],
        "code_challenge_method": ["S256"],
    }
    assert client.token_for_code("good", code_verifier="v") == "tok"
    assert client.hub_auth.calls[-1] == ("token", ("good", "v"))
    with pytest.raises(IntegrationError):
        client.token_for_code("bad", code_verifier="v")
    assert client.username_for_token("tok") == "rae"
    assert client.username_for_token("other") is None


def test_hub_configuration_without_jupyterhub_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, ctx: Context, database_url: str
) -> None:
    monkeypatch.setitem(sys.modules, "jupyterhub.services.auth", None)  # as if not installed
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t")
    monkeypatch.setenv("JUPYTERHUB_CLIENT_ID", "service-queue")
    settings = Settings(data_dir=ctx.data_dir, database_url=database_url, secret_key=SECRET_KEY)
    with pytest.raises(SettingsError, match="jupyterhub package is not installed"):
        create_app(settings, context=ctx, testing=True)
