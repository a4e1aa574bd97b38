"""A login an identity provider vouches for (the hub's OIDC, the queue's hub OAuth) needs the
same standing as a password login: a sanctioned person is refused, and the refusal audited."""

from __future__ import annotations

import pytest

from enclave.control.context import Context
from enclave.control.errors import AuthenticationFailed
from enclave.control.service import incidents, people
from enclave.control.service.login_guard import vouched_login_in_standing
from tests.enclave.control.factories import World, audit_tail


def test_a_sanctioned_person_is_refused_though_the_provider_vouched(
    ctx: Context, world: World
) -> None:
    username = people.get_person(ctx, world.admin, world.researcher).username
    assert vouched_login_in_standing(ctx, username, method="oidc").email == world.researcher
    assert audit_tail(ctx) == [("login", "ok", "")]
    incidents.suspend_person(ctx, world.admin, world.researcher, reason="breach under review")
    with pytest.raises(AuthenticationFailed, match="login refused") as refused:
        vouched_login_in_standing(ctx, username, method="hub_oauth")
    assert refused.value.rule == "sanctioned"
    assert audit_tail(ctx) == [("login", "refused", "sanctioned")]
    with pytest.raises(AuthenticationFailed, match="no active account"):
        vouched_login_in_standing(ctx, "nobody-here", method="oidc")
