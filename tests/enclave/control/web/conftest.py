"""Fixtures of the web tests: an app over the control-plane test database (SQLite, and
PostgreSQL when configured), a test client, and ``web``, which logs people in with a real
password and TOTP code and posts forms with their CSRF token."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pyotp
import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from enclave.control import credentials
from enclave.control.context import Context
from enclave.control.service import people
from enclave.control.web import create_app
from enclave.settings import Settings
from tests.enclave.control.factories import FakeClock, World

PASSWORD = "correct horse battery staple"
SECRET_KEY = "test-secret-key-" + "x" * 32
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_settings(ctx: Context, database_url: str) -> Settings:
    return Settings(data_dir=ctx.data_dir, database_url=database_url, secret_key=SECRET_KEY)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with minimal cost: the web tests log in hundreds of times, and the real cost
    (about 0.2 s a hash) is the control-plane tests' business, not theirs."""
    monkeypatch.setattr(
        credentials, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def app(ctx: Context, database_url: str) -> Flask:
    return create_app(make_settings(ctx, database_url), context=ctx, testing=True)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Web:
    """Drives the app as a person with a browser would: log in, read a form's CSRF token,
    post forms. Credentials are set through the service layer on first use."""

    client: FlaskClient
    ctx: Context
    world: World
    clock: FakeClock
    secrets: dict[str, str] = field(default_factory=dict)

    def enrol(self, email: str) -> str:
        """Give ``email`` the test password and a TOTP secret (once); return the secret."""
        if email not in self.secrets:
            people.set_password(self.ctx, self.world.admin, email, PASSWORD)
            self.secrets[email] = people.enrol_totp(self.ctx, self.world.admin, email).secret
        return self.secrets[email]

    def code(self, email: str) -> str:
        """The TOTP code of ``email`` at the clock's time."""
        return pyotp.TOTP(self.enrol(email)).at(self.clock.now)

    def csrf(self, page: str = "/login") -> str:
        """The CSRF token in the forms of ``page``."""
        response = self.client.get(page)
        match = CSRF_FIELD.search(response.get_data(as_text=True))
        assert match, f"no CSRF token on {page} ({response.status_code})"
        return match.group(1)

    def login(
        self, email: str, *, password: str = PASSWORD, code: str | None = None, **extra: str
    ) -> TestResponse:
        """Post the login form; the clock moves on a TOTP step first (codes work once)."""
        self.clock.advance(seconds=30)
        data = {
            "email": email,
            "password": password,
            "code": self.code(email) if code is None else code,
            "csrf_token": self.csrf(),
            **extra,
        }
        return self.client.post("/login", data=data)

    def login_as(self, role: str) -> str:
        """Log in the world's person of ``role``; return their email."""
        email = self.world.by_role(role)
        response = self.login(email)
        assert response.status_code == 303, response.get_data(as_text=True)
        return email

    def post(self, url: str, data: dict[str, Any] | None = None) -> TestResponse:
        """Post a form with a valid CSRF token."""
        return self.client.post(url, data={**(data or {}), "csrf_token": self.csrf()})

    def page(self, url: str) -> str:
        """GET ``url``, following redirects; the page's text."""
        response = self.client.get(url, follow_redirects=True)
        return response.get_data(as_text=True)


@pytest.fixture
def web(client: FlaskClient, ctx: Context, world: World, clock: FakeClock) -> Web:
    return Web(client, ctx, world, clock)
