"""Bearer tokens: shown once, stored hashed, expiring, revocable, refusals audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from enclave.control.context import Context
from enclave.control.credentials import token_digest
from enclave.control.db import transaction
from enclave.control.errors import AuthenticationFailed, ControlError
from enclave.control.models import ApiToken
from enclave.control.service import people, tokens
from tests.enclave.control.factories import FakeClock, World, audit_tail
from tests.enclave.control.mfa import fresh_code


def test_token_is_stored_only_as_its_hash(ctx: Context, world: World) -> None:
    code = fresh_code(ctx, world.admin)
    issued = tokens.issue_token(ctx, world.admin, world.custodian, label="automation", totp=code)
    assert issued.token.startswith("enc_") and len(issued.token) > 40
    with transaction(ctx.engine, readonly=True) as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    assert stored == [token_digest(issued.token)]
    assert issued.token not in stored
    assert tokens.verify_token(ctx, issued.token).email == world.custodian
    # a custodian's token: the settings' lifetime capped to a privileged person's bound
    assert issued.info.expires_at - issued.info.created_at == tokens.PRIVILEGED_MAX_LIFETIME


@pytest.mark.parametrize("problem", ["unknown", "revoked", "expired", "suspended"])
def test_bad_tokens_are_refused_and_audited(
    ctx: Context, world: World, clock: FakeClock, problem: str
) -> None:
    issued = tokens.issue_token(
        ctx,
        world.admin,
        world.custodian,
        label="ci",
        lifetime=timedelta(hours=1),
        totp=fresh_code(ctx, world.admin),
    )
    token = issued.token
    if problem == "unknown":
        token = token[:-2] + "xx"
    elif problem == "revoked":
        tokens.revoke_token(ctx, world.custodian, issued.info.uuid)
    elif problem == "expired":
        clock.advance(hours=1)
    else:
        people.set_active(ctx, world.admin, world.custodian, active=False, reason="left")
    with pytest.raises(AuthenticationFailed, match="bearer token not accepted"):
        tokens.verify_token(ctx, token)
    assert audit_tail(ctx)[0][:2] == ("token_auth", "refused")


def test_people_manage_their_own_tokens_only(ctx: Context, world: World) -> None:
    mine = tokens.issue_token(ctx, world.researcher, world.researcher, label="mine")
    with pytest.raises(ControlError) as error:
        tokens.issue_token(ctx, world.researcher, world.checker, label="theirs")
    assert error.value.rule == "role"
    other = tokens.issue_token(
        ctx, world.admin, world.checker, label="theirs", totp=fresh_code(ctx, world.admin)
    )
    with pytest.raises(ControlError):
        tokens.revoke_token(ctx, world.researcher, other.info.uuid)
    assert [t.label for t in tokens.list_tokens(ctx, world.researcher)] == ["mine"]
    assert [t.uuid for t in tokens.list_tokens(ctx, world.admin, world.checker)] == [
        other.info.uuid
    ]
    assert tokens.revoke_token(ctx, world.researcher, mine.info.uuid).revoked_at is not None


def test_lifetime_is_bounded(ctx: Context, world: World) -> None:
    with pytest.raises(ControlError) as error:
        tokens.issue_token(ctx, world.admin, world.admin, label="x", lifetime=timedelta(days=999))
    assert error.value.rule == "token_lifetime"
