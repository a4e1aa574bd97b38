"""MFA for privileged access (SATRE 3.2.04), tested by attempting the attacks: nobody logs in
without a TOTP code (an admin, custodian or reviewer without one is told to ask an admin), and
a token of a privileged person needs the requester's fresh, unused code and lives at most 12
hours; a researcher's tokens are as before."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pyotp
import pytest
from flask import Flask
from sqlalchemy import Engine

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import upgrade as upgrade_control
from enclave.control.errors import AuthenticationFailed, ControlError
from enclave.control.service import login_guard, people, tokens
from enclave.control.views import IssuedToken
from enclave.control.web import create_app as control_app
from enclave.settings import Settings
from output_checker.queue.db import upgrade as upgrade_queue
from output_checker.queue.web import create_app as queue_app
from output_checker.queue.web.state import QueueOptions
from tests.enclave.control.factories import FakeClock, World, audit_tail
from tests.enclave.control.mfa import fresh_code
from tests.enclave.control.web.conftest import (  # noqa: F401 - fixture re-used as it is
    PASSWORD,
    SECRET_KEY,
    Web,
    cheap_password_hashing,
)

PRIVILEGED = ("admin", "output_checker", "data_custodian")


@pytest.fixture
def schemas() -> tuple[Callable[[Engine], None], ...]:
    """The queue's tables too: its web app is one of the logins under test."""
    return (upgrade_control, upgrade_queue)


def _app(face: str, ctx: Context, database_url: str) -> Flask:
    settings = Settings(data_dir=ctx.data_dir, database_url=database_url, secret_key=SECRET_KEY)
    if face == "queue":
        return queue_app(settings, context=ctx, testing=True, options=QueueOptions())
    return control_app(settings, context=ctx, testing=True)


def _last(ctx: Context) -> audit.AuditRecord:
    return audit.records(ctx.engine)[-1]


# -- login -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [*PRIVILEGED, "researcher"])
def test_nobody_logs_in_on_a_password_alone(ctx: Context, world: World, role: str) -> None:
    """Login already required TOTP of everyone; the privileged roles are proven here, with
    the researcher for contrast. The person with the right password is told what to do."""
    email = world.by_role(role)
    people.set_password(ctx, world.admin, email, PASSWORD)
    with pytest.raises(AuthenticationFailed) as refused:
        login_guard.login(ctx, email, PASSWORD, "123456")
    assert refused.value.rule == "mfa_not_enrolled"
    assert "ask an admin to enrol one" in refused.value.message
    last = _last(ctx)
    assert (last.action, last.outcome, last.detail["reason"]) == (
        "login",
        "refused",
        "no TOTP enrolled",
    )
    with pytest.raises(AuthenticationFailed) as guessed:  # a wrong password learns nothing
        login_guard.login(ctx, email, "not the password at all", "123456")
    assert guessed.value.rule == "login" and "enrol" not in guessed.value.message


@pytest.mark.parametrize("face", ["control", "queue"])
@pytest.mark.parametrize("role", PRIVILEGED)
def test_a_privileged_person_without_totp_cannot_log_in_on_the_web(
    ctx: Context, world: World, clock: FakeClock, database_url: str, face: str, role: str
) -> None:
    """The control plane's admin web and the queue's review web (its local login form): the
    refusal says to ask an admin; once enrolled, the same person logs in."""
    web = Web(_app(face, ctx, database_url).test_client(), ctx, world, clock)
    email = world.by_role(role)
    people.set_password(ctx, world.admin, email, PASSWORD)
    form = {"email": email, "password": PASSWORD, "code": "123456", "csrf_token": web.csrf()}
    response = web.client.post("/login", data=form)
    assert response.status_code == 401
    assert "ask an admin to enrol one" in response.get_data(as_text=True)
    assert web.client.get("/login").status_code == 200  # still anonymous

    web.enrol(email)
    assert web.login(email).status_code == 303


def test_a_reviewer_without_totp_cannot_log_in_to_the_queue_even_with_a_guessed_code(
    ctx: Context, world: World, clock: FakeClock, database_url: str
) -> None:
    client = _app("queue", ctx, database_url).test_client()
    web = Web(client, ctx, world, clock)
    people.set_password(ctx, world.admin, world.checker, PASSWORD)
    for code in ("000000", "123456", ""):
        form = {"email": world.checker, "password": PASSWORD, "code": code}
        response = client.post("/login", data={**form, "csrf_token": web.csrf()})
        assert response.status_code == 401
    with client.session_transaction() as session:
        assert "uid" not in session


# -- tokens of privileged people -------------------------------------------------------------


def _issue(ctx: Context, actor: str, email: str, **options: object) -> IssuedToken:
    return tokens.issue_token(ctx, actor, email, label="ci", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [None, "", "000000"])
def test_an_admin_token_needs_a_right_code(ctx: Context, world: World, code: str | None) -> None:
    secret = people.enrol_totp(ctx, world.admin, world.admin).secret
    if code == "000000" and pyotp.TOTP(secret).at(ctx.now()) == code:
        code = "111111"  # one chance in a million that the wrong code is the right one
    with pytest.raises(AuthenticationFailed) as refused:
        _issue(ctx, world.admin, world.admin, totp=code)
    assert refused.value.rule == ("mfa_failed" if code else "mfa_required")
    last = _last(ctx)
    assert (last.action, last.outcome, last.detail["rule"]) == (
        "issue_token",
        "refused",
        refused.value.rule,
    )
    assert tokens.list_tokens(ctx, world.admin) == []


def test_codes_guessed_for_tokens_count_toward_the_login_lockout(
    ctx: Context, world: World
) -> None:
    """The attack: guess authenticator codes through token requests instead of the login
    form. Each wrong code counts; after five the right code gets neither a token nor a login."""
    people.set_password(ctx, world.admin, world.admin, PASSWORD)
    secret = people.enrol_totp(ctx, world.admin, world.admin).secret
    right = pyotp.TOTP(secret).at(ctx.now())
    wrong = [f"{n:06d}" for n in range(1, 7) if f"{n:06d}" != right][: login_guard.MAX_FAILURES]
    for code in wrong:
        with pytest.raises(AuthenticationFailed, match="wrong or was used"):
            _issue(ctx, world.admin, world.admin, totp=code)
    assert login_guard.recent_failures(ctx, world.admin) == login_guard.MAX_FAILURES
    with pytest.raises(AuthenticationFailed) as locked:
        _issue(ctx, world.admin, world.admin, totp=right)
    assert locked.value.rule == "login_locked"
    assert audit_tail(ctx) == [("issue_token", "refused", "")]  # recorded as locked out
    with pytest.raises(AuthenticationFailed) as login:
        login_guard.login(ctx, world.admin, PASSWORD, right)
    assert login.value.rule == "login_locked"
    assert tokens.list_tokens(ctx, world.admin) == []


def test_the_code_of_the_login_cannot_be_replayed_for_a_token(
    ctx: Context, world: World, clock: FakeClock
) -> None:
    people.set_password(ctx, world.admin, world.admin, PASSWORD)
    secret = people.enrol_totp(ctx, world.admin, world.admin).secret
    code = pyotp.TOTP(secret).at(ctx.now())
    login_guard.login(ctx, world.admin, PASSWORD, code)
    with pytest.raises(AuthenticationFailed) as replayed:
        _issue(ctx, world.admin, world.admin, totp=code)
    assert replayed.value.rule == "mfa_failed"

    clock.advance(seconds=30)
    fresh = pyotp.TOTP(secret).at(ctx.now())
    issued = _issue(ctx, world.admin, world.admin, totp=fresh)
    assert tokens.verify_token(ctx, issued.token).email == world.admin
    last = _last(ctx)
    assert (last.action, last.detail["mfa"], last.detail["privileged"]) == (
        "issue_token",
        "totp",
        True,
    )
    with pytest.raises(AuthenticationFailed) as again:  # a token's code works once too
        _issue(ctx, world.admin, world.admin, totp=fresh)
    assert again.value.rule == "mfa_failed"


def test_an_admin_without_totp_gets_no_privileged_token(ctx: Context, world: World) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        _issue(ctx, world.admin, world.checker, totp="123456")
    assert refused.value.rule == "mfa_not_enrolled"
    assert "ask an admin" in refused.value.message


def test_the_code_is_the_requesters_not_the_token_owners(ctx: Context, world: World) -> None:
    """An admin issuing a reviewer's token proves their own second factor: a code of the
    reviewer's (which an admin can enrol at will) proves nothing about the admin."""
    fresh_code(ctx, world.admin)  # the admin is enrolled
    checker_code = fresh_code(ctx, world.checker)
    with pytest.raises(AuthenticationFailed) as refused:
        _issue(ctx, world.admin, world.checker, totp=checker_code)
    assert refused.value.rule == "mfa_failed"
    issued = _issue(ctx, world.admin, world.checker, totp=fresh_code(ctx, world.admin))
    assert tokens.verify_token(ctx, issued.token).email == world.checker


def test_a_30_day_admin_token_is_refused_and_the_default_is_capped(
    ctx: Context, world: World
) -> None:
    """Refused, not quietly shortened: the requester learns the bound. Without a lifetime
    asked for, the settings' 30 days are capped to 12 hours."""
    with pytest.raises(ControlError) as refused:
        _issue(
            ctx,
            world.admin,
            world.admin,
            lifetime=timedelta(days=30),
            totp=fresh_code(ctx, world.admin),
        )
    assert refused.value.rule == "privileged_token_lifetime"
    assert tokens.list_tokens(ctx, world.admin) == []
    assert ctx.token_lifetime == timedelta(days=30)
    for role in PRIVILEGED:
        issued = _issue(ctx, world.admin, world.by_role(role), totp=fresh_code(ctx, world.admin))
        assert issued.info.expires_at - issued.info.created_at == timedelta(hours=12)
    hours = _issue(
        ctx,
        world.admin,
        world.admin,
        lifetime=timedelta(hours=2),
        totp=fresh_code(ctx, world.admin),
    )
    assert hours.info.expires_at - hours.info.created_at == timedelta(hours=2)


def test_a_researchers_token_flow_is_unchanged(ctx: Context, world: World) -> None:
    mine = _issue(ctx, world.researcher, world.researcher)
    assert mine.info.expires_at - mine.info.created_at == ctx.token_lifetime
    assert _last(ctx).detail["mfa"] == "none"
    long = _issue(ctx, world.admin, world.researcher, lifetime=timedelta(days=90))
    assert long.info.expires_at - long.info.created_at == timedelta(days=90)
    assert tokens.verify_token(ctx, long.token).email == world.researcher
    assert audit_tail(ctx)[0][:2] == ("issue_token", "ok")


def test_a_long_lived_token_dies_when_its_owner_becomes_privileged(
    ctx: Context, world: World
) -> None:
    """Otherwise a researcher's year-long token would carry admin powers after promotion."""
    issued = _issue(ctx, world.admin, world.researcher, lifetime=timedelta(days=30))
    assert tokens.verify_token(ctx, issued.token).email == world.researcher
    people.set_roles(ctx, world.admin, world.researcher, ["researcher", "admin"])
    with pytest.raises(AuthenticationFailed):
        tokens.verify_token(ctx, issued.token)
    last = _last(ctx)
    assert (last.action, last.detail["reason"]) == (
        "token_auth",
        "long-lived token of a privileged person",
    )
