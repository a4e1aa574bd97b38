"""The enclave's JupyterHub authenticator: the control plane's rules at login, refresh and spawn.

The first tests ask ``enclave.hub.access`` directly (every database backend). The rest run a
real JupyterHub 6 in a subprocess and log in through its login form with a password and a TOTP
code, as a browser would; the control plane's database is shared with the hub, so a change
made here (a suspended project, a removed membership) is what the hub sees next.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from traitlets import TraitError

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from enclave.control.service import members, people, projects
from enclave.control.service.login_guard import LOCKED_REASON, MAX_FAILURES
from enclave.hub.access import (
    NO_PROJECT,
    NO_SERVER_NAME,
    email_for_login,
    hub_access,
    session_decision,
    spawn_refusal,
)
from enclave.hub.authenticator import EnclaveAuthenticator
from enclave.hub.policy import REFUSALS
from enclave.settings import Settings
from tests.enclave.control.factories import FakeClock, World, make_project, make_world
from tests.enclave.hub.hubprocess_auth import (
    PASSWORD,
    Browser,
    Hub,
    enrol,
    login_error,
    running_hub,
    totp_code,
)

# --- the shared access questions, without a hub ---------------------------------------------


def test_groups_are_the_control_planes_active_projects(ctx: Context, world: World) -> None:
    make_project(ctx, world, "live")
    make_project(ctx, world, "second")
    make_project(ctx, world, "paused", "suspended")
    make_project(ctx, world, "pending", "approved")
    access = hub_access(ctx, "researcher")
    assert access.allowed
    assert access.groups == ("project-live", "project-second")


def test_hub_access_refusals_say_why_without_naming_anyone(ctx: Context, world: World) -> None:
    make_project(ctx, world, "live")
    assert hub_access(ctx, "nobody-here").rule == "unknown_user"
    enrol(ctx, world, "fresh@example.org", accredited=False)
    unaccredited = hub_access(ctx, "fresh")
    assert (unaccredited.rule, unaccredited.refusal) == (
        "accreditation",
        REFUSALS["accreditation"],
    )
    enrol(ctx, world, "idle@example.org")
    assert (hub_access(ctx, "idle").rule, hub_access(ctx, "idle").refusal) == (
        "no_project",
        NO_PROJECT,
    )
    people.set_active(ctx, world.admin, world.researcher, active=False, reason="left")
    suspended = hub_access(ctx, "researcher")
    assert (suspended.rule, suspended.groups) == ("inactive", ())
    for access in (unaccredited, suspended):
        assert "@" not in (access.refusal or "")


def test_an_output_checker_logs_in_without_a_project_but_starts_no_server(
    ctx: Context, world: World
) -> None:
    make_project(ctx, world, "live")
    checker = hub_access(ctx, "checker")
    assert checker.allowed and checker.groups == ()  # to reach the review queue
    refused = session_decision(ctx, "checker", "live")
    assert not refused.allowed and refused.rule
    people.set_active(ctx, world.admin, world.checker, active=False, reason="left")
    assert hub_access(ctx, "checker").rule == "inactive"


def test_expired_accreditation_removes_every_group(ctx: Context, world: World) -> None:
    make_project(ctx, world, "live")
    assert hub_access(ctx, "researcher").allowed
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    clock.advance(days=401)  # the world's accreditation runs out after 400 days
    access = hub_access(ctx, "researcher")
    assert (access.allowed, access.rule, access.groups) == (False, "accreditation", ())


def test_a_login_is_an_email_or_a_username(ctx: Context, world: World) -> None:
    assert email_for_login(ctx, "Researcher") == world.researcher
    assert email_for_login(ctx, " researcher@example.org ") == "researcher@example.org"
    assert email_for_login(ctx, "nobody-here") == "nobody-here"


def test_spawn_refusal_gives_the_reason_and_is_audited(ctx: Context, world: World) -> None:
    make_project(ctx, world, "live")
    make_project(ctx, world, "paused", "suspended")
    assert spawn_refusal(ctx, "researcher", "live") is None
    assert (
        spawn_refusal(ctx, "researcher", "paused")
        == "Cannot start paused: the project is not active."
    )
    assert spawn_refusal(ctx, "researcher", "") == f"Cannot start: {NO_SERVER_NAME}."
    events = [e for e in audit.records(ctx.engine) if e.action == "start_session"]
    assert [(e.project, e.outcome) for e in events] == [("live", "allowed"), ("paused", "refused")]


@pytest.mark.parametrize(
    ("trait", "value"),
    [("allow_all", True), ("manage_groups", False), ("auth_refresh_age", 0)],
)
def test_the_gate_cannot_be_configured_open(trait: str, value: object) -> None:
    with pytest.raises(TraitError):
        EnclaveAuthenticator(**{trait: value})


def test_defaults_follow_the_spec() -> None:
    auth = EnclaveAuthenticator()
    assert (auth.allow_all, auth.manage_groups, auth.refresh_pre_spawn) == (False, True, True)
    assert auth.auth_refresh_age > 0 and auth.request_otp


# --- a real hub -------------------------------------------------------------------------------


@dataclass
class Site:
    hub: Hub
    ctx: Context
    world: World
    secrets: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("hub-auth")
    settings = Settings(data_dir=root / "data", database_url=f"sqlite:///{root / 'enclave.db'}")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    ctx = Context(engine=engine, data_dir=settings.data_dir)  # the real clock, as the hub's
    world = make_world(ctx)
    for slug in ("alpha", "beta"):
        make_project(ctx, world, slug)
    make_project(ctx, world, "dormant", "approved")
    make_project(ctx, world, "paused", "suspended")
    for slug in ("gamma", "delta", "epsilon"):
        make_project(ctx, world, slug, member=False)
    secrets = {
        "researcher": enrol(ctx, world, world.researcher),
        "locked": enrol(ctx, world, "locked@example.org", projects_=("alpha",)),
        "fresh": enrol(ctx, world, "fresh@example.org", accredited=False),
        "sam": enrol(ctx, world, "sam@example.org", projects_=("gamma", "delta")),
        "lee": enrol(ctx, world, "lee@example.org", projects_=("epsilon",)),
    }
    with running_hub(root / "hub", settings, Path(sys.executable)) as hub:
        yield Site(hub, ctx, world, secrets)
    ctx.close()


def _login_events(ctx: Context, email: str) -> list[tuple[str, str]]:
    return [
        (e.outcome, str(e.detail.get("reason") or ""))
        for e in audit.records(ctx.engine)
        if e.action == "login" and e.actor == email
    ]


def _wrong(secret: str) -> str:
    valid = {totp_code(secret, step) for step in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in valid)


@pytest.mark.slow
@pytest.mark.xdist_group("hub-auth")
def test_right_credentials_get_in_with_the_projects_as_groups(site: Site) -> None:
    browser = Browser(site.hub)
    code = totp_code(site.secrets["researcher"])
    response = browser.login("researcher", PASSWORD, code)
    assert response.status_code == 302
    assert site.hub.groups_of("researcher") == ["project-alpha", "project-beta"]
    home = browser.session.get(f"{site.hub.url}/hub/home", timeout=30)
    assert home.status_code == 200 and "researcher" in home.text
    # the same code again (a replay) is refused; the next step's code, with the email, works
    assert Browser(site.hub).login("researcher", PASSWORD, code).status_code == 403
    by_email = Browser(site.hub).login(
        site.world.researcher, PASSWORD, totp_code(site.secrets["researcher"], 1)
    )
    assert by_email.status_code == 302
    # the default server belongs to no project
    refused = browser.hub_api("POST", "/users/researcher/server")
    assert refused.status_code == 403
    assert refused.json()["message"] == f"Cannot start: {NO_SERVER_NAME}."


@pytest.mark.slow
@pytest.mark.xdist_group("hub-auth")
def test_a_wrong_totp_code_is_refused(site: Site) -> None:
    browser = Browser(site.hub)
    response = browser.login("researcher", PASSWORD, _wrong(site.secrets["researcher"]))
    assert response.status_code == 403
    assert login_error(response) == "Invalid username or password"
    assert "jupyterhub-hub-login" not in browser.session.cookies
    assert ("refused", "wrong or reused TOTP code") in _login_events(
        site.ctx, site.world.researcher
    )


@pytest.mark.slow
@pytest.mark.xdist_group("hub-auth")
def test_a_locked_out_account_is_refused_even_with_the_right_credentials(site: Site) -> None:
    secret = site.secrets["locked"]
    for _ in range(MAX_FAILURES):
        assert Browser(site.hub).login("locked", "not the passphrase", "123456").status_code == 403
    browser = Browser(site.hub)
    response = browser.login("locked", PASSWORD, totp_code(secret))
    assert response.status_code == 403
    assert login_error(response) == "Invalid username or password"
    assert _login_events(site.ctx, "locked@example.org")[-1] == ("refused", LOCKED_REASON)


@pytest.mark.slow
@pytest.mark.xdist_group("hub-auth")
def test_a_person_without_accreditation_is_refused_and_told_why(site: Site) -> None:
    browser = Browser(site.hub)
    response = browser.login("fresh", PASSWORD, totp_code(site.secrets["fresh"]))
    assert response.status_code == 403
    assert login_error(response) == REFUSALS["accreditation"]
    assert "jupyterhub-hub-login" not in browser.session.cookies
    assert site.hub.api("GET", "/users/fresh").status_code == 404  # never became a hub user


@pytest.mark.slow
@pytest.mark.xdist_group("hub-auth")
def test_a_suspended_project_leaves_the_groups_and_its_spawn_is_refused(site: Site) -> None:
    browser = Browser(site.hub)
    assert browser.login("sam", PASSWORD, totp_code(site.secrets["sam"])).status_code == 302
    assert site.hub.groups_of("sam") == ["project-delta", "project-gamma"]
    projects.suspend_project(site.ctx, site.world.admin, "delta", "incident 12")
    response = browser.hub_api("POST", "/users/sam/servers/delta")
    assert response.status_code == 403
    assert response.json()["message"] == "Cannot start delta: the project is not active."
    assert site.hub.groups_of("sam") == ["project-gamma"]  # refreshed before the spawn
    page = browser.session.get(f"{site.hub.url}/hub/spawn/sam/delta", timeout=60)
    assert page.status_code == 403 and "the project is not active" in page.text
    refusals = [
        e.detail.get("rule")
        for e in audit.records(site.ctx.engine)
        if e.action == "start_session" and e.actor == "sam@example.org"
    ]
    assert refusals == ["project_state", "project_state"]
    assert "incident" not in site.hub.log() and "sam@example.org" not in site.hub.log()


@pytest.mark.slow
@pytest.mark.xdist_group("hub-auth")
def test_lapsed_access_forces_a_new_login_which_says_why(site: Site) -> None:
    browser = Browser(site.hub)
    assert browser.login("lee", PASSWORD, totp_code(site.secrets["lee"])).status_code == 302
    assert site.hub.groups_of("lee") == ["project-epsilon"]
    members.remove_member(
        site.ctx,
        site.world.admin,
        project="epsilon",
        email="lee@example.org",
        role="researcher",
        reason="left the team",
    )
    response = browser.hub_api("POST", "/users/lee/servers/epsilon")
    assert response.status_code == 403
    assert "login again" in json.loads(response.text)["message"]
    again = Browser(site.hub).login("lee", PASSWORD, totp_code(site.secrets["lee"], 1))
    assert again.status_code == 403
    assert login_error(again) == NO_PROJECT
