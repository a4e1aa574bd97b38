"""Usage data (SATRE 2.2.13-15, 4.4.02): session-hours per person and project from sessions
started and stopped at known clock times, a session never stopped, bytes written in a
project's workspace, the CLI and the admin page with its CSV; nobody but an admin sees it."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from enclave import cli_admin_commands
from enclave.control import audit
from enclave.control.context import Context
from enclave.control.errors import ControlError, InvalidInput
from enclave.control.service import access, members, people, usage
from enclave.control.service.usage import SessionEvent, session_use
from enclave.settings import Settings
from tests.enclave.control.factories import FakeClock, World, audit_tail, make_project
from tests.enclave.control.web.conftest import (  # noqa: F401 - fixtures re-used as they are
    Web,
    app,
    cheap_password_hashing,
    client,
)

OTHER = "second@example.org"  # a second researcher, on p1


def _second_researcher(ctx: Context, world: World) -> None:
    people.create_person(
        ctx, world.admin, email=OTHER, name="Sam Second", organisation="Org", roles=["researcher"]
    )
    today = ctx.today()
    people.accredit(
        ctx,
        world.admin,
        OTHER,
        scheme="Safe Researcher",
        reference="SR-2",
        issued_on=today - timedelta(days=10),
        expires_on=today + timedelta(days=400),
    )
    members.add_member(
        ctx,
        world.admin,
        project="p1",
        email=OTHER,
        role="researcher",
        expires_on=today + timedelta(days=300),
    )


def _session(
    ctx: Context, clock: FakeClock, email: str, project: str, at: str, hours: float
) -> None:
    """Start a session at ``at`` (HH:MM on the clock's day) and stop it ``hours`` later."""
    clock.now = datetime.combine(clock.now.date(), datetime.strptime(at, "%H:%M").time(), UTC)
    assert access.authorize_session(ctx, email=email, project=project).allowed
    clock.advance(hours=hours)
    access.record_session_stop(ctx, email=email, project=project, reason="stopped")


@pytest.fixture
def sessions(ctx: Context, world: World, clock: FakeClock) -> World:
    """p1: the researcher 12:00-13:30, the second researcher 13:00-15:00; p2: the researcher
    14:00-14:30; then the clock at 16:00."""
    make_project(ctx, world, "p1")
    make_project(ctx, world, "p2")
    _second_researcher(ctx, world)
    _session(ctx, clock, world.researcher, "p1", "12:00", 1.5)
    _session(ctx, clock, OTHER, "p1", "13:00", 2)
    _session(ctx, clock, world.researcher, "p2", "14:00", 0.5)
    clock.now = clock.now.replace(hour=16, minute=0)
    return world


def _by(
    rows: tuple[usage.UsageRow, ...], key: str
) -> dict[str, tuple[int, float, tuple[str, ...]]]:
    return {getattr(r, key): (r.sessions, r.hours, r.datasets) for r in rows}


def test_hours_per_person_and_project(ctx: Context, sessions: World) -> None:
    world = sessions
    report = usage.usage_report(ctx, world.admin, start="2026-06-15", end="2026-06-15")
    data = (world.dataset,)
    assert _by(report.projects, "project") == {"p1": (2, 3.5, data), "p2": (1, 0.5, data)}
    assert _by(report.people, "email") == {world.researcher: (2, 2.0, data), OTHER: (1, 2.0, data)}
    charges = {(r.project, r.email): r.hours for r in report.charges}
    assert charges == {
        ("p1", OTHER): 2.0,
        ("p1", world.researcher): 1.5,
        ("p2", world.researcher): 0.5,
    }
    assert audit_tail(ctx) == [("view_usage", "ok", "")]
    assert audit.records(ctx.engine)[-1].detail == {"start": "2026-06-15", "end": "2026-06-15"}

    before = usage.usage_report(ctx, world.admin, start="2026-06-01", end="2026-06-14")
    assert _by(before.projects, "project") == {"p1": (0, 0.0, ()), "p2": (0, 0.0, ())}
    assert before.people == ()


def test_a_session_with_no_stop_counts_until_now(
    ctx: Context, world: World, clock: FakeClock
) -> None:
    make_project(ctx, world, "p1")
    assert access.authorize_session(ctx, email=world.researcher, project="p1").allowed
    clock.advance(hours=6)
    report = usage.usage_report(ctx, world.admin)  # by default: this month up to today
    assert (report.start, report.end) == (date(2026, 6, 1), date(2026, 6, 15))
    assert _by(report.people, "email") == {world.researcher: (1, 6.0, (world.dataset,))}


def _event(at: str, kind: str = "start", **extra: object) -> SessionEvent:
    moment = datetime.fromisoformat(at).replace(tzinfo=UTC)
    return SessionEvent(moment, kind, "r@example.org", "p", **extra)  # type: ignore[arg-type]


def test_session_pairing_rules() -> None:
    """A session is clipped to the range; one never stopped ends at the end of the last day
    its decision held, or now, whichever is first; a start while one is open ends that one;
    a stop with no start (a second stop of the same session) adds nothing but its CPU."""
    day, next_day = datetime(2026, 6, 15, tzinfo=UTC), datetime(2026, 6, 16, tzinfo=UTC)
    now = datetime(2026, 6, 20, tzinfo=UTC)

    def hours(*events: SessionEvent) -> tuple[int, float, float | None]:
        (use,) = session_use(events, day, next_day, now) or [usage.SessionUse("p", "x")]
        return use.sessions, use.hours, use.cpu_seconds

    assert hours(_event("2026-06-14T22:00"), _event("2026-06-15T02:00", "stop")) == (1, 2.0, None)
    lapsed = _event("2026-06-15T20:00", valid_until=date(2026, 6, 15))
    assert hours(lapsed) == (1, 4.0, None)
    assert session_use([lapsed], day, next_day, day + timedelta(hours=21))[0].hours == 1.0
    restarted = (_event("2026-06-15T10:00"), _event("2026-06-15T11:00"))
    assert hours(*restarted, _event("2026-06-15T11:30", "stop")) == (2, 1.5, None)
    twice = (_event("2026-06-15T10:00"), _event("2026-06-15T11:00", "stop"))
    cpu = _event("2026-06-15T11:00", "stop", cpu_seconds=42.5)
    assert hours(*twice, cpu) == (1, 1.0, 42.5)
    assert hours(_event("2026-06-13T10:00"), _event("2026-06-13T11:00", "stop")) == (0, 0.0, None)


def _write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_storage_bytes_of_a_projects_workspace(ctx: Context, world: World, tmp_path: Path) -> None:
    make_project(ctx, world, "p1")
    root = ctx.data_dir / "projects" / "p1"
    _write(root / "data" / "extract.csv", 2000)
    _write(root / "home" / "researcher" / "notes" / "a.ipynb", 1000)
    _write(root / "outbox" / "researcher" / "table.csv", 500)
    _write(root / "home" / "researcher" / ".cache" / "b", 250)
    outside = tmp_path / "elsewhere.bin"
    _write(outside, 10_000)
    (root / "home" / "researcher" / "link").symlink_to(outside)  # not followed, not counted
    _write(ctx.data_dir / "queue" / "blobs" / "ab" / ("ab" * 32), 300)

    report = usage.usage_report(ctx, world.admin)
    (p1,) = report.projects
    assert (p1.project, p1.storage_bytes) == ("p1", 3750)
    assert report.extract_bytes == {"p1": 2000}
    assert {(r.email, r.storage_bytes) for r in report.people} == {(world.researcher, 1750)}
    assert report.snapshot_bytes == 300
    assert p1.storage_mb == 0.004


@pytest.mark.parametrize("role", ["data_custodian", "output_checker", "researcher", "none"])
def test_only_an_admin_sees_usage(ctx: Context, world: World, role: str) -> None:
    with pytest.raises(ControlError) as refused:
        usage.usage_report(ctx, world.by_role(role))
    assert refused.value.rule == "role"
    assert audit_tail(ctx) == [("view_usage", "refused", "role")]


def test_a_bad_range_is_refused(ctx: Context, world: World) -> None:
    with pytest.raises(InvalidInput) as backwards:
        usage.usage_report(ctx, world.admin, start="2026-06-10", end="2026-06-01")
    assert backwards.value.rule == "invalid_date"
    with pytest.raises(InvalidInput, match="not a date"):
        usage.usage_report(ctx, world.admin, start="last week")


def test_the_cli_prints_a_table_per_project_and_person(
    ctx: Context, sessions: World, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(**options: object) -> int:
        given = {"actor": sessions.admin, "start": "2026-06-15", "end": None, **options}
        settings = Settings(data_dir=ctx.data_dir)
        return cli_admin_commands.usage_report(ctx, settings, argparse.Namespace(**given))

    assert run(json=True, csv=False) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["scope"], x["name"], x["sessions"], x["hours"]) for x in lines] == [
        ("project", "p1", 2, "3.50"),
        ("project", "p2", 1, "0.50"),
        ("person", sessions.researcher, 2, "2.00"),
        ("person", OTHER, 1, "2.00"),
    ]
    assert run(json=False, csv=True) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["project"], r["email"], r["hours"], r["datasets"]) for r in rows] == [
        ("p1", sessions.researcher, "1.50", sessions.dataset),
        ("p1", OTHER, "2.00", sessions.dataset),
        ("p2", sessions.researcher, "0.50", sessions.dataset),
    ]


@pytest.fixture
def web(client: FlaskClient, ctx: Context, world: World, clock: FakeClock) -> Web:  # noqa: F811
    return Web(client, ctx, world, clock)


def test_the_admin_page_shows_the_table_and_exports_csv(web: Web, sessions: World) -> None:
    web.login_as("admin")
    assert "/admin/usage" in web.page("/admin/")
    page = web.page("/admin/usage?from=2026-06-15&to=2026-06-15")
    assert 'id="usage-project-p1"' in page and 'id="usage-project-p2"' in page
    assert f'id="usage-email-{OTHER}"' in page and "3.50" in page and "hospital-episodes" in page
    response = web.client.get("/admin/usage/export.csv?from=2026-06-15&to=2026-06-15")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "usage-2026-06-15-2026-06-15.csv" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {(r["project"], r["email"], r["hours"]) for r in rows} == {
        ("p1", OTHER, "2.00"),
        ("p1", sessions.researcher, "1.50"),
        ("p2", sessions.researcher, "0.50"),
    }


def test_a_custodian_gets_no_usage_page(web: Web, sessions: World) -> None:
    web.login_as("data_custodian")
    assert "/admin/usage" not in web.page("/admin/")
    assert web.client.get("/admin/usage").status_code == 403
    assert web.client.get("/admin/usage/export.csv").status_code == 403
