"""Security-log alerts, raised by doing what they watch for: failed logins up to the lockout,
refused session starts, an attempt by a sanctioned person, unusual export volume. Each
occurrence raises exactly one alert however often the log is scanned, alerts carry no
person-level data, and only admins scan, list and review them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.errors import AuthenticationFailed, ControlError, PermissionDenied
from enclave.control.service import access, alerts, incidents, login_guard
from enclave.control.service.alerts import Event, Thresholds, find_alerts
from tests.enclave.control.factories import FakeClock, World, audit_tail, counts, make_project


def _fail_login(ctx: Context, email: str) -> None:
    with pytest.raises(AuthenticationFailed):
        login_guard.login(ctx, email, "not the password", "000000")


def _kinds(report: alerts.ScanReport) -> list[tuple[str, str]]:
    return [(a.kind, a.subject) for a in report.raised]


def test_five_failed_logins_raise_exactly_one_alert_even_after_two_scans(
    ctx: Context, world: World, clock: FakeClock
) -> None:
    for _ in range(4):
        _fail_login(ctx, world.researcher)
        clock.advance(seconds=20)
    assert alerts.scan(ctx).raised == ()  # four: not yet locked out
    _fail_login(ctx, world.researcher)
    _fail_login(ctx, world.researcher)  # refused by the lockout itself
    first = alerts.scan(ctx)
    assert _kinds(first) == [("failed_logins", world.researcher)]
    assert first.raised[0].detail == {
        "failures": 5,
        "window_minutes": 15,
        "at": audit.records(ctx.engine, action="login")[4].at,
    }
    events = len(audit.records(ctx.engine))
    again = alerts.scan(ctx)
    assert again.raised == () and again.read == 0
    assert len(audit.records(ctx.engine)) == events  # an idle scan writes nothing
    _fail_login(ctx, world.researcher)  # still locked out: the same occurrence
    assert alerts.scan(ctx).raised == ()
    assert len(alerts.list_alerts(ctx, world.admin)) == 1

    clock.advance(minutes=30)  # the lockout has aged out: a new burst is a new alert
    for _ in range(5):
        _fail_login(ctx, world.researcher)
    assert _kinds(alerts.scan(ctx)) == [("failed_logins", world.researcher)]
    assert len(alerts.list_alerts(ctx, world.admin)) == 2


def test_repeated_refused_session_starts_raise_one_alert_per_burst(
    ctx: Context, world: World, clock: FakeClock
) -> None:
    make_project(ctx, world, "p1", member=False)
    for _ in range(2):
        assert not access.authorize_session(ctx, email=world.researcher, project="p1").allowed
        clock.advance(minutes=20)
    assert alerts.scan(ctx).raised == ()
    for _ in range(2):  # the third within the hour raises it, the fourth adds nothing
        access.authorize_session(ctx, email=world.researcher, project="p1")
    report = alerts.scan(ctx)
    assert _kinds(report) == [("refused_access", world.researcher)]
    assert report.raised[0].detail["refusals"] == 3
    assert report.raised[0].detail["rules"] == ["membership"]
    assert report.raised[0].detail["projects"] == ["p1"]
    assert alerts.scan(ctx).raised == ()


def test_an_attempt_by_a_sanctioned_person_raises_an_alert_at_once(
    ctx: Context, world: World
) -> None:
    make_project(ctx, world, "p1")
    incidents.suspend_person(ctx, world.admin, world.researcher, "shared their login")
    for _ in range(2):  # a client that retries: one alert
        assert access.authorize_session(ctx, email=world.researcher, project="p1").rule == (
            "sanctioned"
        )
    report = alerts.scan(ctx)
    assert _kinds(report) == [("blocked_attempt", world.researcher)]
    detail = report.raised[0].detail
    assert {k: detail[k] for k in ("action", "rule", "project")} == {
        "action": "start_session",
        "rule": "sanctioned",
        "project": "p1",
    }
    assert "shared their login" not in str(detail)


def _release(ctx: Context, world: World, project: str, n: int, files: int = 1) -> None:
    for i in range(n):
        names = [f"table-{i}-{j}.csv" for j in range(files)]
        access.release_output(ctx, world.checker, project, request_id=f"r-{i}", files=names)


def test_unusual_export_volume_raises_one_alert_per_project_and_day(
    ctx: Context, world: World, clock: FakeClock
) -> None:
    limits = Thresholds(releases_per_day=2, files_per_day=5)
    for slug in ("p1", "p2", "p3"):
        make_project(ctx, world, slug)
    _release(ctx, world, "p1", 2)
    _release(ctx, world, "p3", 1, files=5)
    assert alerts.scan(ctx, limits=limits).raised == ()  # at the limits, not above
    _release(ctx, world, "p1", 1)
    _release(ctx, world, "p2", 1, files=6)
    report = alerts.scan(ctx, limits=limits)
    assert _kinds(report) == [("export_volume", "p1"), ("export_volume", "p2")]
    assert {k: report.raised[0].detail[k] for k in ("day", "releases", "files")} == {
        "day": ctx.today().isoformat(),
        "releases": 3,
        "files": 3,
    }
    _release(ctx, world, "p1", 1)
    assert alerts.scan(ctx, limits=limits).raised == ()  # the same day: already raised
    clock.advance(days=1)
    _release(ctx, world, "p1", 3)
    assert _kinds(alerts.scan(ctx, limits=limits)) == [("export_volume", "p1")]


def test_an_admin_reviews_an_alert_and_it_leaves_the_open_queue(ctx: Context, world: World) -> None:
    for _ in range(5):
        _fail_login(ctx, world.custodian)
    (alert,) = alerts.scan(ctx, actor=world.admin).raised
    assert audit.records(ctx.engine, action="scan_alerts")[-1].actor == world.admin
    with pytest.raises(ControlError) as bad:
        alerts.review_alert(ctx, world.admin, alert.uuid, "fine", "x")
    assert bad.value.rule == "invalid_outcome"
    reviewed = alerts.review_alert(ctx, world.admin, alert.uuid, "benign", "forgot password")
    assert (reviewed.open, reviewed.outcome, reviewed.reviewed_by) == (
        False,
        "benign",
        world.admin,
    )
    assert alerts.list_alerts(ctx, world.admin) == []
    assert alerts.list_alerts(ctx, world.admin, open_only=False) == [reviewed]
    assert audit_tail(ctx) == [("review_alert", "ok", "")]
    with pytest.raises(ControlError) as twice:
        alerts.review_alert(ctx, world.admin, alert.uuid, "incident", "second look")
    assert twice.value.rule == "reviewed"
    with pytest.raises(ControlError) as unknown:
        alerts.review_alert(ctx, world.admin, "no-such-alert", "benign", "x")
    assert unknown.value.rule == "unknown_alert"


@pytest.mark.parametrize("role", ["researcher", "output_checker", "data_custodian", "none"])
def test_only_admins_scan_list_and_review_alerts(ctx: Context, world: World, role: str) -> None:
    for _ in range(5):
        _fail_login(ctx, world.client)
    (alert,) = alerts.scan(ctx).raised
    actor = world.by_role(role)
    calls: dict[str, Any] = {
        "list_alerts": lambda: alerts.list_alerts(ctx, actor),
        "review_alert": lambda: alerts.review_alert(ctx, actor, alert.uuid, "benign", "mine"),
        "scan_alerts": lambda: alerts.scan(ctx, actor=actor),
    }
    for name, call in calls.items():
        before = counts(ctx)
        with pytest.raises(PermissionDenied) as refused:
            call()
        assert refused.value.rule == "role"
        assert audit_tail(ctx) == [(name, "refused", "role")]
        assert counts(ctx) == before
    assert alerts.list_alerts(ctx, world.admin)[0].open


# --- the pure rules --------------------------------------------------------------------------

T0 = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def _login(seq: int, minutes: float, ok: bool = False, email: str = "a@example.org") -> Event:
    return Event(
        seq,
        T0 + timedelta(minutes=minutes),
        email,
        "login",
        "ok" if ok else "refused",
        None,
        {} if ok else {"reason": "unknown account or wrong password"},
    )


def test_a_successful_login_resets_the_count_and_failures_age_out_of_the_window() -> None:
    limits = Thresholds(failed_logins=3, login_window=timedelta(minutes=10))
    reset = [_login(1, 0), _login(2, 1), _login(3, 2, ok=True), _login(4, 3), _login(5, 4)]
    assert find_alerts(reset, limits=limits) == []
    aged = [_login(1, 0), _login(2, 1), _login(3, 12), _login(4, 13)]
    assert find_alerts(aged, limits=limits) == []
    burst = [*aged, _login(5, 14)]
    (found,) = find_alerts(burst, limits=limits)
    assert (found.kind, found.key, found.trigger) == ("failed_logins", "failed_logins:5", 5)
    assert find_alerts(burst, after_seq=5, limits=limits) == []  # seen by an earlier scan
    other = [*burst, _login(6, 14, email="b@example.org")]
    assert [c.subject for c in find_alerts(other, limits=limits)] == ["a@example.org"]
