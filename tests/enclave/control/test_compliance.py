"""Recording compliance that expires, organisation assurance and the user agreement; the report
of what expires soon or has lapsed; the records a new project gets; who may do each; the CLI.
What the records mean for sessions and releases is ``test_standing.py``."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from enclave.cli import main
from enclave.control import audit
from enclave.control.context import Context, open_context, standing_policy
from enclave.control.db import transaction
from enclave.control.errors import ControlError, InvalidInput, PermissionDenied, RuleViolation
from enclave.control.models import AgreementAcceptance, ComplianceRecord
from enclave.control.rules import PERMISSIONS, Action
from enclave.control.service import access, compliance, projects
from enclave.control.standing import StandingPolicy
from enclave.control.web import create_app
from enclave.settings import Settings, SettingsError
from tests.enclave.control.factories import (
    FakeClock,
    World,
    audit_tail,
    counts,
    make_project,
    propose,
)
from tests.enclave.control.web.conftest import Web, make_settings

ROLES = ["admin", "data_custodian", "researcher", "output_checker", "datalab_client", "none"]


def _records(ctx: Context, kind: str | None = None) -> list[ComplianceRecord]:
    with transaction(ctx.engine, readonly=True) as session:
        query = select(ComplianceRecord).order_by(ComplianceRecord.id)
        if kind is not None:
            query = query.where(ComplianceRecord.kind == kind)
        return list(session.scalars(query))


def _with_policy(ctx: Context, policy: StandingPolicy) -> Context:
    return Context(engine=ctx.engine, data_dir=ctx.data_dir, clock=ctx.clock, policy=policy)


# ----- a new project's records -------------------------------------------------------------------


def test_a_new_projects_references_become_records_expiring_at_its_end(
    ctx: Context, world: World
) -> None:
    view = propose(ctx, world, "p1")
    rows = _records(ctx)
    assert [(r.kind, r.reference, r.valid_from, r.expires_on) for r in rows] == [
        ("ethics", "ETH-1", view.start_date, view.end_date),
        ("dsa", "DSA-1", view.start_date, view.end_date),
    ]
    (event,) = audit.records(ctx.engine, action="create_project")
    assert event.detail["compliance"] == {
        "ethics": {"record": rows[0].uuid, "expires_on": view.end_date.isoformat()},
        "dsa": {"record": rows[1].uuid, "expires_on": view.end_date.isoformat()},
    }


def test_explicit_expiries_at_creation(ctx: Context, world: World) -> None:
    today = ctx.today()
    projects.create_project(
        ctx,
        world.admin,
        slug="p2",
        title="T",
        lay_summary="L",
        public_benefit="B",
        organisation="University",
        purpose="health_research",
        start_date=today,
        end_date=today + timedelta(days=300),
        ethics_reference="ETH-9",
        dsa_reference="DSA-9",
        ethics_expires_on=today + timedelta(days=90),
    )
    assert {r.kind: r.expires_on for r in _records(ctx)} == {
        "ethics": today + timedelta(days=90),
        "dsa": today + timedelta(days=300),
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dsa_expires_on": "2026-01-01"}, "expires_on 2026-01-01 is before valid_from"),
        ({"dsa_expires_on": "soon"}, "dsa_expires_on 'soon' is not a date"),
        ({"dsa_reference": "", "dsa_expires_on": "2027-01-01"}, "without a dsa reference"),
    ],
)
def test_bad_expiries_at_creation_change_nothing(
    ctx: Context, world: World, changes: dict[str, str], message: str
) -> None:
    before = counts(ctx)
    values: dict[str, object] = {
        "slug": "p3",
        "title": "T",
        "lay_summary": "L",
        "public_benefit": "B",
        "organisation": "University",
        "purpose": "health_research",
        "start_date": ctx.today(),
        "end_date": ctx.today() + timedelta(days=300),
        "ethics_reference": "E",
        "dsa_reference": "D",
        **changes,
    }
    with pytest.raises(InvalidInput, match=message):
        projects.create_project(ctx, world.admin, **values)  # type: ignore[arg-type]
    assert counts(ctx) == before


def test_a_project_from_before_the_records_counts_its_references_until_its_end(
    ctx: Context, world: World, clock: FakeClock
) -> None:
    make_project(ctx, world, "p1", "active")
    with transaction(ctx.engine) as session:  # as a database upgraded from 0002 would be
        for row in session.scalars(select(ComplianceRecord)):
            session.delete(row)
    assert access.authorize_session(ctx, email=world.researcher, project="p1").allowed
    report = compliance.compliance_report(ctx, world.admin, within_days=400)
    assert {(line.subject, line.item, line.status) for line in report} >= {
        ("p1", "dsa", "expiring"),
        ("p1", "ethics", "expiring"),
    }


# ----- recording ---------------------------------------------------------------------------------


def test_recording_an_item_supersedes_the_current_one_and_is_audited(
    ctx: Context, world: World
) -> None:
    make_project(ctx, world, "p1", "active")
    today = ctx.today()
    first = compliance.record_compliance(
        ctx,
        world.admin,
        project="p1",
        kind="funding",
        reference="GRANT-1",
        valid_from=today,
        expires_on=today + timedelta(days=10),
    )
    assert first.superseded is None and first.project == "p1"
    second = compliance.record_compliance(
        ctx,
        world.admin,
        project="p1",
        kind="funding",
        reference="GRANT-2",
        valid_from=today,
        expires_on=today + timedelta(days=400),
    )
    assert second.superseded == first.uuid
    funding = _records(ctx, "funding")
    assert [(r.reference, r.superseded_at is not None) for r in funding] == [
        ("GRANT-1", True),
        ("GRANT-2", False),
    ]
    event = audit.records(ctx.engine)[-1]
    assert (event.action, event.project, event.detail["superseded"]) == (
        "record_compliance",
        "p1",
        first.uuid,
    )
    assert audit.verify(ctx.engine).ok


def test_training_supersedes_only_the_same_course(ctx: Context, world: World) -> None:
    today = ctx.today()
    for course, version in (("safe-data", "v1"), ("safe-outputs", "v1"), ("safe-data", "v2")):
        compliance.record_training(
            ctx,
            world.admin,
            email=world.researcher,
            course=course,
            version=version,
            completed_on=today,
            expires_on=today + timedelta(days=365),
        )
    assert [(r.reference, r.detail, r.superseded_at is None) for r in _records(ctx)] == [
        ("safe-data", "v1", False),
        ("safe-outputs", "v1", True),
        ("safe-data", "v2", True),
    ]


@pytest.mark.parametrize(
    ("changes", "error", "rule"),
    [
        ({"kind": "insurance"}, InvalidInput, "unknown_kind"),
        ({"reference": " "}, InvalidInput, "invalid_input"),
        ({"valid_from": "2026-13-01"}, InvalidInput, "invalid_date"),
        ({"expires_on": "2026-01-01"}, InvalidInput, "invalid_date"),
        ({"project": "nope"}, ControlError, "unknown_project"),
        ({"project": "closed"}, PermissionDenied, "project_state"),
    ],
)
def test_bad_records_are_refused_and_change_nothing(
    ctx: Context, world: World, changes: dict[str, str], error: type[ControlError], rule: str
) -> None:
    make_project(ctx, world, "p1", "active")
    make_project(ctx, world, "closed", "closed", member=False)
    before = counts(ctx)
    values = {
        "project": "p1",
        "kind": "dsa",
        "reference": "DSA-2",
        "valid_from": "2026-06-01",
        "expires_on": "2027-06-01",
        **changes,
    }
    with pytest.raises(error) as refused:
        compliance.record_compliance(ctx, world.admin, **values)
    assert refused.value.rule == rule
    assert counts(ctx) == before


def test_organisation_assurance_is_recorded_renewed_and_withdrawn(
    ctx: Context, world: World
) -> None:
    today = ctx.today()
    org = compliance.record_organisation(
        ctx,
        world.admin,
        name="Org",
        scheme="DSPT",
        reference="8J1",
        assured_until=today + timedelta(days=10),
    )
    assert (org.assured_until, org.withdrawn) == (today + timedelta(days=10), False)
    gone = compliance.withdraw_organisation(ctx, world.admin, name="Org", reason="audit failed")
    assert gone.withdrawn
    back = compliance.record_organisation(
        ctx,
        world.admin,
        name="Org",
        scheme="ISO 27001",
        reference="C-77",
        assured_until=today + timedelta(days=365),
    )
    assert (back.assurance_scheme, back.withdrawn) == ("ISO 27001", False)
    changes = [e.detail["change"] for e in audit.records(ctx.engine, action="record_organisation")]
    assert changes == ["recorded", "withdrawn", "renewed"]
    with pytest.raises(InvalidInput) as unknown:
        compliance.withdraw_organisation(ctx, world.admin, name="Elsewhere", reason="x")
    assert unknown.value.rule == "unknown_organisation"


def test_a_person_accepts_the_current_agreement_for_themselves(ctx: Context, world: World) -> None:
    with pytest.raises(RuleViolation, match="no user agreement is in force"):
        compliance.accept_agreement(ctx, world.researcher)
    strict = _with_policy(ctx, StandingPolicy(user_agreement_version="2026-1"))
    with pytest.raises(RuleViolation, match="in force is version 2026-1"):
        compliance.accept_agreement(strict, world.researcher, version="2025-9")
    assert compliance.accept_agreement(strict, world.researcher, version="2026-1") == "2026-1"
    assert compliance.accept_agreement(strict, world.researcher) == "2026-1"  # again: no new row
    with transaction(ctx.engine, readonly=True) as session:
        rows = session.scalars(select(AgreementAcceptance)).all()
    assert [row.version for row in rows] == ["2026-1"]
    assert audit_tail(ctx, 2) == [("accept_agreement", "ok", ""), ("accept_agreement", "ok", "")]


# ----- the report --------------------------------------------------------------------------------


def test_the_report_lists_what_expires_within_the_window_or_has_lapsed(
    ctx: Context, world: World, clock: FakeClock
) -> None:
    make_project(ctx, world, "p1", "active")
    today = ctx.today()
    compliance.record_compliance(
        ctx,
        world.admin,
        project="p1",
        kind="ethics",
        reference="ETH-2",
        valid_from=today,
        expires_on=today + timedelta(days=20),
    )
    compliance.record_training(
        ctx,
        world.admin,
        email=world.researcher,
        course="safe-data",
        version="v1",
        completed_on=today - timedelta(days=400),
        expires_on=today - timedelta(days=1),
    )
    compliance.record_organisation(
        ctx, world.admin, name="Org", scheme="DSPT", reference="8J1", assured_until=today
    )
    policy = StandingPolicy(required_training=("safe-outputs",))
    lines = compliance.compliance_report(_with_policy(ctx, policy), world.admin)
    found = {(x.subject_kind, x.subject, x.item, x.status, x.required) for x in lines}
    assert found == {
        ("project", "p1", "ethics", "expiring", True),
        ("person", world.researcher, "safe-outputs", "missing", True),
        ("person", world.researcher, "safe-data", "expired", False),
        ("organisation", "Org", "assurance", "expiring", False),
    }
    # a narrower window drops the ethics approval; lapsed items stay
    narrow = compliance.compliance_report(ctx, world.admin, within_days=5)
    assert {(x.subject, x.item, x.status) for x in narrow} == {
        (world.researcher, "safe-data", "expired"),
        ("Org", "assurance", "expiring"),
    }
    with pytest.raises(InvalidInput, match="within_days"):
        compliance.compliance_report(ctx, world.admin, within_days=-1)


# ----- who may do what ---------------------------------------------------------------------------

ACTIONS: dict[Action, Callable[[Context, World, str], object]] = {
    Action.RECORD_COMPLIANCE: lambda ctx, w, a: compliance.record_compliance(
        ctx,
        a,
        project="p1",
        kind="dpia",
        reference="DPIA-1",
        valid_from="2026-06-01",
        expires_on="2027-06-01",
    ),
    Action.RECORD_ORGANISATION: lambda ctx, w, a: compliance.record_organisation(
        ctx, a, name="Org", scheme="DSPT", reference="8J1", assured_until="2027-01-01"
    ),
    Action.ACCEPT_AGREEMENT: lambda ctx, w, a: compliance.accept_agreement(
        _with_policy(ctx, StandingPolicy(user_agreement_version="v1")), a
    ),
    Action.COMPLIANCE_REPORT: lambda ctx, w, a: compliance.compliance_report(ctx, a),
}


@pytest.mark.parametrize("action", sorted(ACTIONS, key=str))
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix_of_the_compliance_actions(
    ctx: Context, world: World, role: str, action: Action
) -> None:
    make_project(ctx, world, "p1", "active", grant=None)
    actor = world.by_role(role)
    if role in PERMISSIONS[action]:
        ACTIONS[action](ctx, world, actor)
        return
    before = counts(ctx)
    with pytest.raises(PermissionDenied) as refused:
        ACTIONS[action](ctx, world, actor)
    assert refused.value.rule == "role"
    assert audit_tail(ctx) == [(action.value, "refused", "role")]
    assert counts(ctx) == before


# ----- settings and the command line -------------------------------------------------------------


def test_the_policy_comes_from_the_settings() -> None:
    settings = Settings.load(
        {
            "ENCLAVE_REQUIRED_PROJECT_COMPLIANCE": "dsa, ethics, funding",
            "ENCLAVE_REQUIRED_TRAINING": "safe-data",
            "ENCLAVE_ORGANISATION_ASSURANCE_REQUIRED": "true",
            "ENCLAVE_USER_AGREEMENT_VERSION": "2026-1",
            "ENCLAVE_COMPLIANCE_WARNING_DAYS": "14",
        }
    )
    assert standing_policy(settings) == StandingPolicy(
        ("dsa", "ethics", "funding"), ("safe-data",), True, "2026-1", 14
    )
    assert standing_policy(Settings()) == StandingPolicy()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ENCLAVE_REQUIRED_PROJECT_COMPLIANCE", "dsa,insurance", "unknown kind"),
        ("ENCLAVE_ORGANISATION_ASSURANCE_REQUIRED", "maybe", "must be true or false"),
        ("ENCLAVE_COMPLIANCE_WARNING_DAYS", "-3", "must not be negative"),
        ("ENCLAVE_COMPLIANCE_WARNING_DAYS", "soon", "must be an integer"),
    ],
)
def test_bad_policy_settings_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.load({name: value})


def _cli(
    capsys: pytest.CaptureFixture[str], settings: Settings, command: str
) -> tuple[int, str, str]:
    config = settings.data_dir / "enclave.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'data_dir = "{settings.data_dir}"\ndatabase_url = "{settings.database_url}"\n'
        'user_agreement_version = "2026-1"\n',
        encoding="utf-8",
    )
    argv = shlex.split(command)
    code = main([*argv[:2], "--config", str(config), *argv[2:]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command_line(
    ctx: Context, world: World, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_project(ctx, world, "p1", "active")
    settings = Settings(data_dir=ctx.data_dir, database_url=database_url)
    admin = f"--as {world.admin}"
    today = datetime.now(UTC).date()  # the command line runs on the real clock
    year = today + timedelta(days=365)
    code, out, err = _cli(
        capsys,
        settings,
        f"admin record-compliance {admin} p1 --kind ethics --reference ETH-7 "
        f"--valid-from {today} --expires-on {today + timedelta(days=20)}",
    )
    assert code == 0, err
    assert out.startswith("recorded\tp1\tethics\t")
    code, out, err = _cli(
        capsys,
        settings,
        f"admin record-training {admin} {world.researcher} --course safe-data --version v2 "
        f"--completed-on {today} --expires-on {year}",
    )
    assert code == 0 and out.startswith("recorded training\tsafe-data\tv2\t"), err
    code, out, err = _cli(
        capsys,
        settings,
        f"admin organisation {admin} Org --scheme DSPT --reference 8J1 --assured-until {year}",
    )
    assert (code, out) == (0, f"organisation\tOrg\tassured\tDSPT\t{year}\n"), err
    code, out, err = _cli(capsys, settings, f"admin organisation {admin} Org --withdraw")
    assert (code, out) == (2, "")
    assert err == "enclave: error: --withdraw needs --reason [invalid_input]\n"
    code, out, err = _cli(
        capsys, settings, f"admin organisation {admin} Org --withdraw --reason 'DSPT lapsed'"
    )
    assert code == 0 and "\twithdrawn\t" in out, err
    code, out, err = _cli(capsys, settings, f"admin organisation {admin} Other --scheme DSPT")
    assert code == 2
    assert "needs --reference, --assured-until" in err
    code, out, err = _cli(capsys, settings, f"admin compliance-report {admin} --json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert {(x["subject"], x["item"], x["status"]) for x in lines} == {
        ("p1", "ethics", "expiring"),
        ("Org", "assurance", "withdrawn"),
    }
    code, out, err = _cli(capsys, settings, f"admin accept-agreement --as {world.researcher}")
    assert (code, out) == (0, "accepted user agreement\t2026-1\n"), err
    code, out, err = _cli(
        capsys, settings, f"admin record-compliance --as {world.researcher} p1 --kind dsa "
        f"--reference X --valid-from {today} --expires-on {year}",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err.endswith("[role]\n")


def test_open_context_carries_the_policy(database_url: str, ctx: Context) -> None:
    settings = Settings(
        data_dir=ctx.data_dir, database_url=database_url, required_training=("safe-data",)
    )
    opened = open_context(settings)
    try:
        assert opened.policy.required_training == ("safe-data",)
    finally:
        opened.close()


def test_a_person_accepts_the_agreement_on_the_web(
    ctx: Context, world: World, clock: FakeClock, database_url: str
) -> None:
    strict = _with_policy(ctx, StandingPolicy(user_agreement_version="2026-1"))
    make_project(ctx, world, "p1", "active")
    app = create_app(make_settings(strict, database_url), context=strict, testing=True)
    web = Web(app.test_client(), strict, world, clock)
    assert web.login(world.researcher).status_code == 303
    page = web.page("/agreement")
    assert "must accept the user agreement, version 2026-1" in page
    assert not access.authorize_session(strict, email=world.researcher, project="p1").allowed
    stale = web.post("/agreement", {"version": "2025-9"})  # a page shown before a new version
    assert stale.status_code >= 400
    assert web.post("/agreement", {"version": "2026-1"}).status_code == 303
    assert "You have accepted the user agreement, version 2026-1." in web.page("/agreement")
    assert access.authorize_session(strict, email=world.researcher, project="p1").allowed
    assert web.client.post("/agreement", data={"version": "2026-1"}).status_code == 400  # CSRF
