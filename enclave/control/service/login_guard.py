"""Login with a lockout: refuse an email after repeated failed logins, without checking its
credentials, until the failures age out of the window.

The count comes from the audit log (``login`` events refused for that email since its last
successful login), so it holds across processes and restarts and needs no table of its own.
The lockout is per email, whether or not an account exists, so it reveals nothing about which
accounts exist; attempts refused by the lockout itself are audited but not counted, so an
attacker who keeps trying cannot extend it forever.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import joinedload

from enclave.control.audit import format_time
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import AuthenticationFailed, PermissionDenied
from enclave.control.models import AuditEvent, Person
from enclave.control.rules import Action
from enclave.control.service._base import record
from enclave.control.service.people import authenticate, vouched_login
from enclave.control.service.standing import check_not_sanctioned, person_standing_of
from enclave.control.views import PersonView, person_view

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)
LOCKED_REASON = "locked out after repeated failures"
# What a person with the right credentials is still refused for at login (the rest of
# standing, training and the user agreement, is asked at session start).
LOGIN_STANDING = ("sanctioned", "organisation_assurance")


def recent_failures(ctx: Context, email: str, *, window: timedelta = WINDOW) -> int:
    """Refused logins of ``email`` within ``window``, after its last successful login, and the
    wrong authenticator codes given meanwhile to get a privileged token (``mfa_failed``): a
    code guessed there is a code guessed."""
    address = (email or "").strip().lower()[:320]
    since = format_time(ctx.now() - window)  # ISO UTC strings sort like the times they name
    query = (
        select(AuditEvent.action, AuditEvent.outcome, AuditEvent.detail)
        .where(
            AuditEvent.action.in_(("login", Action.ISSUE_TOKEN.value)),
            AuditEvent.actor == address,
            AuditEvent.at >= since,
        )
        .order_by(AuditEvent.seq)
    )
    failures = 0
    with transaction(ctx.engine, readonly=True) as session:
        for action, outcome, detail in session.execute(query):
            facts = json.loads(detail)
            if action != "login":
                failures += outcome == "refused" and facts.get("rule") == "mfa_failed"
            elif outcome != "refused":
                failures = 0
            elif facts.get("reason") != LOCKED_REASON:
                failures += 1
    return failures


def refuse_if_locked(
    ctx: Context,
    email: str,
    action: str,
    *,
    max_failures: int = MAX_FAILURES,
    window: timedelta = WINDOW,
) -> None:
    """AuthenticationFailed (``login_locked``, audited as a refused ``action``) once ``email``
    had ``max_failures`` failures within ``window`` (``recent_failures``)."""
    address = (email or "").strip().lower()[:320]
    if recent_failures(ctx, address, window=window) < max_failures:
        return
    with transaction(ctx.engine) as session:
        record(session, ctx, address, action, outcome="refused", reason=LOCKED_REASON)
    raise AuthenticationFailed("email, password or code not accepted", rule="login_locked")


def login(
    ctx: Context,
    email: str,
    password: str,
    totp_code: str,
    *,
    max_failures: int = MAX_FAILURES,
    window: timedelta = WINDOW,
) -> PersonView:
    """``people.authenticate``, unless ``email`` had ``max_failures`` refused logins within
    ``window``: then the attempt is refused (and audited) without looking at the credentials.

    Returns the person; raises AuthenticationFailed with the same message either way. With
    the right credentials, a sanctioned person or one whose organisation's assurance lapsed
    is refused too, with the reason and the standing rule (``standing_refusal``).
    """
    refuse_if_locked(ctx, email, "login", max_failures=max_failures, window=window)
    person = authenticate(ctx, email, password, totp_code)
    standing_refusal(ctx, person)
    return person


def vouched_login_in_standing(ctx: Context, username: str | None, *, method: str) -> PersonView:
    """``people.vouched_login`` (an identity provider has authenticated ``username``), then
    the standing a password login needs too: a sanctioned person, or one whose organisation's
    assurance lapsed, is refused (``standing_refusal``)."""
    person = vouched_login(ctx, username, method=method)
    standing_refusal(ctx, person)
    return person


def standing_refusal(ctx: Context, person: PersonView) -> None:
    """Raise AuthenticationFailed (rule ``sanctioned`` or ``organisation_assurance``, the
    reason in the message) when ``person``, just authenticated, is not in standing; the
    refusal is audited as a refused ``login``. Only said after the credentials were right,
    so it reveals nothing to someone guessing."""
    with transaction(ctx.engine) as session:
        row = session.scalar(select(Person).where(Person.uuid == person.uuid))
        assert row is not None
        standing = person_standing_of(session, row, ctx.today(), ctx.policy, rules=LOGIN_STANDING)
        if standing.ok:
            return
        record(
            session,
            ctx,
            row,
            "login",
            outcome="refused",
            target=row.uuid,
            rule=standing.rule,
            reason=standing.reason,
        )
    raise AuthenticationFailed(f"login refused: {standing.reason}", rule=standing.rule)


def logout(ctx: Context, email: str, session_id: str) -> None:
    """End web session ``session_id`` of ``email`` for good (audited as ``logout``): a copy of
    its cookie is refused from now on (see ``session_ended``)."""
    with transaction(ctx.engine) as session:
        record(session, ctx, email, "logout", target=f"session:{session_id}"[:200])


def _logout_of(email: str, session_id: str) -> Select[int]:
    return (
        select(AuditEvent.seq)
        .where(
            AuditEvent.action == "logout",
            AuditEvent.actor == email,
            AuditEvent.target == f"session:{session_id}"[:200],
        )
        .limit(1)
    )


def session_ended(ctx: Context, email: str, session_id: str) -> bool:
    """Whether web session ``session_id`` of ``email`` was logged out."""
    with transaction(ctx.engine, readonly=True) as session:
        return session.execute(_logout_of(email, session_id)).first() is not None


def session_person(ctx: Context, person_uuid: str, session_id: str) -> PersonView | None:
    """The person web session ``session_id`` belongs to, or None if the account is gone or
    suspended or the session was logged out. Asked on every page view, so it is one read
    transaction of two queries (the person with roles and accreditations, the logout), kept
    in the read cache while nothing changes."""
    return ctx.cached(
        ("session", person_uuid, session_id), lambda: _session_person(ctx, person_uuid, session_id)
    )


def _session_person(ctx: Context, person_uuid: str, session_id: str) -> PersonView | None:
    query = (
        select(Person)
        .where(Person.uuid == person_uuid)
        .options(joinedload(Person.roles), joinedload(Person.accreditations))
    )
    with transaction(ctx.engine, readonly=True) as session:
        person = session.execute(query).unique().scalar_one_or_none()
        if person is None or not person.active:
            return None
        if session.execute(_logout_of(person.email, session_id)).first() is not None:
            return None
        try:  # a sanction ends web sessions already open
            check_not_sanctioned(session, person)
        except PermissionDenied:
            return None
        return person_view(person)
