"""Test factories: reach every state through the service layer, never by writing rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.models import Base
from enclave.control.rules import ProjectState
from enclave.control.service import datasets, grants, members, people, projects
from enclave.control.varspec import variable
from enclave.control.views import GrantView, ProjectView


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass(frozen=True)
class World:
    """People of every role (accredited where it matters) and one dataset."""

    admin: str = "admin@example.org"
    custodian: str = "custodian@example.org"
    researcher: str = "researcher@example.org"
    checker: str = "checker@example.org"
    client: str = "client@example.org"
    nobody: str = "nobody@example.org"  # an account without any role
    dataset: str = "hospital-episodes"
    other_dataset: str = "benefit-claims"

    def by_role(self, role: str) -> str:
        return {
            "admin": self.admin,
            "data_custodian": self.custodian,
            "researcher": self.researcher,
            "output_checker": self.checker,
            "datalab_client": self.client,
            "none": self.nobody,
        }[role]


VERSION = "sha256:" + "ab" * 32
VARIABLES = (
    variable("nhs_number", "direct_identifier", "patient identifier"),
    variable("age_band", "quasi_identifier"),
    variable("postcode_district", "quasi_identifier"),
    variable("diagnosis", "sensitive"),
    variable("episodes", "other"),
)


def make_world(ctx: Context) -> World:
    world = World()
    people.bootstrap_admin(ctx, email=world.admin, name="Ada Admin", organisation="Enclave")
    for email, role, name in (
        (world.custodian, "data_custodian", "Cas Custodian"),
        (world.researcher, "researcher", "Rae Researcher"),
        (world.checker, "output_checker", "Che Checker"),
        (world.client, "datalab_client", "Cli Client"),
    ):
        people.create_person(
            ctx, world.admin, email=email, name=name, organisation="Org", roles=[role]
        )
    people.create_person(ctx, world.admin, email=world.nobody, name="No Role", organisation="Org")
    today = ctx.today()
    for email in (world.researcher, world.checker, world.client):
        people.accredit(
            ctx,
            world.admin,
            email,
            scheme="Safe Researcher",
            reference=f"SR-{email[:3]}",
            issued_on=today - timedelta(days=100),
            expires_on=today + timedelta(days=400),
        )
    datasets.register_dataset(
        ctx,
        world.admin,
        slug=world.dataset,
        name="Hospital Episode Statistics",
        source_agency="Health Agency",
        description="Admitted patient care episodes",
        version=VERSION,
        custodian=world.custodian,
        permitted_purposes=["health_research", "policy_evaluation"],
        variables=VARIABLES,
    )
    datasets.register_dataset(
        ctx,
        world.custodian,
        slug=world.other_dataset,
        name="Benefit Claims",
        source_agency="Work Agency",
        description="Claims of working-age benefits",
        version="cd" * 32,
        custodian=world.custodian,
        permitted_purposes=["health_research", "social_research"],
        variables=(variable("claimant_id", "direct_identifier"), variable("benefit", "other")),
    )
    return world


def propose(
    ctx: Context,
    world: World,
    slug: str = "study",
    *,
    purpose: str = "health_research",
    start: date | None = None,
    end: date | None = None,
    pi: str | None = None,
) -> ProjectView:
    today = ctx.today()
    return projects.create_project(
        ctx,
        world.admin,
        slug=slug,
        title=f"Study {slug}",
        lay_summary="How hospital stays changed",
        public_benefit="Better planning of hospital beds",
        organisation="University",
        purpose=purpose,
        start_date=start or today - timedelta(days=30),
        end_date=end or today + timedelta(days=365),
        legal_basis="Statistics Act s.1",
        ethics_reference="ETH-1",
        dsa_reference="DSA-1",
        pi=pi,
    )


def request(
    ctx: Context, world: World, slug: str, variables: tuple[str, ...] = ("age_band",)
) -> GrantView:
    return grants.request_grant(
        ctx,
        world.admin,
        project=slug,
        dataset=world.dataset,
        variables=variables,
        expires_on=ctx.today() + timedelta(days=200),
    )


def make_project(
    ctx: Context,
    world: World,
    slug: str = "study",
    state: str = ProjectState.ACTIVE,
    *,
    member: bool = True,
    grant: str | None = "approved",
) -> ProjectView:
    """A project in ``state`` with the world's researcher as member and (unless ``grant`` is
    None) a grant of the world's dataset left ``requested`` or ``approved``."""
    view = propose(ctx, world, slug)
    if member:
        members.add_member(
            ctx,
            world.admin,
            project=slug,
            email=world.researcher,
            role="researcher",
            expires_on=view.end_date,
        )
    if state == ProjectState.PROPOSED:
        return view
    if state == ProjectState.REJECTED:
        return projects.reject_project(ctx, world.admin, slug, "not in the public interest")
    view = projects.approve_project(ctx, world.admin, slug)
    if grant is not None:
        pending = request(ctx, world, slug)
        if grant == "approved":
            grants.approve_grant(ctx, world.custodian, pending.uuid)
    if state in (ProjectState.ACTIVE, ProjectState.SUSPENDED):
        view = projects.activate_project(ctx, world.admin, slug)
    if state == ProjectState.SUSPENDED:
        view = projects.suspend_project(ctx, world.admin, slug, "incident 7")
    if state == ProjectState.CLOSED:
        view = projects.close_project(ctx, world.admin, slug, "finished").project
    return view


def counts(ctx: Context) -> dict[str, int]:
    """Rows per table, the audit tables excepted: what "nothing changed" compares."""
    with transaction(ctx.engine, readonly=True) as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
            if not table.name.startswith("audit")
        }


def audit_tail(ctx: Context, n: int = 1) -> list[tuple[str, str, str]]:
    """The last ``n`` audit events as (action, outcome, rule-or-empty)."""
    from enclave.control import audit

    events = audit.records(ctx.engine)[-n:]
    return [(e.action, e.outcome, str(e.detail.get("rule") or "")) for e in events]
