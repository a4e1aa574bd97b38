"""The control plane's side of ``enclave up``: both schemas current, and the demo's people
given a password and a TOTP secret once, plus two output checkers.

The demo extract (``enclave.linkage.demo``) already created the admin, the custodian and the
researcher; this adds the checkers and the credentials. Credentials are generated here, stored
only as the control plane stores them (argon2 hash, TOTP secret) and returned for printing;
a marker file (no secret in it) says they were printed, so a second run shows none.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from enclave.control import db as control_db
from enclave.control.context import Context, open_context
from enclave.control.service import people
from enclave.linkage.demo import ADMIN, RESEARCHER
from enclave.settings import Settings
from enclave.up.plan import Credential, Layout
from output_checker.queue import db as queue_db

CHECKERS = (
    ("checker1@demo.enclave.example", "checker1", "Demo Checker One"),
    ("checker2@demo.enclave.example", "checker2", "Demo Checker Two"),
)
ACCOUNTS = (
    ("admin", ADMIN),
    ("researcher", RESEARCHER),
    *(("output checker", email) for email, _, _ in CHECKERS),
)


def init_schemas(settings: Settings) -> None:
    """``enclave admin init`` and ``output-checker init``: create or upgrade both schemas."""
    engine = control_db.make_engine(settings.database_url)
    try:
        control_db.upgrade(engine)
        queue_db.upgrade(engine)
    finally:
        engine.dispose()


def provision(settings: Settings, layout: Layout) -> list[Credential] | None:
    """Create the checkers and give every demo account its credentials, the first time only;
    returns them for printing once, or None when an earlier run already did."""
    if layout.provisioned.exists():
        return None
    ctx = open_context(settings)
    try:
        _checkers(ctx)
        found = [_credentials(ctx, role, email) for role, email in ACCOUNTS]
    finally:
        ctx.close()
    layout.provisioned.write_text("credentials printed; reset with enclave admin\n")
    return found


def _checkers(ctx: Context) -> None:
    known = {p.email for p in people.list_people(ctx, ADMIN)}
    today = ctx.today()
    for email, username, name in CHECKERS:
        if email not in known:
            people.create_person(
                ctx, ADMIN, email=email, name=name, organisation="Enclave",
                roles=["output_checker"], username=username,
            )  # fmt: skip
        if people.get_person(ctx, ADMIN, email).accredited_until is None:
            # staff sign the same agreement: the hub admits only accredited people
            people.accredit(
                ctx, ADMIN, email, scheme="Safe Researcher", reference=f"DEMO-{username}",
                issued_on=today - timedelta(days=1), expires_on=today + timedelta(days=365),
            )  # fmt: skip


def _credentials(ctx: Context, role: str, email: str) -> Credential:
    password = secrets.token_urlsafe(15)  # 20 characters, within the password policy
    people.set_password(ctx, ADMIN, email, password)
    enrolment = people.enrol_totp(ctx, ADMIN, email)
    person = people.get_person(ctx, ADMIN, email)
    return Credential(role, email, person.username, password, enrolment.secret, enrolment.uri)
