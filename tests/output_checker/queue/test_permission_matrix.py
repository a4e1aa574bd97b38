"""The permission matrix: role x action x state.

Two layers. The pure rules (``permissions``, ``policies``) are compared with the tables
below for every role and every status. Then every role tries every action on a request in
every status *through the service layer*: allowed exactly when the tables say so, and every
refusal leaves the request as it was and is audited.

The expectations are written out here independently of the code under test. The service
matrix runs on SQLite with one world per module (the rules are plain Python above the
database; the other service tests run on every backend); actions that change the request
get a fresh request, the others share one per status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import make_engine, transaction
from enclave.control.db import upgrade as upgrade_control
from enclave.control.errors import ControlError
from enclave.control.models import AuditHead
from output_checker.queue import models as m
from output_checker.queue import permissions as perms
from output_checker.queue import policies, service
from output_checker.queue.db import upgrade as upgrade_queue
from output_checker.queue.errors import PermissionDenied
from output_checker.queue.facts import ActorFacts, RequestFacts
from output_checker.queue.workflow import Status, Visibility
from tests.enclave.control.factories import FakeClock
from tests.output_checker.queue.factories import (
    QueueWorld,
    distinct,
    make_queue_world,
    make_request,
    passing_output,
)

S = Status
ROLES = (
    "author",
    "collaborator",
    "member_checker",
    "former_member",
    "checker_c",
    "assigned_checker",
    "admin",
    "custodian",
    "outsider",
    "nobody",
)
MEMBERS = {"author", "collaborator", "member_checker"}
# Any membership of the project bars reviewing, the output-checker role's included.
REVIEWERS = {"checker_c"}
AUTHOR_TURNS = {S.PENDING, S.RETURNED}
REVIEW_TURNS = {S.SUBMITTED, S.PARTIALLY_REVIEWED, S.REVIEWED}
ALL = set(S)
SUBMITTED_ONCE = ALL - {S.PENDING, S.WITHDRAWN}  # the factory withdraws from PENDING

# ----- the pure role rules --------------------------------------------------------------------

FACTS = {
    "author": ActorFacts("a@x", frozenset({"researcher"}), True, True, is_author=True),
    "collaborator": ActorFacts("b@x", frozenset({"researcher"}), True, True),
    "member_checker": ActorFacts("c@x", frozenset({"researcher", "output_checker"}), True, True),
    "former_member": ActorFacts("d@x", frozenset({"researcher", "output_checker"}), False, True),
    "checker_c": ActorFacts("e@x", frozenset({"output_checker"}), False, False),
    "assigned_checker": ActorFacts("f@x", frozenset({"output_checker"}), False, True),
    "admin": ActorFacts("g@x", frozenset({"admin"}), False, False),
    "custodian": ActorFacts("h@x", frozenset({"data_custodian"}), False, False),
    "outsider": ActorFacts("i@x", frozenset({"researcher"}), False, False),
    "nobody": ActorFacts("j@x", frozenset(), False, False),
}
ROLE_RULES: dict[
    str, tuple[Callable[[ActorFacts], None], Callable[[ActorFacts], bool], set[str]]
] = {
    "create": (
        perms.check_can_create,
        perms.can_create,
        {"author", "collaborator", "member_checker"},
    ),
    "author": (perms.check_can_author, perms.can_author, {"author"}),
    "review": (perms.check_can_review, perms.can_review, REVIEWERS),
    "view": (perms.check_can_view, perms.can_view, MEMBERS | REVIEWERS),
    "download": (perms.check_can_download, perms.can_download, REVIEWERS),
    "download_release": (
        perms.check_can_download_release,
        perms.can_download_release,
        MEMBERS | REVIEWERS,
    ),
    "revoke": (perms.check_can_revoke, perms.can_revoke, REVIEWERS | {"admin"}),
    "force_status": (perms.check_can_force_status, perms.can_force_status, {"admin"}),
}


@pytest.mark.parametrize("rule", sorted(ROLE_RULES))
@pytest.mark.parametrize("role", ROLES)
def test_role_rules(role: str, rule: str) -> None:
    check, can, allowed = ROLE_RULES[rule]
    facts = FACTS[role]
    assert can(facts) is (role in allowed)
    if role in allowed:
        check(facts)
    else:
        with pytest.raises(PermissionDenied) as refused:
            check(facts)
        assert refused.value.rule in {"role", "separation_of_duties", "membership", "not_author"}


@pytest.mark.parametrize("role", ROLES)
def test_comment_visibility_by_role(role: str) -> None:
    facts = FACTS[role]
    assert perms.can_comment(facts, Visibility.PUBLIC) is (role in MEMBERS | REVIEWERS)
    assert perms.can_comment(facts, Visibility.PRIVATE) is (role in REVIEWERS)


# ----- the pure state rules -------------------------------------------------------------------

STATE_RULES: dict[str, tuple[Callable[[RequestFacts], bool], set[Status]]] = {
    "edit": (policies.can_edit, AUTHOR_TURNS),
    "vote": (lambda r: policies.can_vote(r, "e@x"), REVIEW_TURNS),
    "comment_author_side": (lambda r: policies.can_comment(r, reviewer_side=False), AUTHOR_TURNS),
    "comment_reviewer_side": (lambda r: policies.can_comment(r, reviewer_side=True), REVIEW_TURNS),
    "download": (policies.can_download, ALL - {S.WITHDRAWN}),
    "download_release": (lambda r: policies.can_download_release(r.status), {S.RELEASED}),
}


@pytest.mark.parametrize("rule", sorted(STATE_RULES))
@pytest.mark.parametrize("status", list(S))
def test_state_rules(status: Status, rule: str) -> None:
    can, allowed = STATE_RULES[rule]
    facts = RequestFacts(id="r", status=status, turn=1, author="a@x")
    assert can(facts) is (status in allowed)


def test_votes_close_for_a_reviewer_once_their_review_is_submitted() -> None:
    facts = RequestFacts("r", S.PARTIALLY_REVIEWED, 1, "a@x", reviews={1: frozenset({"e@x"})})
    assert not policies.can_vote(facts, "e@x")
    assert policies.can_vote(facts, "f@x")


# ----- the service matrix ---------------------------------------------------------------------


@dataclass
class Matrix:
    ctx: Context
    qw: QueueWorld
    shared: dict[Status, str] = field(default_factory=dict)

    def request(self, status: Status, *, fresh: bool) -> str:
        if fresh:
            return make_request(self.ctx, self.qw, status)
        if status not in self.shared:
            self.shared[status] = make_request(self.ctx, self.qw, status)
        return self.shared[status]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    root: Path = tmp_path_factory.mktemp("matrix")
    engine = make_engine(f"sqlite:///{root / 'enclave.sqlite3'}")
    # A throw-away database: durability is not what this module tests.
    event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA synchronous = OFF"))
    upgrade_control(engine)
    upgrade_queue(engine)
    ctx = Context(engine=engine, data_dir=root / "data", clock=FakeClock())
    yield Matrix(ctx, make_queue_world(ctx))
    ctx.close()


def _outputs(ctx: Context, qw: QueueWorld, rid: str) -> list[str]:
    detail = service.get_request(ctx, qw.author, rid)
    return [f.id for f in detail.files if f.kind == "output" and not f.withdrawn]


def _review(ctx: Context, qw: QueueWorld, rid: str, actor: str) -> object:
    for file_id in _outputs(ctx, qw, rid):
        service.vote(ctx, actor, rid, file_id, "approve", comment="fine")
    return service.submit_review(ctx, actor, rid)


def _released_file(ctx: Context, qw: QueueWorld, rid: str) -> str:
    return _outputs(ctx, qw, rid)[0]


def _state(ctx: Context, rid: str) -> tuple[str, int, int, int, int]:
    """Status, turn and row counts of the request's files, votes, reviews and comments."""
    with transaction(ctx.engine, readonly=True) as session:
        request = session.scalars(select(m.Request).where(m.Request.uuid == rid)).one()

        def count(model: Any, column: Any) -> int:
            return int(session.scalar(select(func.count()).select_from(model).where(column)) or 0)

        files = select(m.File.id).where(m.File.request_id == request.id)
        return (
            request.status,
            request.review_turn,
            count(m.File, m.File.request_id == request.id),
            count(m.VoteRow, m.VoteRow.file_id.in_(files)),
            count(m.Review, m.Review.request_id == request.id),
        )


def _head(ctx: Context) -> int:
    with transaction(ctx.engine, readonly=True) as session:
        return int(session.scalar(select(AuditHead.seq)) or 0)


Act = Callable[[Context, QueueWorld, str, str], object]
# action -> (call, roles allowed, statuses allowed for them, changes the request)
ACTIONS: dict[str, tuple[Act, Callable[[str, Status], bool], bool]] = {
    "add_file": (
        lambda c, q, r, a: service.add_file(
            c, a, r, name="extra.csv", data=distinct(passing_output(q, "extra.csv")).data
        ),
        lambda role, s: role == "author" and s in AUTHOR_TURNS,
        True,
    ),
    "set_group": (
        lambda c, q, r, a: service.set_group(c, a, r, "tables", context="c", controls="k"),
        lambda role, s: role == "author" and s in AUTHOR_TURNS,
        True,
    ),
    "submit": (
        lambda c, q, r, a: service.submit(c, a, r),
        lambda role, s: role == "author" and s is S.PENDING,
        True,
    ),
    "resubmit": (
        lambda c, q, r, a: service.resubmit(c, a, r),
        lambda role, s: role == "author" and s is S.RETURNED,
        True,
    ),
    "withdraw": (
        lambda c, q, r, a: service.withdraw(c, a, r),
        lambda role, s: role == "author" and s in AUTHOR_TURNS,
        True,
    ),
    "submit_review": (
        lambda c, q, r, a: _review(c, q, r, a),
        lambda role, s: role in REVIEWERS and s in REVIEW_TURNS,
        True,
    ),
    "return_request": (
        lambda c, q, r, a: service.return_request(c, a, r, comment="please explain"),
        lambda role, s: role in REVIEWERS and s in REVIEW_TURNS,
        True,
    ),
    "reject": (
        lambda c, q, r, a: service.reject(c, a, r, reason="unsafe"),
        lambda role, s: role in REVIEWERS and s is S.REVIEWED,
        True,
    ),
    "approve": (
        lambda c, q, r, a: service.approve(c, a, r, comment="ok"),
        lambda role, s: role in REVIEWERS and s is S.REVIEWED,
        True,
    ),
    "revoke_release": (
        lambda c, q, r, a: service.revoke_release(c, a, r, reason="breach"),
        lambda role, s: role in REVIEWERS | {"admin"} and s in {S.APPROVED, S.RELEASED},
        True,
    ),
    "force_status": (
        lambda c, q, r, a: service.force_status(c, a, r, "withdrawn", reason="author left"),
        lambda role, s: role == "admin" and s in AUTHOR_TURNS | REVIEW_TURNS,
        True,
    ),
    "comment_public": (
        lambda c, q, r, a: service.comment(c, a, r, body="a note", group="tables"),
        lambda role, s: (
            (role in MEMBERS and s in AUTHOR_TURNS) or (role in REVIEWERS and s in REVIEW_TURNS)
        ),
        False,
    ),
    "comment_private": (
        lambda c, q, r, a: service.comment(
            c, a, r, body="between us", group="tables", visibility="private"
        ),
        lambda role, s: role in REVIEWERS and s in REVIEW_TURNS,
        False,
    ),
    "view": (
        lambda c, q, r, a: service.get_request(c, a, r),
        lambda role, s: role in MEMBERS or (role in REVIEWERS and s in SUBMITTED_ONCE),
        False,
    ),
    "record_view": (
        lambda c, q, r, a: service.record_view(c, a, r),
        lambda role, s: role in MEMBERS or (role in REVIEWERS and s in SUBMITTED_ONCE),
        False,
    ),
    "download": (
        lambda c, q, r, a: service.download(c, a, r, _released_file(c, q, r)),
        lambda role, s: role in REVIEWERS and s in SUBMITTED_ONCE,
        False,
    ),
    "download_release": (
        lambda c, q, r, a: service.download_release(c, a, _released_file(c, q, r)),
        lambda role, s: role in MEMBERS | REVIEWERS and s is S.RELEASED,
        False,
    ),
}


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_service_matrix(matrix: Matrix, action: str, status: Status) -> None:
    call, allowed, changes = ACTIONS[action]
    ctx, qw = matrix.ctx, matrix.qw
    rid = matrix.request(status, fresh=False)
    refused = [role for role in ROLES if not allowed(role, status)]
    permitted = [role for role in ROLES if allowed(role, status)]
    for role in refused:
        before, head = _state(ctx, rid), _head(ctx)
        with pytest.raises(ControlError):
            call(ctx, qw, rid, qw.by_role(role))
        assert _state(ctx, rid) == before, f"{role} changed the request while refused {action}"
        outcomes = [e.outcome for e in audit.records(ctx.engine, after_seq=head)]
        assert outcomes == ["refused"], f"{role}: refusal of {action} not audited: {outcomes}"
    for role in permitted[:1] if changes else permitted:
        target = matrix.request(status, fresh=True) if changes else rid
        call(ctx, qw, target, qw.by_role(role))
