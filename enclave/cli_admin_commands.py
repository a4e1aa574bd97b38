"""Handlers of ``enclave admin ...``: each parses nothing, calls one service function and
prints its result (tab-separated, or JSON lines with ``--json``). Wiring lives in
``enclave.cli_admin``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from enclave.control import db, hub
from enclave.control.context import Context
from enclave.control.errors import InvalidInput
from enclave.control.quota import QuotaError, parse_memory
from enclave.control.service import (
    alerts,
    compliance,
    datasets,
    grants,
    incidents,
    members,
    people,
    projects,
    quotas,
    session_stop,
    tokens,
    usage,
)
from enclave.control.varspec import read_variables
from enclave.settings import Settings

Handler = Callable[[Context, Settings, argparse.Namespace], int]


def _out(*columns: object) -> None:
    print("\t".join("" if c is None else str(c) for c in columns))


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], as_json: bool) -> int:
    if as_json:
        for row in rows:
            print(json.dumps(dict(zip(header, row, strict=True)), default=str))
        return 0
    _out(*header)
    for row in rows:
        _out(*row)
    return 0


def init(settings: Settings, _args: argparse.Namespace) -> int:
    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine)
        revision = db.current_revision(engine)
    finally:
        engine.dispose()
    print(f"database ready at revision {revision}")
    return 0


def bootstrap(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    person = people.bootstrap_admin(
        ctx, email=a.email, name=a.name, organisation=a.organisation, username=a.username
    )
    _out("created admin", person.email, person.uuid)
    return 0


def create_person(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    person = people.create_person(
        ctx,
        a.actor,
        email=a.email,
        name=a.name,
        organisation=a.organisation,
        roles=a.role or [],
        username=a.username,
    )
    _out("created person", person.email, person.username, person.uuid, ",".join(person.roles))
    return 0


def set_roles(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    person = people.set_roles(ctx, a.actor, a.email, a.role or [])
    _out("roles", person.email, ",".join(person.roles))
    return 0


def set_active(active: bool) -> Handler:
    def handler(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
        person = people.set_active(ctx, a.actor, a.email, active=active, reason=a.reason)
        _out("active" if person.active else "suspended", person.email)
        return 0

    return handler


def accredit(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    person = people.accredit(
        ctx,
        a.actor,
        a.email,
        scheme=a.scheme,
        reference=a.reference,
        issued_on=a.issued,
        expires_on=a.expires,
    )
    _out("accredited", person.email, "until", person.accredited_until)
    return 0


def set_password(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\r\n")  # from stdin: never in argv or shell history
    people.set_password(ctx, a.actor, a.email, password)
    _out("password set", a.email)
    return 0


def enrol_totp(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    enrolment = people.enrol_totp(ctx, a.actor, a.email)
    _out("totp secret", enrolment.secret)
    _out("totp uri", enrolment.uri)
    return 0


def _disclosure(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"--disclosure is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise InvalidInput("--disclosure must be a JSON object of parameter overrides")
    return value


def create_project(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    project = projects.create_project(
        ctx,
        a.actor,
        slug=a.slug,
        title=a.title,
        lay_summary=a.lay_summary,
        public_benefit=a.public_benefit,
        organisation=a.organisation,
        purpose=a.purpose,
        start_date=a.start,
        end_date=a.end,
        legal_basis=a.legal_basis,
        ethics_reference=a.ethics_ref,
        dsa_reference=a.dsa_ref,
        disclosure=_disclosure(a.disclosure),
        ethics_expires_on=a.ethics_expires,
        dsa_expires_on=a.dsa_expires,
        pi=a.pi,
    )
    _out("created project", project.slug, project.state)
    return 0


def set_pi(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = projects.set_project_pi(ctx, a.actor, a.slug, a.email, a.reason)
    _out("principal investigator", view.slug, view.pi_email, _flag(view.flagged_for_review))
    return 0


def transfer_custody(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = datasets.transfer_custody(ctx, a.actor, a.dataset, a.email, a.reason)
    _out("custodian", view.slug, view.custodian_email, _flag(view.flagged_for_review))
    return 0


def _flag(flagged: bool) -> str:
    return "flagged for review" if flagged else ""


def transition(name: str) -> Handler:
    def handler(ctx: Context, settings: Settings, a: argparse.Namespace) -> int:
        if name == "approve":
            view = projects.approve_project(ctx, a.actor, a.slug)
        elif name == "activate":
            view = projects.activate_project(ctx, a.actor, a.slug)
        elif name == "reject":
            view = projects.reject_project(ctx, a.actor, a.slug, a.reason)
        elif name == "suspend":
            view = projects.suspend_project(ctx, a.actor, a.slug, a.reason)
        else:
            report = projects.close_project(
                ctx, a.actor, a.slug, a.reason, stopper=_stopper(settings)
            )
            view = report.project
            _out("revoked grants", report.grants_revoked)
            _out("ended memberships", report.memberships_ended)
            _out("archive", report.archive or "(no workspace)", report.archive_sha256 or "")
            _out("destroyed keys", ",".join(report.keys_destroyed) or "(none)")
            _out("audit export", report.audit_export)
            _out("deletion certificate", report.certificate)
            if report.sessions is not None:
                _report_stop(report.sessions)
        _out("project", view.slug, view.state)
        return 0

    return handler


def set_disclosure(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = projects.set_disclosure(ctx, a.actor, a.slug, _disclosure(a.overrides))
    _out("disclosure", view.slug, json.dumps(view.disclosure, sort_keys=True))
    return 0


def set_limits(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    try:
        memory = None if a.memory is None else parse_memory(a.memory)
    except QuotaError as error:
        raise InvalidInput(str(error), rule="invalid_quota") from error
    quota = quotas.set_limits(
        ctx, a.actor, a.project, memory_bytes=memory, cpus=a.cpus, pids=a.pids, clear=a.clear
    )
    _out("limits", a.project, json.dumps(quota, sort_keys=True) if quota else "tier default")
    return 0


def add_member(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    m = members.add_member(
        ctx, a.actor, project=a.project, email=a.email, role=a.role, expires_on=a.expires
    )
    _out("member", m.project, m.email, m.role, "until", m.expires_on)
    return 0


def remove_member(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    m = members.remove_member(
        ctx, a.actor, project=a.project, email=a.email, role=a.role, reason=a.reason
    )
    _out("removed", m.project, m.email, m.role)
    return 0


def register_dataset(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    if bool(a.version) == bool(a.version_of):
        raise InvalidInput("give exactly one of --version and --version-of")
    version = a.version or datasets.content_version(_readable(a.version_of))
    dataset = datasets.register_dataset(
        ctx,
        a.actor,
        slug=a.slug,
        name=a.name,
        source_agency=a.agency,
        description=a.description,
        version=version,
        custodian=a.custodian,
        permitted_purposes=a.purpose,
        variables=read_variables(a.variables),
    )
    _out("registered dataset", dataset.slug, dataset.version, len(dataset.variables), "variables")
    return 0


def _readable(path: Path) -> Path:
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    return path


def _split(values: Sequence[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def request_grant(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    grant = grants.request_grant(
        ctx,
        a.actor,
        project=a.project,
        dataset=a.dataset,
        variables=_split(a.variable),
        expires_on=a.expires,
    )
    _out("requested grant", grant.uuid, grant.project, grant.dataset, ",".join(grant.variables))
    return 0


def decide(name: str) -> Handler:
    def handler(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
        if name == "approve":
            grant = grants.approve_grant(ctx, a.actor, a.grant)
        elif name == "reject":
            grant = grants.reject_grant(ctx, a.actor, a.grant, a.reason)
        else:
            grant = grants.revoke_grant(ctx, a.actor, a.grant, a.reason)
        _out("grant", grant.uuid, grant.state)
        return 0

    return handler


def issue_token(ctx: Context, settings: Settings, a: argparse.Namespace) -> int:
    if a.days and a.hours:
        raise InvalidInput("give --days or --hours, not both", rule="token_lifetime")
    lifetime = timedelta(days=a.days) if a.days else timedelta(hours=a.hours) if a.hours else None
    issued = tokens.issue_token(
        ctx, a.actor, a.email or a.actor, label=a.label, lifetime=lifetime, totp=a.totp
    )
    print(issued.token)  # stdout carries the token alone, for scripts
    print(
        f"token {issued.info.uuid} expires {issued.info.expires_at:%Y-%m-%d %H:%M}Z",
        file=sys.stderr,
    )
    return 0


def list_people(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    rows = [
        (p.email, p.username, p.name, ",".join(p.roles), p.accredited_until, p.active, p.uuid)
        for p in people.list_people(ctx, a.actor)
    ]
    header = ("email", "username", "name", "roles", "accredited_until", "active", "uuid")
    return _table(header, rows, a.json)


def list_projects(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    rows = [
        (
            p.slug,
            p.state,
            p.purpose,
            p.start_date,
            p.end_date,
            p.outputs_released,
            p.title,
            p.pi_email,
            p.flagged_for_review,
        )
        for p in projects.list_projects(ctx, a.actor, state=a.state)
    ]
    header = (
        "slug",
        "state",
        "purpose",
        "start",
        "end",
        "outputs_released",
        "title",
        "pi",
        "flagged_for_review",
    )
    return _table(header, rows, a.json)


def list_datasets(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    rows = [
        (
            d.slug,
            d.source_agency,
            d.custodian_email,
            ",".join(d.permitted_purposes),
            d.version,
            ",".join(f"{v.name}:{v.sensitivity}" for v in d.variables),
            d.flagged_for_review,
        )
        for d in datasets.list_datasets(ctx, a.actor)
    ]
    header = (
        "slug",
        "agency",
        "custodian",
        "purposes",
        "version",
        "variables",
        "flagged_for_review",
    )
    return _table(header, rows, a.json)


def list_grants(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    rows = [
        (g.uuid, g.project, g.dataset, g.state, ",".join(g.variables), g.expires_on, g.decided_by)
        for g in grants.list_grants(ctx, a.actor, project=a.project, dataset=a.dataset)
    ]
    header = ("uuid", "project", "dataset", "state", "variables", "expires", "decided_by")
    return _table(header, rows, a.json)


def sync_hub_now(ctx: Context, settings: Settings, a: argparse.Namespace) -> int:
    if not settings.hub_url:
        raise InvalidInput("no hub configured: set ENCLAVE_HUB_URL and ENCLAVE_HUB_API_TOKEN")
    report = hub.sync_hub(ctx, settings, actor=a.actor)
    print(json.dumps(asdict(report) if report else {}, sort_keys=True))
    return 0


# ----- compliance that expires, organisation assurance, user agreement ----------------------


def record_compliance(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    item = compliance.record_compliance(
        ctx,
        a.actor,
        project=a.project,
        kind=a.kind,
        reference=a.reference,
        valid_from=a.valid_from,
        expires_on=a.expires_on,
    )
    _out("recorded", item.project, item.kind, item.uuid, item.expires_on, item.superseded or "")
    return 0


def record_training(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    item = compliance.record_training(
        ctx,
        a.actor,
        email=a.email,
        course=a.course,
        version=a.course_version,
        completed_on=a.completed_on,
        expires_on=a.expires_on,
    )
    _out("recorded training", item.reference, item.detail, item.uuid, item.expires_on)
    return 0


def organisation(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    if a.withdraw:
        if not a.reason:
            raise InvalidInput("--withdraw needs --reason")
        org = compliance.withdraw_organisation(ctx, a.actor, name=a.name, reason=a.reason)
    else:
        missing = [
            flag
            for flag, value in (
                ("--scheme", a.scheme),
                ("--reference", a.reference),
                ("--assured-until", a.assured_until),
            )
            if not value
        ]
        if missing:
            raise InvalidInput(f"recording an organisation's assurance needs {', '.join(missing)}")
        org = compliance.record_organisation(
            ctx,
            a.actor,
            name=a.name,
            scheme=a.scheme,
            reference=a.reference,
            assured_until=a.assured_until,
        )
    state = "withdrawn" if org.withdrawn else "assured"
    _out("organisation", org.name, state, org.assurance_scheme, org.assured_until)
    return 0


def compliance_report(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    lines = compliance.compliance_report(ctx, a.actor, within_days=a.within_days)
    rows = [
        (x.subject_kind, x.subject, x.item, x.status, x.expires_on, x.reference, x.required)
        for x in lines
    ]
    header = ("subject_kind", "subject", "item", "status", "expires_on", "reference", "required")
    return _table(header, rows, a.json)


def accept_agreement(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    version = compliance.accept_agreement(ctx, a.actor, version=a.agreement_version)
    _out("accepted user agreement", version)
    return 0


# -- breach handling and security alerts (service/incidents.py, service/alerts.py) ----------


def _stopper(settings: Settings) -> session_stop.SessionStopper | None:
    return session_stop.hub_stopper(settings.hub_url, settings.hub_api_token)


def _report_stop(outcome: session_stop.StopOutcome) -> None:
    if not outcome.attempted:
        print(
            "enclave: warning: no hub configured here: the access enforcer stops running "
            "sessions on its next pass",
            file=sys.stderr,
        )
    elif outcome.error:
        print(
            f"enclave: warning: sessions not stopped at once ({outcome.error}); the access "
            "enforcer stops them on its next pass",
            file=sys.stderr,
        )
    else:
        _out("sessions stopped", ",".join(outcome.stopped) or "(none running)")


def sanction(kind: str) -> Handler:
    def handler(ctx: Context, settings: Settings, a: argparse.Namespace) -> int:
        impose = incidents.suspend_person if kind == "suspend" else incidents.bar_person
        result = impose(ctx, a.actor, a.email, a.reason, stopper=_stopper(settings))
        _out(result.sanction.kind, result.sanction.email, result.sanction.uuid)
        _out("tokens revoked", result.tokens_revoked)
        _report_stop(result.sessions)
        return 0

    return handler


def lift_sanction(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = incidents.lift_sanction(ctx, a.actor, a.sanction, a.reason)
    _out("lifted", view.kind, view.email, view.uuid)
    return 0


def appeal(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = incidents.lodge_appeal(ctx, a.actor, a.sanction, a.statement)
    _out("appeal lodged", view.email, view.uuid)
    return 0


def decide_appeal(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = incidents.decide_appeal(ctx, a.actor, a.sanction, a.outcome, a.reason)
    _out("appeal", view.appeal_outcome, view.email, "in force" if view.in_force else "lifted")
    return 0


def list_sanctions(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    rows = [
        (s.uuid, s.email, s.kind, s.imposed_at, s.imposed_by, s.lifted_at, s.appeal_outcome)
        for s in incidents.list_sanctions(ctx, a.actor, email=a.email, in_force_only=not a.all)
    ]
    header = ("uuid", "email", "kind", "imposed_at", "imposed_by", "lifted_at", "appeal")
    return _table(header, rows, a.json)


def freeze(ctx: Context, settings: Settings, a: argparse.Namespace) -> int:
    result = incidents.freeze(ctx, a.actor, a.reason, a.project, stopper=_stopper(settings))
    _out("frozen", result.freeze.scope, result.freeze.uuid)
    _report_stop(result.sessions)
    return 0


def unfreeze(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = incidents.unfreeze(ctx, a.actor, a.freeze, a.reason)
    _out("unfrozen", view.scope, view.uuid)
    return 0


def list_freezes(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    rows = [
        (f.uuid, f.scope, f.started_at, f.started_by, f.ended_at, f.reason)
        for f in incidents.list_freezes(ctx, a.actor, in_force_only=not a.all)
    ]
    header = ("uuid", "scope", "started_at", "started_by", "ended_at", "reason")
    return _table(header, rows, a.json)


def scan_alerts(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    report = alerts.scan(ctx, actor=a.actor)
    for alert in report.raised:
        _out("alert", alert.kind, alert.subject, alert.uuid)
    _out("scanned through event", report.through_seq, "raised", len(report.raised))
    return 0


def list_alerts(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    rows = [
        (
            x.uuid,
            x.kind,
            x.subject,
            x.raised_at,
            x.outcome or "open",
            json.dumps(x.detail, sort_keys=True),
        )
        for x in alerts.list_alerts(ctx, a.actor, open_only=not a.all)
    ]
    header = ("uuid", "kind", "subject", "raised_at", "outcome", "detail")
    return _table(header, rows, a.json)


def review_alert(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = alerts.review_alert(ctx, a.actor, a.alert, a.outcome, a.note)
    _out("reviewed", view.kind, view.subject, view.outcome, view.uuid)
    return 0


def usage_report(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    """Per project, then per person: sessions, hours, MB on disk, datasets (or, with
    ``--csv``, the per project and person rows for charging)."""
    report = usage.usage_report(ctx, a.actor, start=a.start, end=a.end)
    if a.csv:
        sys.stdout.write(usage.to_csv(report))
        return 0
    print(
        f"usage from {report.start} to {report.end}; queue snapshots (all projects) "
        f"{report.snapshot_bytes / usage.MB:.3f} MB",
        file=sys.stderr,
    )
    lines = [_usage_line("project", row) for row in report.projects]
    lines += [_usage_line("person", row) for row in report.people]
    header = ("scope", "name", "sessions", "hours", "storage_mb", "datasets", "cpu_seconds")
    return _table(header, lines, a.json)


def _usage_line(scope: str, row: usage.UsageRow) -> tuple[object, ...]:
    cpu = "" if row.cpu_seconds is None else row.cpu_seconds
    name = row.project or row.email
    return (
        scope,
        name,
        row.sessions,
        f"{row.hours:.2f}",
        row.storage_mb,
        ",".join(row.datasets),
        cpu,
    )
