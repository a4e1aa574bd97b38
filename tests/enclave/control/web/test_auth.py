"""Login with password and TOTP, the session it starts, logout, lockout, headers and the
secret key."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from enclave.control.context import Context
from enclave.control.service import login_guard, people
from enclave.control.web import create_app
from enclave.settings import Settings, SettingsError
from tests.enclave.control.factories import FakeClock, World, audit_tail
from tests.enclave.control.web.conftest import PASSWORD, Web

FAILED = "invalid credentials"


def logged_in(client: FlaskClient) -> bool:
    return client.get("/admin/").status_code == 200


def test_login_with_password_and_current_code(web: Web, client: FlaskClient, world: World) -> None:
    assert not logged_in(client)
    response = web.login(world.admin, next="/admin/projects")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/projects"
    assert logged_in(client)
    assert world.admin in web.page("/admin/")
    assert audit_tail(web.ctx) == [("login", "ok", "")]


@pytest.mark.parametrize("problem", ["wrong code", "stale code", "wrong password", "no account"])
def test_failed_login_says_only_invalid_credentials(
    web: Web, client: FlaskClient, world: World, clock: FakeClock, problem: str
) -> None:
    email, password = world.admin, PASSWORD
    code = web.code(email)
    if problem == "wrong code":
        code = f"{(int(code) + 1) % 1_000_000:06d}"
    elif problem == "stale code":  # two minutes old once login() moves the clock on
        code = pyotp.TOTP(web.enrol(email)).at(clock.now - timedelta(seconds=90))
    elif problem == "wrong password":
        password = "not the password at all"
    else:
        email = "stranger@example.org"
    response = web.login(email, password=password, code=code)
    page = response.get_data(as_text=True)
    assert response.status_code == 401
    assert FAILED in page
    for leak in ("TOTP", "password is", "unknown", "no person"):
        assert leak not in page
    assert not logged_in(client)
    assert audit_tail(web.ctx) == [("login", "refused", "")]


def test_a_code_works_only_once(web: Web, client: FlaskClient, world: World) -> None:
    code = web.code(world.admin)
    web.clock.advance(seconds=-30)  # login() moves the clock on; stay in the same step
    assert web.login(world.admin, code=code).status_code == 303
    client.post("/logout", data={"csrf_token": web.csrf()})
    web.clock.advance(seconds=-30)
    response = web.login(world.admin, code=code)
    assert response.status_code == 401 and FAILED in response.get_data(as_text=True)


def test_login_without_totp_enrolled_fails(web: Web, ctx: Context, world: World) -> None:
    people.set_password(ctx, world.admin, world.researcher, PASSWORD)
    web.secrets[world.researcher] = pyotp.random_base32()  # a secret the server never had
    assert web.login(world.researcher).status_code == 401


def test_repeated_failures_lock_the_email_out(
    web: Web, client: FlaskClient, world: World, clock: FakeClock
) -> None:
    for _ in range(login_guard.MAX_FAILURES):
        assert web.login(world.admin, password="wrong wrong wrong").status_code == 401
    response = web.login(world.admin)  # now even the right credentials are refused
    assert response.status_code == 401 and FAILED in response.get_data(as_text=True)
    assert audit_tail(web.ctx)[0][:2] == ("login", "refused")
    assert not logged_in(client)
    clock.advance(minutes=16)
    assert web.login(world.admin).status_code == 303


def test_session_cookie_flags(web: Web, world: World) -> None:
    response = web.login(world.admin)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("enclave_session=")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax"):
        assert flag in cookie


def test_login_starts_a_fresh_session(web: Web, client: FlaskClient, world: World) -> None:
    """The pre-login session (and its CSRF token) is dropped: a fixed session is useless."""
    before = web.csrf()
    web.login_as("admin")
    response = client.post("/logout", data={"csrf_token": before})
    assert response.status_code == 400, "the old session's CSRF token must not work"
    assert logged_in(client)
    assert web.csrf() != before


def test_logout(web: Web, client: FlaskClient) -> None:
    web.login_as("admin")
    response = web.post("/logout")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert not logged_in(client)


def test_a_copied_cookie_is_worthless_after_logout(web: Web, client: FlaskClient) -> None:
    web.login_as("admin")
    name = client.application.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(name)
    assert cookie is not None
    stolen = client.application.test_client()  # the attacker replays the cookie elsewhere
    stolen.set_cookie(name, cookie.value, domain=cookie.domain)
    assert stolen.get("/admin/").status_code == 200
    web.post("/logout")
    assert stolen.get("/admin/").status_code != 200
    assert audit_tail(web.ctx)[-1][0] == "logout"


def test_logout_is_post_only(web: Web, client: FlaskClient) -> None:
    web.login_as("admin")
    assert client.get("/logout").status_code == 405
    assert logged_in(client)


def test_suspending_an_account_ends_its_session(
    web: Web, client: FlaskClient, ctx: Context, world: World
) -> None:
    web.login_as("data_custodian")
    assert logged_in(client)
    people.set_active(ctx, world.admin, world.custodian, active=False, reason="incident")
    assert client.get("/admin/").headers["Location"].startswith("/login")


def test_sessions_expire(web: Web, client: FlaskClient, clock: FakeClock) -> None:
    web.login_as("admin")
    clock.advance(hours=8, minutes=1)
    assert not logged_in(client)


def test_no_open_redirect_after_login(web: Web, client: FlaskClient, world: World) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"):
        response = web.login(world.admin, next=target)
        assert response.status_code == 303
        assert response.headers["Location"] == "/admin/", target


def test_security_headers(client: FlaskClient) -> None:
    for url in ("/login", "/register", "/register.json", "/api/openapi.json", "/admin/"):
        headers = client.get(url).headers
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_pages_load_nothing_from_other_sites(client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_refuses_to_start_without_a_secret_key(ctx: Context, database_url: str) -> None:
    for key in ("", "too short"):
        settings = Settings(data_dir=ctx.data_dir, database_url=database_url, secret_key=key)
        with pytest.raises(SettingsError, match="ENCLAVE_SECRET_KEY"):
            create_app(settings, context=ctx)
    assert isinstance(
        create_app(Settings(database_url=database_url), context=ctx, testing=True), Flask
    )
