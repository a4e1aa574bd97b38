"""Fixtures of the queue's web tests: the app over the queue test world (SQLite; a test may
ask for every backend with ``@pytest.mark.parametrize("database_url", BACKENDS,
indirect=True)``), a test client, ``web`` (real logins with password and TOTP, forms with
their CSRF token), ``as_person`` (a session for someone, without the login round trip, for
the big matrices) and ``bearer`` (API tokens)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from enclave.control.context import Context
from enclave.control.service import people, tokens
from enclave.settings import Settings
from output_checker.queue.filetypes import Limits
from output_checker.queue.web import create_app
from output_checker.queue.web.state import QueueOptions
from tests.enclave.control.dbfixtures import temporary_database
from tests.enclave.control.factories import FakeClock
from tests.enclave.control.mfa import fresh_code
from tests.enclave.control.web.conftest import (  # noqa: F401 - fixtures re-used as they are
    SECRET_KEY,
    Web,
    cheap_password_hashing,
)
from tests.output_checker.queue.factories import QueueWorld

# Small enough to test the limits with small files, big enough for the test world's outputs.
LIMITS = Limits(max_file_bytes=64 * 1024, max_manifest_bytes=256 * 1024)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temporary_database(getattr(request, "param", "sqlite"), tmp_path) as url:
        yield url


@pytest.fixture
def options() -> QueueOptions:
    return QueueOptions(limits=LIMITS)


@pytest.fixture
def app(ctx: Context, database_url: str, options: QueueOptions) -> Flask:
    settings = Settings(data_dir=ctx.data_dir, database_url=database_url, secret_key=SECRET_KEY)
    return create_app(settings, context=ctx, testing=True, options=options)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def web(client: FlaskClient, ctx: Context, qw: QueueWorld, clock: FakeClock) -> Web:
    return Web(client, ctx, qw, clock)  # type: ignore[arg-type] - QueueWorld has by_role/admin


AsPerson = Callable[[FlaskClient, str], None]


@pytest.fixture
def as_person(ctx: Context, qw: QueueWorld) -> AsPerson:
    """Make ``client``'s session that of ``email`` (as a login would), or anonymous for ""."""

    def log_in(client: FlaskClient, email: str) -> None:
        with client.session_transaction() as session:
            session.clear()
            if email:
                person = people.get_person(ctx, qw.admin, email)
                session.update(uid=person.uuid, at=ctx.now().timestamp(), sid=f"test-{email}")

    return log_in


@pytest.fixture
def bearer(ctx: Context, qw: QueueWorld) -> Callable[[str], dict[str, str]]:
    """The Authorization header of a fresh API token for ``email``."""
    issued: dict[str, str] = {}

    def header(email: str) -> dict[str, str]:
        if email not in issued:
            code = fresh_code(ctx, qw.admin)  # reviewers' tokens need the admin's MFA
            issued[email] = tokens.issue_token(ctx, qw.admin, email, label="test", totp=code).token
        return {"Authorization": f"Bearer {issued[email]}"}

    return header
