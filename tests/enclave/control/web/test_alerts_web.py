"""The admin's security-alert queue on the web: an open alert is listed with its review form,
reviewing it closes it, a forged or non-admin review changes nothing; a person's page shows
their sanctions."""

from __future__ import annotations

import pytest

from enclave.control.context import Context
from enclave.control.errors import AuthenticationFailed
from enclave.control.service import alerts, incidents, login_guard, people
from tests.enclave.control.factories import World, audit_tail, counts
from tests.enclave.control.web.conftest import Web


def _alert(ctx: Context, email: str) -> alerts.AlertView:
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            login_guard.login(ctx, email, "wrong password", "000000")
    (alert,) = alerts.scan(ctx).raised
    return alert


def test_the_admin_sees_an_open_alert_and_reviewing_it_closes_it(
    web: Web, ctx: Context, world: World
) -> None:
    alert = _alert(ctx, world.nobody)
    web.login_as("admin")
    assert "Security alerts" in web.page("/admin/")
    page = web.page("/admin/alerts")
    assert f'id="alert-{alert.uuid}"' in page and world.nobody in page
    assert "failed logins" in page and f"/admin/alerts/{alert.uuid}/review" in page

    forged = web.client.post(
        f"/admin/alerts/{alert.uuid}/review", data={"outcome": "benign", "note": "x"}
    )
    assert forged.status_code == 400
    assert alerts.list_alerts(ctx, world.admin)[0].open

    response = web.post(
        f"/admin/alerts/{alert.uuid}/review",
        {"outcome": "incident", "note": "credential stuffing from one address"},
    )
    assert (response.status_code, response.headers["Location"]) == (303, "/admin/alerts")
    page = web.page("/admin/alerts")
    assert "closed as incident" in page and "No open alerts." in page
    assert alerts.list_alerts(ctx, world.admin) == []
    assert audit_tail(ctx) == [("review_alert", "ok", "")]
    assert "credential stuffing" in web.page("/admin/alerts?all=1")

    twice = web.post(f"/admin/alerts/{alert.uuid}/review", {"outcome": "benign", "note": "x"})
    assert "already reviewed" in web.page(twice.headers["Location"])


def test_a_non_admin_can_neither_see_nor_review_alerts(
    web: Web, ctx: Context, world: World
) -> None:
    alert = _alert(ctx, world.nobody)
    web.login_as("data_custodian")
    assert web.client.get("/admin/alerts").status_code == 403
    before = counts(ctx)
    response = web.post(
        f"/admin/alerts/{alert.uuid}/review", {"outcome": "benign", "note": "nothing to see"}
    )
    assert response.status_code == 403
    assert counts(ctx) == before
    assert alerts.list_alerts(ctx, world.admin)[0].open
    assert audit_tail(ctx) == [("review_alert", "refused", "role")]


def test_a_persons_page_shows_their_sanctions(web: Web, ctx: Context, world: World) -> None:
    sanction = incidents.suspend_person(ctx, world.admin, world.researcher, "shared login")
    web.login_as("admin")
    person = people.get_person(ctx, world.admin, world.researcher)
    page = web.page(f"/admin/people/{person.uuid}")
    assert f'id="sanction-{sanction.sanction.uuid}"' in page
    assert "shared login" in page and "in force" in page
