"""Standing: the pure rules (every status and boundary), then the attacks through every door
they guard: session start, the hub enforcer's read-only re-check, login, release approval and
the release worker. Sanctions and freezes are written straight through the ORM here: another
part of the control plane imposes them; this one only reads them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta

import pyotp
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from enclave.control import audit
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.db import upgrade as upgrade_control
from enclave.control.errors import AuthenticationFailed, ControlError
from enclave.control.models import ComplianceRecord, Freeze, Person, Project, Sanction
from enclave.control.service import access, compliance, login_guard, people
from enclave.control.standing import (
    FreezeFact,
    ItemStatus,
    OrganisationFact,
    PersonFacts,
    ProjectFacts,
    Record,
    SanctionFact,
    StandingPolicy,
    person_standing,
    project_standing,
    record_states,
    status_on,
)
from output_checker.queue import release, service
from output_checker.queue.db import upgrade as upgrade_queue
from output_checker.queue.workflow import Status
from tests.enclave.control.factories import FakeClock, World, audit_tail, make_project
from tests.enclave.control.web import conftest as web_fixtures
from tests.enclave.control.web.conftest import PASSWORD, Web
from tests.output_checker.queue.factories import QueueWorld, make_queue_world, make_request

# the web tests' fixtures, for the login page
app, client, web = web_fixtures.app, web_fixtures.client, web_fixtures.web
cheap_password_hashing = web_fixtures.cheap_password_hashing

TODAY = date(2026, 6, 15)
POLICY = StandingPolicy()
ORG = "the organisation 'Org'"


# ----- the pure rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires", "status"),
    [
        (TODAY + timedelta(days=31), ItemStatus.VALID),
        (TODAY + timedelta(days=30), ItemStatus.EXPIRING),  # the window's last day
        (TODAY, ItemStatus.EXPIRING),  # the expiry day itself is still in force
        (TODAY - timedelta(days=1), ItemStatus.EXPIRED),  # one day after
    ],
)
def test_status_around_the_expiry_and_the_warning_window(expires: date, status: ItemStatus) -> None:
    found = status_on(TODAY - timedelta(days=100), expires, TODAY, 30)
    assert found is status
    assert found.in_force is (status is not ItemStatus.EXPIRED)


def test_an_item_not_yet_valid_counts_as_missing() -> None:
    assert status_on(TODAY + timedelta(days=1), TODAY + timedelta(days=99), TODAY, 30) is (
        ItemStatus.MISSING
    )
    assert status_on(TODAY, TODAY + timedelta(days=99), TODAY, 30) is ItemStatus.VALID


def test_states_list_required_items_first_and_recorded_ones_always() -> None:
    funding = Record("funding", "F-1", TODAY - timedelta(days=9), TODAY - timedelta(days=1))
    states = record_states([funding], ("dsa",), TODAY, 30)
    assert [(s.item, s.status, s.required) for s in states] == [
        ("dsa", ItemStatus.MISSING, True),
        ("funding", ItemStatus.EXPIRED, False),
    ]


def _project(*records: Record, freezes: tuple[FreezeFact, ...] = ()) -> ProjectFacts:
    return ProjectFacts(records=records, freezes=freezes)


def _item(kind: str, expires: date, reference: str = "REF") -> Record:
    return Record(kind, reference, TODAY - timedelta(days=200), expires)


GOOD = (_item("dsa", TODAY + timedelta(days=99)), _item("ethics", TODAY + timedelta(days=99)))


def test_a_project_with_its_items_in_force_is_in_standing() -> None:
    standing = project_standing(_project(*GOOD), TODAY, POLICY)
    assert standing.ok and standing.rule is None
    assert {s.item: s.status for s in standing.items} == {
        "dsa": ItemStatus.VALID,
        "ethics": ItemStatus.VALID,
    }


def test_ethics_expired_yesterday_lapses_the_project() -> None:
    lapsed = (GOOD[0], _item("ethics", TODAY - timedelta(days=1)))
    standing = project_standing(_project(*lapsed), TODAY, POLICY)
    assert standing.rule == "compliance_lapsed"
    assert standing.reason == "the project's ethics approval expired on 2026-06-14"


def test_missing_items_lapse_only_when_required() -> None:
    only_ethics = _project(GOOD[1])
    missing = project_standing(only_ethics, TODAY, POLICY)
    assert (missing.rule, missing.reason) == (
        "compliance_lapsed",
        "the project's data-sharing agreement is missing",
    )
    assert project_standing(only_ethics, TODAY, StandingPolicy(("ethics",))).ok
    with_funding = StandingPolicy(("dsa", "ethics", "funding"))
    assert project_standing(_project(*GOOD), TODAY, with_funding).rule == "compliance_lapsed"
    funded = _project(*GOOD, _item("funding", TODAY))
    assert project_standing(funded, TODAY, with_funding).ok


def test_a_recorded_item_is_enforced_even_when_not_required() -> None:
    expired_dpia = _project(*GOOD, _item("dpia", TODAY - timedelta(days=1)))
    standing = project_standing(expired_dpia, TODAY, StandingPolicy(()))
    assert standing.rule == "compliance_lapsed"
    assert "data protection impact assessment expired" in standing.reason


def test_freezes_of_the_project_or_the_whole_enclave() -> None:
    mine = project_standing(_project(*GOOD, freezes=(FreezeFact(False),)), TODAY, POLICY)
    assert (mine.rule, mine.reason) == ("frozen", "the project is frozen after an incident")
    everyone = project_standing(_project(*GOOD, freezes=(FreezeFact(True),)), TODAY, POLICY)
    assert everyone.reason == "the whole enclave is frozen after an incident"
    assert project_standing(_project(*GOOD, freezes=(FreezeFact(True, True),)), TODAY, POLICY).ok
    # a freeze is named before a lapse: it is the reason to look at first
    both = _project(_item("dsa", TODAY - timedelta(days=5)), freezes=(FreezeFact(False),))
    assert project_standing(both, TODAY, POLICY).rule == "frozen"


def _person(**changes: object) -> PersonFacts:
    values: dict[str, object] = {"organisation": "Org", "assurance": None}
    values.update(changes)
    return PersonFacts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sanction", "active"),
    [
        (SanctionFact("suspended"), True),
        (SanctionFact("suspended", lifted=True), False),
        (SanctionFact("barred"), True),
        (SanctionFact("barred", lifted=True), True),  # a bar never lifts...
        (SanctionFact("barred", overturned=True), False),  # ...unless an appeal overturns it
        (SanctionFact("suspended", overturned=True), False),
    ],
)
def test_sanctions(sanction: SanctionFact, active: bool) -> None:
    standing = person_standing(_person(sanctions=(sanction,)), TODAY, POLICY)
    assert standing.ok is not active
    if active:
        assert (standing.rule, standing.reason) == (
            "sanctioned",
            f"the account is {sanction.kind} from the enclave",
        )


@pytest.mark.parametrize(
    ("assurance", "required", "rule", "reason"),
    [
        (None, False, None, "in standing"),
        (
            None,
            True,
            "organisation_assurance",
            "the assurance of the organisation 'Org' is missing",
        ),
        (OrganisationFact("Org", TODAY), True, None, "in standing"),
        (
            OrganisationFact("Org", TODAY - timedelta(days=1)),
            False,
            "organisation_assurance",
            f"the assurance of {ORG} expired on 2026-06-14",
        ),
        (
            OrganisationFact("Org", TODAY + timedelta(days=300), withdrawn=True),
            False,
            "organisation_assurance",
            f"the assurance of {ORG} was withdrawn",
        ),
    ],
)
def test_organisation_assurance(
    assurance: OrganisationFact | None, required: bool, rule: str | None, reason: str
) -> None:
    policy = StandingPolicy(organisation_assurance=required)
    standing = person_standing(_person(assurance=assurance), TODAY, policy)
    assert (standing.rule, standing.reason) == (rule, reason)


def test_training_expired_or_missing_when_required() -> None:
    course = Record("training", "safe-researcher", TODAY - timedelta(days=400), TODAY)
    needs = StandingPolicy(required_training=("safe-researcher",))
    assert person_standing(_person(training=(course,)), TODAY, needs).ok
    later = TODAY + timedelta(days=1)
    expired = person_standing(_person(training=(course,)), later, needs)
    assert (expired.rule, expired.reason) == (
        "training",
        "the training 'safe-researcher' expired on 2026-06-15",
    )
    missing = person_standing(_person(), TODAY, needs)
    assert (missing.rule, missing.reason) == (
        "training",
        "the training 'safe-researcher' is missing",
    )
    assert person_standing(_person(), TODAY, POLICY).ok


def test_the_current_user_agreement_must_be_accepted() -> None:
    policy = StandingPolicy(user_agreement_version="2026-1")
    old = _person(accepted_versions=frozenset({"2025-2"}))
    refused = person_standing(old, TODAY, policy)
    assert (refused.rule, refused.reason) == (
        "user_agreement",
        "the user agreement version 2026-1 has not been accepted",
    )
    assert person_standing(_person(accepted_versions=frozenset({"2026-1"})), TODAY, policy).ok
    assert person_standing(old, TODAY, POLICY).ok  # no version in force: nothing to accept


def test_only_the_rules_asked_for_are_checked() -> None:
    policy = StandingPolicy(user_agreement_version="v2", organisation_assurance=True)
    facts = _person(sanctions=(SanctionFact("suspended"),))
    assert person_standing(facts, TODAY, policy).rule == "sanctioned"
    assert person_standing(facts, TODAY, policy, rules=("user_agreement",)).rule == (
        "user_agreement"
    )
    assert person_standing(_person(), TODAY, policy, rules=("sanctioned",)).ok


def test_the_policy_refuses_unknown_kinds_and_a_negative_window() -> None:
    with pytest.raises(ValueError, match="unknown project compliance kind"):
        StandingPolicy(("dsa", "insurance"))
    with pytest.raises(ValueError, match="warning_days"):
        StandingPolicy(warning_days=-1)


# ----- the attacks, through the service layer ----------------------------------------------------


def _add(ctx: Context, row: Sanction | Freeze) -> None:
    with transaction(ctx.engine) as session:
        session.add(row)


def _person_id(ctx: Context, email: str) -> int:
    with transaction(ctx.engine, readonly=True) as session:
        found = session.scalar(select(Person.id).where(Person.email == email))
        assert found is not None
        return found


def _project_id(ctx: Context, slug: str) -> int:
    with transaction(ctx.engine, readonly=True) as session:
        found = session.scalar(select(Project.id).where(Project.slug == slug))
        assert found is not None
        return found


def sanction(ctx: Context, world: World, email: str, kind: str = "suspended") -> None:
    _add(
        ctx,
        Sanction(
            uuid=str(uuid.uuid4()),
            person_id=_person_id(ctx, email),
            kind=kind,
            reason="breach of the user agreement",
            imposed_at=ctx.now(),
            imposed_by_id=_person_id(ctx, world.admin),
        ),
    )


def freeze(ctx: Context, world: World, slug: str | None) -> None:
    _add(
        ctx,
        Freeze(
            uuid=str(uuid.uuid4()),
            project_id=_project_id(ctx, slug) if slug else None,
            reason="incident 12",
            started_at=ctx.now(),
            started_by_id=_person_id(ctx, world.admin),
        ),
    )


def _end_all(ctx: Context, model: type[Sanction] | type[Freeze]) -> None:
    """Lift every sanction or end every freeze."""
    with transaction(ctx.engine) as session:
        if model is Sanction:
            for sanction_row in session.scalars(select(Sanction)):
                sanction_row.lifted_at = ctx.now()
        else:
            for freeze_row in session.scalars(select(Freeze)):
                freeze_row.ended_at = ctx.now()


def _refused(ctx: Context, email: str, rule: str, project: str = "p1") -> str:
    decision = access.authorize_session(ctx, email=email, project=project)
    assert (decision.allowed, decision.rule) == (False, rule), decision.reason
    assert audit_tail(ctx) == [("start_session", "refused", rule)]
    return decision.reason


def test_a_session_on_a_project_whose_ethics_expired_yesterday_is_refused(
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
        valid_from=today - timedelta(days=30),
        expires_on=today + timedelta(days=5),
    )
    allowed = access.authorize_session(ctx, email=world.researcher, project="p1")
    assert allowed.allowed and allowed.valid_until == today + timedelta(days=5)
    clock.advance(days=6)  # the expiry was yesterday
    reason = _refused(ctx, world.researcher, "compliance_lapsed")
    assert reason == f"the project's ethics approval expired on {today + timedelta(days=5)}"
    # renewal (a new record) restores access; the old record is kept, superseded
    compliance.record_compliance(
        ctx,
        world.admin,
        project="p1",
        kind="ethics",
        reference="ETH-3",
        valid_from=ctx.today(),
        expires_on=ctx.today() + timedelta(days=200),
    )
    assert access.authorize_session(ctx, email=world.researcher, project="p1").allowed
    with transaction(ctx.engine, readonly=True) as session:
        ethics = session.scalars(
            select(ComplianceRecord).where(ComplianceRecord.kind == "ethics")
        ).all()
    assert sorted((r.reference, r.superseded_at is None) for r in ethics) == [
        ("ETH-1", False),
        ("ETH-2", False),
        ("ETH-3", True),
    ]


def test_the_enforcers_read_only_check_stops_a_running_session_at_the_lapse(
    ctx: Context, world: World, clock: FakeClock
) -> None:
    make_project(ctx, world, "p1", "active")
    compliance.record_compliance(
        ctx,
        world.admin,
        project="p1",
        kind="dsa",
        reference="DSA-2",
        valid_from=ctx.today(),
        expires_on=ctx.today() + timedelta(days=1),
    )
    before = len(audit.records(ctx.engine))
    assert access.session_access_for_username(ctx, username="researcher", project="p1").allowed
    clock.advance(days=1)  # the expiry day itself: still running
    assert access.session_access_for_username(ctx, username="researcher", project="p1").allowed
    clock.advance(days=1)
    decision = access.session_access_for_username(ctx, username="researcher", project="p1")
    assert (decision.allowed, decision.rule) == (False, "compliance_lapsed")
    assert len(audit.records(ctx.engine)) == before  # read-only: the enforcer audits its stops


def test_frozen_projects_and_a_frozen_enclave_refuse_sessions(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    freeze(ctx, world, "p1")
    assert _refused(ctx, world.researcher, "frozen") == "the project is frozen after an incident"
    _end_all(ctx, Freeze)
    assert access.authorize_session(ctx, email=world.researcher, project="p1").allowed
    freeze(ctx, world, None)
    _refused(ctx, world.researcher, "frozen")


def test_a_sanctioned_person_cannot_start_a_session(ctx: Context, world: World) -> None:
    make_project(ctx, world, "p1", "active")
    sanction(ctx, world, world.researcher)
    _refused(ctx, world.researcher, "sanctioned")
    _end_all(ctx, Sanction)  # a lifted suspension
    assert access.authorize_session(ctx, email=world.researcher, project="p1").allowed
    sanction(ctx, world, world.researcher, "barred")
    _end_all(ctx, Sanction)  # "lifting" a bar changes nothing
    _refused(ctx, world.researcher, "sanctioned")


def test_training_and_the_user_agreement_when_the_policy_requires_them(
    ctx: Context, world: World
) -> None:
    strict = Context(
        engine=ctx.engine,
        data_dir=ctx.data_dir,
        clock=ctx.clock,
        policy=StandingPolicy(required_training=("safe-data",), user_agreement_version="2026-1"),
    )
    make_project(ctx, world, "p1", "active")
    _refused(strict, world.researcher, "training")
    compliance.record_training(
        ctx,
        world.admin,
        email=world.researcher,
        course="safe-data",
        version="v3",
        completed_on=ctx.today(),
        expires_on=ctx.today() + timedelta(days=365),
    )
    _refused(strict, world.researcher, "user_agreement")
    assert compliance.accept_agreement(strict, world.researcher) == "2026-1"
    assert access.authorize_session(strict, email=world.researcher, project="p1").allowed


# ----- login -------------------------------------------------------------------------------------


def _credentials(ctx: Context, world: World, email: str) -> Callable[[], str]:
    people.set_password(ctx, world.admin, email, PASSWORD)
    secret = people.enrol_totp(ctx, world.admin, email).secret
    clock = ctx.clock
    assert isinstance(clock, FakeClock)

    def code() -> str:
        clock.advance(seconds=30)  # a code works once
        return pyotp.TOTP(secret).at(clock.now)

    return code


def test_a_person_of_a_withdrawn_organisation_can_neither_log_in_nor_start_a_session(
    ctx: Context, world: World
) -> None:
    make_project(ctx, world, "p1", "active")
    code = _credentials(ctx, world, world.researcher)
    compliance.record_organisation(
        ctx,
        world.admin,
        name="Org",
        scheme="DSPT",
        reference="8J123",
        assured_until=ctx.today() + timedelta(days=300),
    )
    assert login_guard.login(ctx, world.researcher, PASSWORD, code()).email == world.researcher
    compliance.withdraw_organisation(ctx, world.admin, name="Org", reason="DSPT not met")
    with pytest.raises(AuthenticationFailed) as refused:
        login_guard.login(ctx, world.researcher, PASSWORD, code())
    assert refused.value.rule == "organisation_assurance"
    assert (
        str(refused.value) == "login refused: the assurance of the organisation 'Org' was withdrawn"
    )
    assert audit_tail(ctx) == [("login", "refused", "organisation_assurance")]
    _refused(ctx, world.researcher, "organisation_assurance")
    # renewal restores both
    compliance.record_organisation(
        ctx,
        world.admin,
        name="Org",
        scheme="DSPT",
        reference="8J124",
        assured_until=ctx.today() + timedelta(days=365),
    )
    assert login_guard.login(ctx, world.researcher, PASSWORD, code()).email == world.researcher
    assert access.authorize_session(ctx, email=world.researcher, project="p1").allowed


def test_wrong_credentials_reveal_nothing_about_standing(ctx: Context, world: World) -> None:
    code = _credentials(ctx, world, world.researcher)
    sanction(ctx, world, world.researcher)
    with pytest.raises(AuthenticationFailed) as refused:
        login_guard.login(ctx, world.researcher, "not the password", code())
    assert (refused.value.rule, str(refused.value)) == (
        "login",
        "email, password or code not accepted",
    )


def test_the_web_login_tells_a_sanctioned_person_why(
    web: Web, ctx: Context, world: World, client: FlaskClient
) -> None:
    sanction(ctx, world, world.researcher)
    response = web.login(world.researcher)
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert "login refused: the account is suspended from the enclave" in page
    assert web.login(world.admin).status_code == 303  # the others log in as before


# ----- the review queue --------------------------------------------------------------------------


@pytest.fixture
def schemas() -> tuple[Callable[[Engine], None], ...]:
    return (upgrade_control, upgrade_queue)


@pytest.fixture
def qw(ctx: Context) -> QueueWorld:
    return make_queue_world(ctx)


def _lapse_ethics(ctx: Context, qw: QueueWorld, clock: FakeClock) -> None:
    compliance.record_compliance(
        ctx,
        qw.admin,
        project=qw.project,
        kind="ethics",
        reference="ETH-short",
        valid_from=ctx.today() - timedelta(days=10),
        expires_on=ctx.today(),
    )
    clock.advance(days=1)


@pytest.mark.parametrize("problem", ["lapsed", "frozen", "author_sanctioned", "checker_sanctioned"])
def test_a_checker_cannot_approve_a_release_without_standing(
    ctx: Context, qw: QueueWorld, clock: FakeClock, problem: str
) -> None:
    rid = make_request(ctx, qw, Status.REVIEWED)
    if problem == "lapsed":
        _lapse_ethics(ctx, qw, clock)
    elif problem == "frozen":
        freeze(ctx, qw.base, qw.project)
    else:
        sanction(ctx, qw.base, qw.author if problem == "author_sanctioned" else qw.checker_c)
    rule = {"lapsed": "compliance_lapsed", "frozen": "frozen"}.get(problem, "sanctioned")
    with pytest.raises(ControlError) as refused:
        service.approve(ctx, qw.checker_c, rid, comment="two approvals; releasing")
    assert refused.value.rule == rule
    last = audit.records(ctx.engine)[-1]
    assert (last.action, last.outcome, last.detail["rule"]) == (
        "queue_request_approve",
        "refused",
        rule,
    )
    # read by checker A: a sanctioned checker C can no longer read anything in the queue
    assert service.get_request(ctx, qw.checker_a, rid).summary.status is Status.REVIEWED


@pytest.mark.parametrize("problem", ["lapsed", "frozen", "author_sanctioned"])
def test_the_release_worker_holds_an_approved_release_without_standing(
    ctx: Context, qw: QueueWorld, clock: FakeClock, problem: str
) -> None:
    rid = make_request(ctx, qw, Status.APPROVED)
    if problem == "lapsed":
        _lapse_ethics(ctx, qw, clock)
    elif problem == "frozen":
        freeze(ctx, qw.base, None)
    else:
        sanction(ctx, qw.base, qw.author)
    held = release.release_request(ctx, rid)
    assert (held.status, held.copied, held.pending) == ("approved", 0, 1)
    assert held.errors and held.errors[0].startswith("release held (")
    assert "@" not in held.errors[0]  # no person named in a log line
    assert not (ctx.data_dir / "released" / qw.project / rid).exists()
    if problem == "lapsed":
        compliance.record_compliance(
            ctx,
            qw.admin,
            project=qw.project,
            kind="ethics",
            reference="ETH-renewed",
            valid_from=ctx.today(),
            expires_on=ctx.today() + timedelta(days=100),
        )
    else:
        _end_all(ctx, Freeze if problem == "frozen" else Sanction)
    done = release.release_request(ctx, rid)
    assert (done.status, done.copied, done.errors) == ("released", 1, ())
