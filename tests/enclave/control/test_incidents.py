"""Breach handling, by attempting what a sanction or a freeze must stop: a suspended or barred
person's session start and API token, a running session (stopped at once, or on the access
enforcer's next pass when the hub could not be reached), a release during a freeze, an appeal
decided by the admin who imposed the sanction, and every action by someone not an admin."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from enclave.cli import main
from enclave.control import audit
from enclave.control.context import Context
from enclave.control.errors import (
    AuthenticationFailed,
    ControlError,
    IntegrationError,
    PermissionDenied,
)
from enclave.control.hubapi import HubApi
from enclave.control.service import (
    access,
    incidents,
    login_guard,
    members,
    people,
    session_stop,
    tokens,
)
from enclave.control.service.session_stop import HubSessionStopper, Server
from enclave.hub.enforcer import HubServers, RunningServer, enforce_once
from tests.enclave.control.factories import World, audit_tail, counts, make_project
from tests.enclave.control.fakehub import TOKEN, fake_hub

SECOND_ADMIN = "second-admin@example.org"


@dataclass
class RecordingStopper:
    """A SessionStopper over a list of running sessions: records each call, stops the
    matching ones, or (``fail``) answers as an unreachable hub does."""

    running: list[Server] = field(default_factory=list)
    calls: list[tuple[str | None, str | None]] = field(default_factory=list)
    fail: bool = False

    def stop_sessions(
        self, *, username: str | None = None, project: str | None = None
    ) -> Sequence[Server]:
        self.calls.append((username, project))
        if self.fail:
            raise IntegrationError("cannot reach JupyterHub at http://hub (OSError)", rule="hub")
        matched = [
            s for s in self.running if username in (None, s.user) and project in (None, s.project)
        ]
        self.running = [s for s in self.running if s not in matched]
        return matched


@dataclass(frozen=True)
class FakeHubServers(HubServers):
    """The access enforcer's hub calls over a dict of users' servers (no HTTP)."""

    users: dict[str, list[str]] = field(default_factory=dict)
    stopped: list[RunningServer] = field(default_factory=list)
    refuse: frozenset[str] = frozenset()  # "user/project" of the stops the hub refuses

    @classmethod
    def running(
        cls, users: dict[str, list[str]], refuse: frozenset[str] = frozenset()
    ) -> FakeHubServers:
        return cls(HubApi("http://127.0.0.1:1/hub/api", "unused"), users, [], refuse)

    def active_users(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "servers": {p: {"ready": True} for p in projects}}
            for name, projects in self.users.items()
        ]

    def stop(self, server: RunningServer) -> None:
        if str(server) in self.refuse:
            raise IntegrationError("JupyterHub refused DELETE /users/x/servers/y: HTTP 500")
        self.users[server.user].remove(server.project)
        self.stopped.append(server)


def _second_admin(ctx: Context, world: World) -> str:
    people.create_person(
        ctx, world.admin, email=SECOND_ADMIN, name="Sam Second", organisation="Enclave",
        roles=["admin"],
    )  # fmt: skip
    return SECOND_ADMIN


def _colleague(ctx: Context, world: World, project: str) -> str:
    """A second accredited researcher on ``project`` (username ``colleague``)."""
    email = "colleague@example.org"
    people.create_person(
        ctx, world.admin, email=email, name="Col League", organisation="Org",
        roles=["researcher"],
    )  # fmt: skip
    today = ctx.today()
    people.accredit(
        ctx, world.admin, email, scheme="Safe Researcher", reference="SR-col",
        issued_on=today - timedelta(days=1), expires_on=today + timedelta(days=300),
    )  # fmt: skip
    members.add_member(
        ctx, world.admin, project=project, email=email, role="researcher",
        expires_on=today + timedelta(days=300),
    )  # fmt: skip
    return email


def _refused_start(ctx: Context, email: str, project: str, rule: str) -> None:
    decision = access.authorize_session(ctx, email=email, project=project)
    assert (decision.allowed, decision.rule) == (False, rule), decision.reason
    assert audit_tail(ctx) == [("start_session", "refused", rule)]


# --- suspension: every project at once, tokens, running sessions ----------------------------


def test_a_suspended_researcher_is_refused_everywhere_and_their_sessions_stop(
    ctx: Context, world: World
) -> None:
    for slug in ("p1", "p2"):
        make_project(ctx, world, slug)
    token = tokens.issue_token(ctx, world.admin, world.researcher, label="ci").token
    assert tokens.verify_token(ctx, token).email == world.researcher
    stopper = RecordingStopper([Server("researcher", "p1"), Server("checker", "p1")])

    result = incidents.suspend_person(
        ctx, world.admin, world.researcher, "shared a password", stopper=stopper
    )

    assert (result.sanction.kind, result.sanction.in_force) == ("suspended", True)
    assert result.tokens_revoked == 1
    assert stopper.calls == [("researcher", None)]
    assert result.sessions == session_stop.StopOutcome(True, ("researcher/p1",))
    assert stopper.running == [Server("checker", "p1")]  # nobody else's session
    stop = audit.records(ctx.engine, action="session_stop")[-1]
    assert (stop.actor, stop.project) == (world.researcher, "p1")
    assert stop.detail["reason"] == f"suspended: {result.sanction.uuid}"
    imposed = audit.records(ctx.engine, action="suspend_person")[-1]
    assert imposed.detail == {
        "email": world.researcher,
        "reason": "shared a password",
        "tokens_revoked": 1,
    }

    # the attacks: a session on either project, and the token
    for slug in ("p1", "p2"):
        _refused_start(ctx, world.researcher, slug, "sanctioned")
    with pytest.raises(AuthenticationFailed):
        tokens.verify_token(ctx, token)
    assert audit_tail(ctx) == [("token_auth", "refused", "")]
    assert audit.records(ctx.engine)[-1].detail["reason"] == "revoked token"

    # lifted: sessions may start again (the revoked token stays revoked)
    lifted = incidents.lift_sanction(ctx, world.admin, result.sanction.uuid, "cleared")
    assert not lifted.in_force and lifted.lifted_by == world.admin
    assert access.authorize_session(ctx, email=world.researcher, project="p1").allowed
    with pytest.raises(AuthenticationFailed):
        tokens.verify_token(ctx, token)


def test_a_sanction_without_a_hub_still_stands_and_says_the_enforcer_will_stop_sessions(
    ctx: Context, world: World
) -> None:
    make_project(ctx, world, "p1")
    result = incidents.bar_person(ctx, world.admin, world.researcher, "data breach")
    assert result.sessions == session_stop.StopOutcome(attempted=False)
    _refused_start(ctx, world.researcher, "p1", "sanctioned")


def test_when_the_immediate_stop_fails_the_enforcer_stops_the_session_on_its_next_pass(
    ctx: Context, world: World
) -> None:
    make_project(ctx, world, "p1")
    _colleague(ctx, world, "p1")
    hub = FakeHubServers.running({"researcher": ["p1"], "colleague": ["p1"]})
    result = incidents.suspend_person(
        ctx, world.admin, world.researcher, "incident 9", stopper=RecordingStopper(fail=True)
    )
    assert result.sessions.attempted and "cannot reach JupyterHub" in result.sessions.error
    assert incidents.list_sanctions(ctx, world.admin, in_force_only=True) == [result.sanction]
    failed = audit.records(ctx.engine, action="session_stop")[-1]
    assert (failed.outcome, failed.target) == ("failed", "researcher/*")

    report = enforce_once(hub, ctx)

    assert [(str(s.server), s.rule) for s in report.stopped] == [("researcher/p1", "sanctioned")]
    assert hub.users == {"researcher": [], "colleague": ["p1"]}  # their access holds
    stop = audit.records(ctx.engine, action="session_stop")[-1]
    assert (stop.actor, stop.detail["reason"]) == (world.researcher, "access lapsed: sanctioned")


def test_the_hub_stopper_stops_only_the_matching_running_servers() -> None:
    hub = FakeHubServers.running({"rae": ["live", "paused"], "sam": ["live"]})
    stopper = HubSessionStopper(hub)
    assert stopper.stop_sessions(username="rae") == [Server("rae", "live"), Server("rae", "paused")]
    assert hub.users == {"rae": [], "sam": ["live"]}
    assert stopper.stop_sessions(project="other") == []
    assert stopper.stop_sessions() == [Server("sam", "live")]
    assert session_stop.hub_stopper(None, None) is None


def test_a_stop_the_hub_refuses_does_not_keep_the_others_running(
    ctx: Context, world: World
) -> None:
    for slug in ("p1", "p2"):
        make_project(ctx, world, slug)
    hub = FakeHubServers.running({"researcher": ["p1", "p2"]}, refuse=frozenset({"researcher/p1"}))
    result = incidents.freeze(ctx, world.admin, "incident", stopper=HubSessionStopper(hub))
    assert result.sessions.stopped == ("researcher/p2",)
    assert result.sessions.error.startswith("1 session(s) not stopped: JupyterHub refused")
    assert hub.users == {"researcher": ["p1"]}
    stops = audit.records(ctx.engine, action="session_stop")
    assert [(e.outcome, e.project) for e in stops] == [("ok", "p2"), ("failed", None)]
    assert isinstance(
        session_stop.hub_stopper("http://127.0.0.1:1/hub/api", "t"), HubSessionStopper
    )


def test_sanctions_refuse_oneself_duplicates_and_a_lifted_bar(ctx: Context, world: World) -> None:
    with pytest.raises(ControlError) as own:
        incidents.suspend_person(ctx, world.admin, world.admin, "oops")
    assert own.value.rule == "self_sanction"
    barred = incidents.bar_person(ctx, world.admin, world.checker, "released microdata").sanction
    for impose in (incidents.suspend_person, incidents.bar_person):
        before = counts(ctx)
        with pytest.raises(ControlError) as again:
            impose(ctx, world.admin, world.checker, "again")
        assert again.value.rule == "already_sanctioned" and "already barred" in str(again.value)
        assert counts(ctx) == before
    with pytest.raises(ControlError) as final:
        incidents.lift_sanction(ctx, world.admin, barred.uuid, "changed my mind")
    assert final.value.rule == "bar_final"
    assert audit_tail(ctx) == [("lift_sanction", "refused", "bar_final")]
    with pytest.raises(ControlError) as unknown:
        incidents.lift_sanction(ctx, world.admin, "no-such-sanction", "x")
    assert unknown.value.rule == "unknown_sanction"
    with pytest.raises(ControlError) as blank:
        incidents.suspend_person(ctx, world.admin, world.custodian, "   ")
    assert blank.value.rule == "invalid_input"


# --- appeals ------------------------------------------------------------------------------


def test_a_bar_is_appealed_and_decided_only_by_another_admin(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1")
    second = _second_admin(ctx, world)
    sanction = incidents.bar_person(ctx, world.admin, world.researcher, "breach").sanction

    with pytest.raises(ControlError) as early:
        incidents.decide_appeal(ctx, second, sanction.uuid, "overturned", "no appeal yet")
    assert early.value.rule == "no_appeal"
    with pytest.raises(PermissionDenied):  # someone else's sanction: only an admin appeals it
        incidents.lodge_appeal(ctx, world.custodian, sanction.uuid, "on their behalf")
    appealed = incidents.lodge_appeal(ctx, world.researcher, sanction.uuid, "It was not me.")
    assert appealed.appeal == "It was not me." and appealed.appealed_at is not None
    assert "It was not me" not in json.dumps(audit.records(ctx.engine)[-1].detail)
    with pytest.raises(ControlError) as twice:
        incidents.lodge_appeal(ctx, world.admin, sanction.uuid, "again")
    assert twice.value.rule == "appealed"

    # the attack: the admin who barred them decides their appeal
    before = counts(ctx)
    with pytest.raises(ControlError) as same:
        incidents.decide_appeal(ctx, world.admin, sanction.uuid, "upheld", "I stand by it")
    assert same.value.rule == "separation_of_duties"
    assert audit_tail(ctx) == [("decide_appeal", "refused", "separation_of_duties")]
    assert counts(ctx) == before
    with pytest.raises(ControlError) as bad:
        incidents.decide_appeal(ctx, second, sanction.uuid, "maybe", "x")
    assert bad.value.rule == "invalid_outcome"

    decided = incidents.decide_appeal(ctx, second, sanction.uuid, "overturned", "mistaken identity")
    assert (decided.appeal_outcome, decided.in_force) == ("overturned", False)
    assert decided.appeal_decided_by == second and decided.lifted_by == second
    assert access.authorize_session(ctx, email=world.researcher, project="p1").allowed
    with pytest.raises(ControlError) as done:
        incidents.decide_appeal(ctx, second, sanction.uuid, "upheld", "second thoughts")
    assert done.value.rule == "decided"


def test_an_upheld_appeal_keeps_the_suspension(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1")
    second = _second_admin(ctx, world)
    sanction = incidents.suspend_person(ctx, world.admin, world.researcher, "breach").sanction
    incidents.lodge_appeal(ctx, world.admin, sanction.uuid, "On the researcher's behalf.")
    decided = incidents.decide_appeal(ctx, second, sanction.uuid, "upheld", "evidence holds")
    assert (decided.appeal_outcome, decided.in_force) == ("upheld", True)
    _refused_start(ctx, world.researcher, "p1", "sanctioned")
    lifted = incidents.lift_sanction(ctx, world.admin, sanction.uuid, "served its time")
    with pytest.raises(ControlError) as late:
        incidents.lodge_appeal(ctx, world.admin, lifted.uuid, "late")
    assert late.value.rule == "not_in_force"


# --- freezes ------------------------------------------------------------------------------


def test_a_project_freeze_stops_its_sessions_and_refuses_new_ones(
    ctx: Context, world: World
) -> None:
    for slug in ("p1", "p2"):
        make_project(ctx, world, slug)
    stopper = RecordingStopper([Server("researcher", "p1"), Server("researcher", "p2")])
    result = incidents.freeze(ctx, world.admin, "suspected breach", "p1", stopper=stopper)
    assert (result.freeze.project, result.freeze.in_force) == ("p1", True)
    assert stopper.calls == [(None, "p1")]
    assert stopper.running == [Server("researcher", "p2")]
    assert audit.records(ctx.engine, action="session_stop")[-1].detail["reason"] == (
        f"frozen: {result.freeze.uuid}"
    )
    _refused_start(ctx, world.researcher, "p1", "frozen")
    assert access.authorize_session(ctx, email=world.researcher, project="p2").allowed
    with pytest.raises(ControlError) as twice:
        incidents.freeze(ctx, world.admin, "again", "p1")
    assert twice.value.rule == "already_frozen"
    ended = incidents.unfreeze(ctx, world.admin, result.freeze.uuid, "contained")
    assert not ended.in_force and ended.ended_by == world.admin
    assert access.authorize_session(ctx, email=world.researcher, project="p1").allowed
    with pytest.raises(ControlError) as over:
        incidents.unfreeze(ctx, world.admin, result.freeze.uuid, "again")
    assert over.value.rule == "not_in_force"
    with pytest.raises(ControlError) as unknown:
        incidents.freeze(ctx, world.admin, "x", "no-such-project")
    assert unknown.value.rule == "unknown_project"


def test_the_enclave_wide_freeze_stops_every_session(ctx: Context, world: World) -> None:
    for slug in ("p1", "p2"):
        make_project(ctx, world, slug)
    stopper = RecordingStopper([Server("researcher", "p1"), Server("other", "p2")])
    result = incidents.freeze(ctx, world.admin, "ransomware on the host", stopper=stopper)
    assert result.freeze.scope == "the whole enclave"
    assert stopper.calls == [(None, None)] and stopper.running == []
    for slug in ("p1", "p2"):
        _refused_start(ctx, world.researcher, slug, "frozen")
    assert incidents.list_freezes(ctx, world.admin) == [result.freeze]


def test_a_freeze_holds_an_approved_release_until_it_ends(ctx: Context) -> None:
    from output_checker.queue import release
    from output_checker.queue.db import upgrade as upgrade_queue
    from output_checker.queue.service.releases import released_dir
    from output_checker.queue.workflow import Status
    from tests.output_checker.queue.factories import make_queue_world, make_request

    upgrade_queue(ctx.engine)
    qw = make_queue_world(ctx)
    rid = make_request(ctx, qw, Status.APPROVED)
    frozen = incidents.freeze(ctx, qw.admin, "suspected breach", qw.project).freeze

    held = release.release_request(ctx, rid)
    assert (held.status, held.copied) == ("approved", 0)
    assert any("frozen" in error for error in held.errors), held
    assert not released_dir(ctx.data_dir, qw.project, rid).exists()

    incidents.unfreeze(ctx, qw.admin, frozen.uuid, "contained")
    assert release.release_request(ctx, rid).status == "released"


# --- who may -----------------------------------------------------------------------------


def _actions(world: World, target: str) -> dict[str, Callable[[Context, str], object]]:
    return {
        "suspend_person": lambda ctx, a: incidents.suspend_person(ctx, a, target, "x"),
        "bar_person": lambda ctx, a: incidents.bar_person(ctx, a, target, "x"),
        "lift_sanction": lambda ctx, a: incidents.lift_sanction(ctx, a, _sanction(ctx), "x"),
        "lodge_appeal": lambda ctx, a: incidents.lodge_appeal(ctx, a, _sanction(ctx), "x"),
        "decide_appeal": lambda ctx, a: incidents.decide_appeal(
            ctx, a, _sanction(ctx), "upheld", "x"
        ),
        "freeze": lambda ctx, a: incidents.freeze(ctx, a, "x", "p1"),
        "unfreeze": lambda ctx, a: incidents.unfreeze(ctx, a, _freeze(ctx), "x"),
    }


def _sanction(ctx: Context) -> str:
    return audit.records(ctx.engine, action="suspend_person")[0].target


def _freeze(ctx: Context) -> str:
    return audit.records(ctx.engine, action="freeze")[0].target


@pytest.mark.parametrize("role", ["researcher", "output_checker", "data_custodian", "none"])
def test_only_admins_sanction_freeze_and_decide(ctx: Context, world: World, role: str) -> None:
    make_project(ctx, world, "p1")
    incidents.suspend_person(ctx, world.admin, world.client, "under investigation")
    incidents.freeze(ctx, world.admin, "incident", "p1")
    actor = world.by_role(role)
    for name, call in _actions(world, world.nobody if role != "none" else world.custodian).items():
        before = counts(ctx)
        with pytest.raises(PermissionDenied) as refused:
            call(ctx, actor)
        assert refused.value.rule == "role", name
        assert audit_tail(ctx) == [(name, "refused", "role")]
        assert counts(ctx) == before
    with pytest.raises(PermissionDenied):
        incidents.list_sanctions(ctx, actor)


# --- the command line ------------------------------------------------------------------------


def _cli(
    capsys: pytest.CaptureFixture[str], command: str, *, code: int = 0
) -> tuple[list[str], str]:
    status = main(shlex.split(command))
    captured = capsys.readouterr()
    assert status == code, captured.err
    return captured.out.splitlines(), captured.err


def test_the_command_line_sanctions_appeals_freezes_and_reviews(
    ctx: Context,
    world: World,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in list(os.environ):
        if name.startswith("ENCLAVE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(ctx.data_dir))
    monkeypatch.setenv("ENCLAVE_DATABASE_URL", database_url)
    make_project(ctx, world, "p1")
    second = _second_admin(ctx, world)
    a = f"--as {world.admin}"

    with fake_hub() as (url, hub):
        monkeypatch.setenv("ENCLAVE_HUB_URL", url)
        monkeypatch.setenv("ENCLAVE_HUB_API_TOKEN", TOKEN)
        out, _ = _cli(capsys, f"admin bar-person {a} {world.researcher} --reason 'data breach'")
        assert any(c[:2] == ("GET", "/hub/api/users") for c in hub.calls)  # the stop asked
    kind, email, sanction = out[0].split("\t")
    assert (kind, email) == ("barred", world.researcher)
    assert out[1:] == ["tokens revoked\t0", "sessions stopped\t(none running)"]
    _refused_start(ctx, world.researcher, "p1", "sanctioned")

    _, err = _cli(capsys, f"admin lift-sanction {a} {sanction} --reason oops", code=2)
    assert err.count("\n") == 1 and err.rstrip().endswith("[bar_final]")
    _cli(capsys, f"admin appeal {a} {sanction} --statement 'Not me'")
    _, err = _cli(
        capsys,
        f"admin decide-appeal {a} {sanction} --outcome overturned --reason mine",
        code=2,
    )
    assert err.rstrip().endswith("[separation_of_duties]")
    out, _ = _cli(
        capsys,
        f"admin decide-appeal --as {second} {sanction} --outcome overturned --reason 'not them'",
    )
    assert out == [f"appeal\toverturned\t{world.researcher}\tlifted"]
    assert access.authorize_session(ctx, email=world.researcher, project="p1").allowed

    monkeypatch.setenv("ENCLAVE_HUB_URL", "http://127.0.0.1:9/hub/api")  # nothing listens
    out, err = _cli(capsys, f"admin freeze {a} --project p1 --reason 'suspected breach'")
    assert out[0].startswith("frozen\tp1\t") and "stops them on its next pass" in err
    freeze_id = out[0].split("\t")[2]
    _refused_start(ctx, world.researcher, "p1", "frozen")
    monkeypatch.delenv("ENCLAVE_HUB_URL")
    out, _ = _cli(capsys, f"admin freezes {a} --json")
    assert [json.loads(line)["uuid"] for line in out] == [freeze_id]
    _cli(capsys, f"admin unfreeze {a} {freeze_id} --reason contained")
    _, err = _cli(capsys, f"admin unfreeze {a} {freeze_id} --reason again", code=2)
    assert err.rstrip().endswith("[not_in_force]")

    for _ in range(3):
        access.authorize_session(ctx, email=world.client, project="p1")
    out, _ = _cli(capsys, "admin scan-alerts")
    raised = sorted(tuple(line.split("\t")[1:]) for line in out[:-1])
    assert [r[:2] for r in raised] == [
        ("blocked_attempt", world.researcher),  # while barred
        ("blocked_attempt", world.researcher),  # while frozen
        ("refused_access", world.client),
    ]
    assert out[-1].startswith("scanned through event")
    out, _ = _cli(capsys, f"admin alerts {a} --json")
    assert sorted(json.loads(line)["uuid"] for line in out) == sorted(r[2] for r in raised)
    for *_, alert_id in raised:
        _cli(capsys, f"admin review-alert {a} {alert_id} --outcome benign --note 'a drill'")
    assert _cli(capsys, f"admin alerts {a}")[0] == [
        "uuid\tkind\tsubject\traised_at\toutcome\tdetail"
    ]
    _, err = _cli(capsys, f"admin alerts --as {world.researcher}", code=2)
    assert err.rstrip().endswith("[role]")


def test_a_sanction_ends_sessions_already_open_in_the_web_apps_and_every_action(
    ctx: Context, world: World
) -> None:
    """The attack: a checker logged in to the admin web and the review queue before being
    suspended keeps using those sessions. Every request re-reads the person, so both end."""
    from output_checker.queue import service as queue_service
    from output_checker.queue.db import upgrade as upgrade_queue

    upgrade_queue(ctx.engine)
    make_project(ctx, world, "p1")
    checker = people.get_person(ctx, world.admin, world.checker)
    assert login_guard.session_person(ctx, checker.uuid, "sid-open") == checker
    assert queue_service.list_requests(ctx, world.checker) == []
    incidents.suspend_person(ctx, world.admin, world.checker, "shared their screen")

    assert login_guard.session_person(ctx, checker.uuid, "sid-open") is None
    with pytest.raises(PermissionDenied) as queue_refusal:
        queue_service.list_requests(ctx, world.checker)
    assert queue_refusal.value.rule == "sanctioned"
    with pytest.raises(PermissionDenied) as token_refusal:
        tokens.issue_token(ctx, world.checker, world.checker, label="after the fact")
    assert token_refusal.value.rule == "sanctioned"
