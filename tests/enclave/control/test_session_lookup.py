"""The lookups every web request makes, in as few round trips as they can: the person behind
a login session (one read transaction), a bearer token's owner (one query), and read-only
transactions that PostgreSQL opens as READ ONLY."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.models import AuditHead
from enclave.control.service import login_guard, people, tokens
from tests.enclave.control.factories import World
from tests.enclave.control.mfa import fresh_code


class Statements:
    """The queries the engine runs while counting (not SQLite's BEGIN)."""

    def __init__(self, ctx: Context) -> None:
        self.seen: list[str] = []
        event.listen(ctx.engine, "before_cursor_execute", self._one)

    def _one(self, *args: object) -> None:
        if str(args[2]).startswith("SELECT"):
            self.seen.append(str(args[2]))


def test_session_person_is_the_person_until_logout(ctx: Context, world: World) -> None:
    expected = people.get_person(ctx, world.checker, world.checker)
    statements = Statements(ctx)
    assert login_guard.session_person(ctx, expected.uuid, "sid-1") == expected
    # the person with roles and accreditations, the logout, the sanctions in force
    assert len(statements.seen) <= 3
    login_guard.logout(ctx, world.checker, "sid-1")
    assert login_guard.session_person(ctx, expected.uuid, "sid-1") is None
    assert login_guard.session_person(ctx, expected.uuid, "sid-2") == expected


def test_session_person_refuses_suspended_and_unknown_accounts(ctx: Context, world: World) -> None:
    person = people.get_person(ctx, world.researcher, world.researcher)
    people.set_active(ctx, world.admin, world.researcher, active=False, reason="left")
    assert login_guard.session_person(ctx, person.uuid, "sid") is None
    assert login_guard.session_person(ctx, "00000000-0000-0000-0000-000000000000", "sid") is None


def test_verify_token_is_one_query(ctx: Context, world: World) -> None:
    code = fresh_code(ctx, world.checker)
    issued = tokens.issue_token(ctx, world.checker, world.checker, label="t", totp=code)
    statements = Statements(ctx)
    owner = tokens.verify_token(ctx, issued.token)
    assert owner == people.get_person(ctx, world.checker, world.checker)
    assert owner.roles == ("output_checker",) and owner.accredited_until is not None
    token_queries = [s for s in statements.seen if "api_tokens" in s]
    assert len(token_queries) == 1 and token_queries[0] == statements.seen[0]


def test_read_only_transactions_run_beside_a_writer_and_cannot_write(ctx: Context) -> None:
    with transaction(ctx.engine) as writer:
        writer.get_one(AuditHead, 1).seq += 0  # the write lock is held from here
        with transaction(ctx.engine, readonly=True) as reader:  # would wait for the lock
            assert reader.get_one(AuditHead, 1) is not None
    if ctx.engine.dialect.name != "postgresql":
        return  # SQLite's read transactions only skip the write lock; PostgreSQL enforces it
    refused = pytest.raises(DBAPIError, match="read-only transaction")
    with refused, transaction(ctx.engine, readonly=True) as session:
        session.get_one(AuditHead, 1).seq += 1
        session.flush()
    # The pooled connection is not left read-only for the next writer.
    with transaction(ctx.engine) as session:
        assert session.execute(text("SHOW transaction_read_only")).scalar() == "off"
    with transaction(ctx.engine, readonly=True) as session:
        assert session.execute(text("SHOW transaction_read_only")).scalar() == "on"
