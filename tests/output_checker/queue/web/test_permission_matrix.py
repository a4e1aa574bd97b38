"""403 for every action outside a person's role, through the web pages and the JSON API.

Parametrised over (surface, action): a fresh request is brought to the status in which the
action is possible, every person outside the action's roles tries it and gets 403 with
nothing changed, then one person inside the roles does it and succeeds. The people are the
queue world's: the author, a collaborator, a checker who is also a researcher member, a
checker who was one, a checker holding the project's output-checker membership (any
membership bars reviewing), an untied checker, an admin, a custodian, a researcher of
another project and someone with no role.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select
from werkzeug.test import TestResponse

from enclave.control.context import Context
from enclave.control.db import make_engine, transaction
from enclave.control.db import upgrade as upgrade_control
from output_checker.queue import models as m
from output_checker.queue import service
from output_checker.queue.db import upgrade as upgrade_queue
from output_checker.queue.workflow import Status
from tests.enclave.control.factories import FakeClock
from tests.enclave.control.web.conftest import Web
from tests.output_checker.queue.factories import QueueWorld, make_queue_world, make_request
from tests.output_checker.queue.web.conftest import AsPerson

ROLES = (
    "author",
    "collaborator",
    "member_checker",
    "former_member",
    "assigned_checker",
    "checker_c",
    "admin",
    "custodian",
    "outsider",
    "nobody",
)
MEMBERS = frozenset({"author", "collaborator", "member_checker"})
REVIEWER = frozenset({"checker_c"})
AUTHOR = frozenset({"author"})


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Context, QueueWorld, str]]:
    """One database and world for the module (each test still makes its own request): the
    world takes seconds to build, and these tests only compare before and after."""
    root: Path = tmp_path_factory.mktemp("web-matrix")
    url = f"sqlite:///{root / 'enclave.sqlite3'}"
    engine = make_engine(url)
    # A throw-away database: durability is not what this module tests.
    event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA synchronous = OFF"))
    upgrade_control(engine)
    upgrade_queue(engine)
    context = Context(engine=engine, data_dir=root / "data", clock=FakeClock())
    yield context, make_queue_world(context), url
    context.close()


@pytest.fixture
def ctx(shared: tuple[Context, QueueWorld, str]) -> Context:
    return shared[0]


@pytest.fixture
def qw(shared: tuple[Context, QueueWorld, str]) -> QueueWorld:
    return shared[1]


@pytest.fixture
def database_url(shared: tuple[Context, QueueWorld, str]) -> str:
    return shared[2]


@dataclass(frozen=True)
class Target:
    """What an action works on: the request, its first output and a private comment."""

    request: str
    file: str
    comment: str = ""


Setup = Callable[[Context, QueueWorld, Target], Target]
Data = Callable[[Target], dict[str, Any]]


def _csv() -> tuple[io.BytesIO, str]:
    return io.BytesIO(b"region,count\neast,50\n"), "extra.csv"


@dataclass(frozen=True)
class Action:
    """One action: the status it needs, who may do it, and how each surface does it."""

    status: Status | None
    allowed: frozenset[str]
    web: tuple[str, str, Data | None] | None  # method, URL template, form data
    api: tuple[str, str, Data | None] | None  # method, URL template, JSON body or multipart
    setup: Setup | None = None
    multipart: bool = False
    ok: tuple[int, ...] = field(default=(200, 201, 204))


def _vote_first(ctx: Context, qw: QueueWorld, target: Target) -> Target:
    service.vote(ctx, qw.checker_c, target.request, target.file, "approve")
    return target


def _private_note(ctx: Context, qw: QueueWorld, target: Target) -> Target:
    note = service.comment(
        ctx, qw.checker_c, target.request, body="note", group="tables", visibility="private"
    )
    return Target(target.request, target.file, note.id)


R, F = "/requests/{request}", "/requests/{request}/files/{file}"
PRIVATE = {"body": "x", "group": "tables", "visibility": "private"}
A = "/api/v1"
ACTIONS: dict[str, Action] = {
    "create": Action(
        None,
        MEMBERS,
        ("POST", "/requests", lambda t: {"project": "study"}),
        ("POST", f"{A}/requests", lambda t: {"project": "study"}),
    ),
    "add_file": Action(
        Status.PENDING,
        AUTHOR,
        ("POST", f"{R}/files", lambda t: {"file": _csv(), "kind": "supporting"}),
        ("POST", f"{A}{R}/files", lambda t: {"file": _csv(), "kind": "supporting"}),
        multipart=True,
    ),
    "update_file": Action(
        Status.PENDING,
        AUTHOR,
        ("POST", f"{F}/update", lambda t: {"file": _csv()}),
        ("POST", f"{A}{F}/update", lambda t: {"file": _csv()}),
        multipart=True,
    ),
    "move_file": Action(
        Status.PENDING,
        AUTHOR,
        ("POST", f"{F}/move", lambda t: {"group": "other"}),
        ("POST", f"{A}{F}/move", lambda t: {"group": "other"}),
    ),
    "withdraw_file": Action(
        Status.PENDING, AUTHOR, ("POST", f"{F}/withdraw", None), ("POST", f"{A}{F}/withdraw", None)
    ),
    "set_exception": Action(
        Status.PENDING,
        AUTHOR,
        ("POST", f"{F}/exception", lambda t: {"exception": "needed"}),
        ("POST", f"{A}{F}/exception", lambda t: {"text": "needed"}),
    ),
    "set_group": Action(
        Status.PENDING,
        AUTHOR,
        ("POST", f"{R}/groups", lambda t: {"group": "g", "context": "c", "controls": "k"}),
        ("POST", f"{A}{R}/groups", lambda t: {"name": "g", "context": "c", "controls": "k"}),
    ),
    "submit": Action(
        Status.PENDING, AUTHOR, ("POST", f"{R}/submit", None), ("POST", f"{A}{R}/submit", None)
    ),
    "resubmit": Action(
        Status.RETURNED,
        AUTHOR,
        ("POST", f"{R}/resubmit", lambda t: {"comment": "fixed"}),
        ("POST", f"{A}{R}/resubmit", lambda t: {"comment": "fixed"}),
    ),
    "withdraw": Action(
        Status.PENDING, AUTHOR, ("POST", f"{R}/withdraw", None), ("POST", f"{A}{R}/withdraw", None)
    ),
    "vote": Action(
        Status.SUBMITTED,
        REVIEWER,
        ("POST", f"{F}/vote", lambda t: {"choice": "approve"}),
        ("POST", f"{A}{F}/vote", lambda t: {"choice": "approve"}),
    ),
    "submit_review": Action(
        Status.SUBMITTED,
        REVIEWER,
        ("POST", f"{R}/review", None),
        ("POST", f"{A}{R}/review/submit", None),
        setup=_vote_first,
    ),
    "private_comment": Action(
        Status.SUBMITTED,
        REVIEWER,
        ("POST", f"{R}/comments", lambda t: dict(PRIVATE)),
        ("POST", f"{A}{R}/comments", lambda t: dict(PRIVATE)),
    ),
    "make_public": Action(
        Status.SUBMITTED,
        REVIEWER,
        ("POST", f"{R}/comments/{{comment}}/public", None),
        ("POST", f"{A}{R}/comments/{{comment}}/public", None),
        setup=_private_note,
    ),
    "early_return": Action(
        Status.SUBMITTED, REVIEWER, ("POST", f"{R}/return", None), ("POST", f"{A}{R}/return", {})
    ),
    "reject": Action(
        Status.REVIEWED,
        REVIEWER,
        ("POST", f"{R}/reject", lambda t: {"reason": "unsafe"}),
        ("POST", f"{A}{R}/reject", lambda t: {"reason": "unsafe"}),
    ),
    "release": Action(
        Status.REVIEWED,
        REVIEWER,
        ("POST", f"{R}/release", lambda t: {"comment": "two approvals"}),
        ("POST", f"{A}{R}/release", lambda t: {"comment": "two approvals"}),
    ),
    "revoke": Action(
        Status.RELEASED,
        REVIEWER | {"admin"},
        ("POST", f"{R}/revoke", lambda t: {"reason": "breach"}),
        ("POST", f"{A}{R}/revoke", lambda t: {"reason": "breach"}),
    ),
    "download": Action(
        Status.SUBMITTED,
        REVIEWER,
        ("GET", f"{F}/download", None),
        ("GET", f"{A}{F}/download", None),
    ),
    "download_release": Action(
        Status.RELEASED,
        MEMBERS | REVIEWER,
        ("GET", "/releases/{file}/download", None),
        ("GET", f"{A}/releases/{{file}}/download", None),
    ),
    "view": Action(
        Status.SUBMITTED, MEMBERS | REVIEWER, ("GET", R, None), ("GET", f"{A}{R}", None)
    ),
    "view_file": Action(Status.SUBMITTED, MEMBERS | REVIEWER, ("GET", F, None), None),
    "content": Action(Status.SUBMITTED, MEMBERS | REVIEWER, ("GET", f"{F}/content", None), None),
    "diff": Action(Status.SUBMITTED, MEMBERS | REVIEWER, ("GET", f"{F}/diff", None), None),
    "activity": Action(
        Status.SUBMITTED,
        MEMBERS | REVIEWER,
        ("GET", f"{R}/activity", None),
        ("GET", f"{A}{R}/activity", None),
    ),
    # Any output checker may see the checkers' load (the overview shows it to them only).
    "reviewer_load": Action(
        None,
        frozenset({"member_checker", "former_member", "assigned_checker", "checker_c"}),
        None,
        ("GET", f"{A}/reviewers/load", None),
    ),
}
CASES = [
    (surface, name)
    for name, action in sorted(ACTIONS.items())
    for surface in ("web", "api")
    if getattr(action, surface) is not None
]


def _fresh(ctx: Context, qw: QueueWorld, action: Action) -> Target:
    if action.status is None:
        return Target("", "")
    rid = make_request(ctx, qw, action.status)  # RELEASED: through the release worker
    file_id = service.get_request(ctx, qw.author, rid).files[0].id
    target = Target(rid, file_id)
    return action.setup(ctx, qw, target) if action.setup else target


def _state(ctx: Context) -> tuple[int, ...]:
    """What a refused action must leave unchanged: the rows of every queue table, and the
    requests' statuses and turns."""
    with transaction(ctx.engine, readonly=True) as session:
        counts = tuple(
            int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (
                m.Request,
                m.Group,
                m.File,
                m.FileVersion,
                m.VoteRow,
                m.Review,
                m.Comment,
                m.Release,
                m.ReleaseItem,
            )
        )
        statuses = session.execute(select(m.Request.status, m.Request.review_turn)).all()
    return counts + tuple(hash((s, t)) for s, t in sorted(statuses))


def _call(
    surface: str,
    action: Action,
    target: Target,
    client: FlaskClient,
    web: Web,
    token: dict[str, str],
) -> TestResponse:
    found = action.web if surface == "web" else action.api
    assert found is not None
    method, template, data = found
    url = template.format(request=target.request, file=target.file, comment=target.comment)
    payload = data(target) if callable(data) else data
    if surface == "api":
        if action.multipart:
            return client.open(url, method=method, data=payload, headers=token)
        return client.open(url, method=method, json=payload, headers=token)
    if method == "GET":
        return client.get(url)
    return web.post(url, payload or {})


def _flashed(client: FlaskClient) -> list[tuple[str, str]]:
    with client.session_transaction() as session:
        flashes: list[tuple[str, str]] = session.get("_flashes", [])
        return flashes


@pytest.mark.parametrize(("surface", "name"), CASES)
def test_every_action_outside_a_role_is_403(
    surface: str,
    name: str,
    ctx: Context,
    qw: QueueWorld,
    client: FlaskClient,
    web: Web,
    as_person: AsPerson,
    bearer: Callable[[str], dict[str, str]],
) -> None:
    action = ACTIONS[name]
    target = _fresh(ctx, qw, action)
    before = _state(ctx)
    for role in ROLES:
        if role in action.allowed:
            continue
        email = qw.by_role(role)
        as_person(client, email)
        response = _call(surface, action, target, client, web, bearer(email))
        assert response.status_code == 403, (role, response.status_code, response.data[:300])
        assert _state(ctx) == before, role
    role = sorted(action.allowed)[0]
    as_person(client, qw.by_role(role))
    response = _call(surface, action, target, client, web, bearer(qw.by_role(role)))
    if surface == "web" and response.status_code == 303:
        assert [c for c, _ in _flashed(client)] == ["ok"], (role, _flashed(client))
    else:
        assert response.status_code in action.ok, (role, response.status_code, response.data[:300])
