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
from enclave.control.service import datasets, grants, members, people, projects, tokens
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
    )
    _out("created project", project.slug, project.state)
    return 0


def transition(name: str) -> Handler:
    def handler(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
        if name == "approve":
            view = projects.approve_project(ctx, a.actor, a.slug)
        elif name == "activate":
            view = projects.activate_project(ctx, a.actor, a.slug)
        elif name == "reject":
            view = projects.reject_project(ctx, a.actor, a.slug, a.reason)
        elif name == "suspend":
            view = projects.suspend_project(ctx, a.actor, a.slug, a.reason)
        else:
            report = projects.close_project(ctx, a.actor, a.slug, a.reason)
            view = report.project
            _out("revoked grants", report.grants_revoked)
            _out("ended memberships", report.memberships_ended)
            _out("archive", report.archive or "(no workspace)", report.archive_sha256 or "")
            _out("destroyed keys", ",".join(report.keys_destroyed) or "(none)")
        _out("project", view.slug, view.state)
        return 0

    return handler


def set_disclosure(ctx: Context, _s: Settings, a: argparse.Namespace) -> int:
    view = projects.set_disclosure(ctx, a.actor, a.slug, _disclosure(a.overrides))
    _out("disclosure", view.slug, json.dumps(view.disclosure, sort_keys=True))
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
    lifetime = timedelta(days=a.days) if a.days else None
    issued = tokens.issue_token(ctx, a.actor, a.email or a.actor, label=a.label, lifetime=lifetime)
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
        (p.slug, p.state, p.purpose, p.start_date, p.end_date, p.outputs_released, p.title)
        for p in projects.list_projects(ctx, a.actor, state=a.state)
    ]
    header = ("slug", "state", "purpose", "start", "end", "outputs_released", "title")
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
        )
        for d in datasets.list_datasets(ctx, a.actor)
    ]
    header = ("slug", "agency", "custodian", "purposes", "version", "variables")
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
