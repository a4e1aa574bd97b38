"""People: accounts, roles, accreditation, credentials and login (Safe People)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from enclave.control import credentials
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import AuthenticationFailed, Conflict, InvalidInput, RuleViolation
from enclave.control.models import Accreditation, Person, PersonRole
from enclave.control.rules import Action, Role
from enclave.control.service._base import (
    audit_refusal,
    authorize,
    clean_email,
    clean_text,
    parse_date,
    perform,
    person_row,
    read,
    read_as,
    record,
)
from enclave.control.views import PersonView, TotpEnrolment, person_view

BOOTSTRAP_ACTOR = "bootstrap"
MFA_NOT_ENROLLED = "mfa_not_enrolled"
NO_TOTP = "no TOTP enrolled"  # the audited reason
NOT_ENROLLED = (
    "login refused: no authenticator app (TOTP) is enrolled for this account; "
    "ask an admin to enrol one"
)
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def parse_roles(roles: Iterable[str]) -> frozenset[Role]:
    """The roles named; InvalidInput (``unknown_role``) for a word outside the vocabulary."""
    chosen = set()
    for name in roles:
        try:
            chosen.add(Role(name.strip()))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise InvalidInput(
                f"unknown role {name!r}; known: {known}", rule="unknown_role"
            ) from None
    return frozenset(chosen)


def _username(email: str, given: str | None) -> str:
    name = (given or re.sub(r"[^a-z0-9._-]", "-", email.split("@")[0])).strip().lower()
    if not USERNAME.match(name):
        raise InvalidInput(f"invalid username {name!r}", rule="invalid_username")
    return name


def _new_person(
    session: Session,
    ctx: Context,
    *,
    email: str,
    name: str,
    organisation: str,
    roles: frozenset[Role],
    username: str | None,
) -> Person:
    address = clean_email(email)
    login = _username(address, username)
    if session.scalar(select(Person.id).where(Person.email == address)) is not None:
        raise Conflict(f"duplicate email: {address} already has an account", rule="duplicate_email")
    if session.scalar(select(Person.id).where(Person.username == login)) is not None:
        raise Conflict(
            f"duplicate username: {login} is taken; choose another username",
            rule="duplicate_username",
        )
    person = Person(
        uuid=str(uuid.uuid4()),
        email=address,
        username=login,
        name=clean_text(name, "name", 200),
        organisation=clean_text(organisation, "organisation", 200),
        active=True,
        created_at=ctx.now(),
        roles=[PersonRole(role=r.value) for r in sorted(roles)],
    )
    session.add(person)
    session.flush()
    return person


def bootstrap_admin(
    ctx: Context, *, email: str, name: str, organisation: str, username: str | None = None
) -> PersonView:
    """Create the first person, an admin; refused (``bootstrap``) once anyone exists."""

    def work(session: Session) -> PersonView:
        if session.scalar(select(func.count()).select_from(Person)):
            raise RuleViolation("people already exist: ask an admin instead", rule="bootstrap")
        person = _new_person(
            session,
            ctx,
            email=email,
            name=name,
            organisation=organisation,
            roles=frozenset({Role.ADMIN}),
            username=username,
        )
        record(
            session, ctx, BOOTSTRAP_ACTOR, "bootstrap_admin", target=person.uuid, email=person.email
        )
        return person_view(person)

    try:
        with transaction(ctx.engine) as session:
            return work(session)
    except RuleViolation as error:
        audit_refusal(ctx, BOOTSTRAP_ACTOR, "bootstrap_admin", error)
        raise


def create_person(
    ctx: Context,
    actor: str,
    *,
    email: str,
    name: str,
    organisation: str,
    roles: Iterable[str] = (),
    username: str | None = None,
) -> PersonView:
    """Create an account (no password or TOTP yet). Raises Conflict for a duplicate email."""
    chosen = parse_roles(roles)

    def work(session: Session, me: Person) -> PersonView:
        authorize(me, Action.CREATE_PERSON)
        person = _new_person(
            session,
            ctx,
            email=email,
            name=name,
            organisation=organisation,
            roles=chosen,
            username=username,
        )
        record(
            session,
            ctx,
            me,
            Action.CREATE_PERSON,
            target=person.uuid,
            email=person.email,
            roles=sorted(r.value for r in chosen),
        )
        return person_view(person)

    return perform(ctx, actor, Action.CREATE_PERSON, work, target=email)


def set_roles(ctx: Context, actor: str, email: str, roles: Iterable[str]) -> PersonView:
    """Replace a person's standing roles; refuses (``last_admin``) to remove the last admin."""
    chosen = parse_roles(roles)

    def work(session: Session, me: Person) -> PersonView:
        authorize(me, Action.SET_ROLES)
        person = person_row(session, email)
        if Role.ADMIN in person.role_names and Role.ADMIN not in chosen:
            admins = session.scalar(
                select(func.count()).select_from(PersonRole).where(PersonRole.role == Role.ADMIN)
            )
            if admins == 1:
                raise RuleViolation("the last admin cannot lose the admin role", rule="last_admin")
        before = sorted(person.role_names)
        person.roles = [PersonRole(role=r.value) for r in sorted(chosen)]
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.SET_ROLES,
            target=person.uuid,
            before=before,
            after=sorted(r.value for r in chosen),
        )
        return person_view(person)

    return perform(ctx, actor, Action.SET_ROLES, work, target=email)


def set_active(ctx: Context, actor: str, email: str, *, active: bool, reason: str) -> PersonView:
    """Suspend (``active=False``) or reinstate an account at once, with a recorded reason."""
    why = clean_text(reason, "reason", 500)

    def work(session: Session, me: Person) -> PersonView:
        authorize(me, Action.SET_ROLES)
        person = person_row(session, email)
        if person.id == me.id and not active:
            raise RuleViolation("you cannot suspend your own account", rule="self_suspend")
        person.active = active
        session.flush()
        record(session, ctx, me, Action.SET_ROLES, target=person.uuid, active=active, reason=why)
        return person_view(person)

    return perform(ctx, actor, Action.SET_ROLES, work, target=email)


def accredit(
    ctx: Context,
    actor: str,
    email: str,
    *,
    scheme: str,
    reference: str,
    issued_on: date | str,
    expires_on: date | str,
) -> PersonView:
    """Record an accreditation or training certificate (scheme, reference, validity dates)."""
    issued, expires = parse_date(issued_on, "issued_on"), parse_date(expires_on, "expires_on")
    if expires < issued:
        raise InvalidInput("expires_on is before issued_on", rule="invalid_date")
    scheme_text = clean_text(scheme, "scheme", 100)
    reference_text = clean_text(reference, "reference", 100)

    def work(session: Session, me: Person) -> PersonView:
        authorize(me, Action.ACCREDIT)
        person = person_row(session, email)
        session.add(
            Accreditation(
                person_id=person.id,
                scheme=scheme_text,
                reference=reference_text,
                issued_on=issued,
                expires_on=expires,
                recorded_at=ctx.now(),
                recorded_by_id=me.id,
            )
        )
        session.flush()
        session.refresh(person)
        record(
            session,
            ctx,
            me,
            Action.ACCREDIT,
            target=person.uuid,
            scheme=scheme_text,
            reference=reference_text,
            issued_on=issued.isoformat(),
            expires_on=expires.isoformat(),
        )
        return person_view(person)

    return perform(ctx, actor, Action.ACCREDIT, work, target=email)


def _self_or(me: Person, person: Person) -> None:
    if me.id != person.id:
        authorize(me, Action.SET_CREDENTIALS)


def set_password(ctx: Context, actor: str, email: str, password: str) -> None:
    """Set a password (argon2id): one's own, or anyone's for an admin."""
    digest = credentials.hash_password(password)

    def work(session: Session, me: Person) -> None:
        person = person_row(session, email)
        _self_or(me, person)
        person.password_hash = digest
        record(session, ctx, me, "set_password", target=person.uuid)

    perform(ctx, actor, Action.SET_CREDENTIALS, work, target=email)


def enrol_totp(ctx: Context, actor: str, email: str) -> TotpEnrolment:
    """Give a person a new TOTP secret (replacing any old one); returns it once, with its URI."""
    secret = credentials.new_totp_secret()

    def work(session: Session, me: Person) -> TotpEnrolment:
        person = person_row(session, email)
        _self_or(me, person)
        person.totp_secret, person.totp_last_step = secret, None
        record(session, ctx, me, "enrol_totp", target=person.uuid)
        return TotpEnrolment(secret, credentials.totp_uri(secret, person.email))

    return perform(ctx, actor, Action.SET_CREDENTIALS, work, target=email)


def authenticate(ctx: Context, email: str, password: str, totp_code: str) -> PersonView:
    """Check password and TOTP code; return the person or raise AuthenticationFailed.

    Every attempt is audited (``login``), with the precise reason for a refusal; the error
    itself says only that the credentials were not accepted, except to someone with the right
    password but no TOTP enrolled, who is told to have an admin enrol one (rule
    ``mfa_not_enrolled``): nobody logs in on a password alone. A TOTP code works once.
    """
    address = (email or "").strip().lower()
    with transaction(ctx.engine) as session:
        person = session.scalar(select(Person).where(Person.email == address))
        step = None
        if not credentials.verify_password(person.password_hash if person else None, password):
            reason = "unknown account or wrong password"
        elif person is None or not person.active:
            reason = "account suspended"
        elif person.totp_secret is None:
            reason = NO_TOTP
        else:
            step = credentials.match_totp(
                person.totp_secret, totp_code, ctx.now(), person.totp_last_step
            )
            reason = "wrong or reused TOTP code" if step is None else ""
        if reason or person is None:
            record(session, ctx, address[:320], "login", outcome="refused", reason=reason)
        else:
            person.totp_last_step = step
            if person.password_hash and credentials.needs_rehash(person.password_hash):
                person.password_hash = credentials.hash_password(password)
            record(session, ctx, person, "login", target=person.uuid)
            return person_view(person)
    if reason == NO_TOTP:  # only someone who knew the password learns this
        raise AuthenticationFailed(NOT_ENROLLED, rule=MFA_NOT_ENROLLED)
    raise AuthenticationFailed("email, password or code not accepted", rule="login")


def vouched_login(ctx: Context, username: str | None, *, method: str) -> PersonView:
    """The active person with this ``username``, which a trusted identity provider (JupyterHub
    OAuth, an OIDC provider) has already authenticated; AuthenticationFailed for an unknown or
    suspended account. Audited as ``login`` with ``method`` either way."""
    name = (username or "").strip()[:64]
    with transaction(ctx.engine) as session:
        person = session.scalar(select(Person).where(Person.username == name)) if name else None
        if person is not None and person.active:
            record(session, ctx, person, "login", target=person.uuid, method=method, username=name)
            return person_view(person)
        reason = "unknown user" if person is None else "account suspended"
        record(
            session, ctx, name or "(none)", "login", outcome="refused", method=method, reason=reason
        )
    raise AuthenticationFailed(
        "the identity provider's user has no active account here", rule="login"
    )


def get_person(ctx: Context, actor: str, email: str) -> PersonView:
    """One person: oneself, or anyone for an admin."""

    def work(session: Session, me: Person) -> PersonView:
        person = person_row(session, email)
        if me.id != person.id:
            authorize(me, Action.LIST_PEOPLE)
        return person_view(person)

    return read_as(ctx, actor, Action.LIST_PEOPLE, work, target=email)


def person_by_uuid(ctx: Context, person_uuid: str) -> PersonView | None:
    """The person with this public id, or None: for faces restoring a logged-in session."""

    def work(session: Session) -> PersonView | None:
        person = session.scalar(select(Person).where(Person.uuid == person_uuid))
        return person_view(person) if person else None

    return read(ctx, work)


def list_people(ctx: Context, actor: str) -> list[PersonView]:
    """Every account, by email (admins only)."""

    def work(session: Session, me: Person) -> list[PersonView]:
        authorize(me, Action.LIST_PEOPLE)
        return [person_view(p) for p in session.scalars(select(Person).order_by(Person.email))]

    return read_as(ctx, actor, Action.LIST_PEOPLE, work)
