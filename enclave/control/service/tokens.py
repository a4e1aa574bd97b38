"""Bearer tokens for automation: random, shown once, stored as sha256, expiring, revocable.

A token of a privileged person (``rules.PRIVILEGED_ROLES``: admin, output checker, data
custodian) is issued only on a fresh second factor, the requester's current TOTP code (used
once, like a login's), and lives at most ``PRIVILEGED_MAX_LIFETIME`` (SATRE 3.2.04). A token
that outlives that bound is refused once its owner holds a privileged role, however it was
issued.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from enclave.control import credentials
from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.errors import AuthenticationFailed, InvalidInput, NotFound, RuleViolation
from enclave.control.models import ApiToken, Person
from enclave.control.rules import PRIVILEGED_ROLES, Action
from enclave.control.service._base import (
    authorize,
    clean_text,
    perform,
    person_row,
    read_as,
    record,
)
from enclave.control.service.login_guard import refuse_if_locked
from enclave.control.views import IssuedToken, PersonView, TokenView, person_view, token_view

MAX_LIFETIME = timedelta(days=365)
PRIVILEGED_MAX_LIFETIME = timedelta(hours=12)


def is_privileged(roles: Iterable[str]) -> bool:
    """Whether ``roles`` include one that needs MFA and short-lived tokens."""
    return not PRIVILEGED_ROLES.isdisjoint(roles)


def issue_token(
    ctx: Context,
    actor: str,
    email: str,
    *,
    label: str,
    lifetime: timedelta | None = None,
    totp: str | None = None,
) -> IssuedToken:
    """A new token for ``email`` (oneself, or anyone for an admin). The token is in the
    result only; the database keeps its sha256. Lifetime defaults to the settings' value.

    For a privileged person the actor's current TOTP code ``totp`` is required and used up
    (AuthenticationFailed: ``mfa_required``, ``mfa_not_enrolled``, ``mfa_failed``), and a
    lifetime above ``PRIVILEGED_MAX_LIFETIME`` is refused (``privileged_token_lifetime``; the
    default is capped to it). A code given for anyone else is checked all the same. The audit
    event says how the second factor was proven (``mfa``: ``totp`` or ``none``). Wrong codes
    count toward the actor's login lockout, and a locked-out actor gets no token
    (``login_locked``)."""
    name = clean_text(label, "label", 100)
    if totp:  # codes guessed here count toward the login lockout, and it holds here too
        refuse_if_locked(ctx, actor, Action.ISSUE_TOKEN.value)
    span = lifetime or ctx.token_lifetime
    if not timedelta(minutes=1) <= span <= MAX_LIFETIME:
        raise InvalidInput("a token lives between one minute and 365 days", rule="token_lifetime")
    token, digest = credentials.new_token()

    def work(session: Session, me: Person) -> IssuedToken:
        person = person_row(session, email)
        if person.id != me.id:
            authorize(me, Action.ISSUE_TOKEN)
        if not person.active:
            raise RuleViolation(f"the account {person.email} is suspended", rule="inactive")
        privileged = is_privileged(person.role_names)
        life = _privileged_lifetime(lifetime, span) if privileged else span
        mfa = _prove_mfa(ctx, me, totp, required=privileged)
        now = ctx.now()
        row = ApiToken(
            uuid=str(uuid.uuid4()),
            person_id=person.id,
            token_hash=digest,
            label=name,
            created_at=now,
            expires_at=now + life,
        )
        session.add(row)
        session.flush()
        record(
            session,
            ctx,
            me,
            Action.ISSUE_TOKEN,
            target=row.uuid,
            email=person.email,
            label=name,
            expires_at=row.expires_at.isoformat(),
            privileged=privileged,
            mfa=mfa,
        )
        return IssuedToken(token, token_view(row))

    return perform(ctx, actor, Action.ISSUE_TOKEN, work, target=email)


def _privileged_lifetime(asked: timedelta | None, default: timedelta) -> timedelta:
    """The lifetime of a privileged person's token: the default capped to the bound; an
    explicit request beyond it is refused rather than quietly shortened."""
    if asked is None:
        return min(default, PRIVILEGED_MAX_LIFETIME)
    if asked > PRIVILEGED_MAX_LIFETIME:
        raise RuleViolation(
            "a token of an admin, output checker or data custodian lives at most 12 hours",
            rule="privileged_token_lifetime",
        )
    return asked


def _prove_mfa(ctx: Context, me: Person, code: str | None, *, required: bool) -> str:
    """``totp`` once the actor's code is checked and used up (a replayed one, such as the
    code of the login just made, is refused), ``none`` when none was needed or given."""
    if not code:
        if required:
            raise AuthenticationFailed(
                "a token for an admin, output checker or data custodian needs the current code "
                "from your authenticator app (--totp CODE)",
                rule="mfa_required",
            )
        return "none"
    if me.totp_secret is None:
        raise AuthenticationFailed(
            "you have no authenticator app (TOTP) enrolled: ask an admin to enrol one",
            rule="mfa_not_enrolled",
        )
    step = credentials.match_totp(me.totp_secret, code, ctx.now(), me.totp_last_step)
    if step is None:
        raise AuthenticationFailed(
            "the authenticator code is wrong or was used already: wait for the next one",
            rule="mfa_failed",
        )
    me.totp_last_step = step
    return "totp"


def verify_token(ctx: Context, token: str) -> PersonView:
    """The person a valid bearer token belongs to; AuthenticationFailed (audited) otherwise."""
    digest = credentials.token_digest(token or "")
    found = ctx.cached(("token", digest), lambda: _token_state(ctx, digest))
    owner, problem, target, expires_at = found
    if owner is not None and expires_at is not None and expires_at <= ctx.now():
        owner, problem = None, "expired token"  # the clock, not the database, ends a token
    if owner is not None:
        return owner
    with transaction(ctx.engine) as session:
        record(
            session, ctx, "token", "token_auth", outcome="refused", target=target, reason=problem
        )
    raise AuthenticationFailed("bearer token not accepted", rule="token")


TokenState = tuple[PersonView | None, str, str, datetime | None]


def _token_state(ctx: Context, digest: str) -> TokenState:
    """(owner, problem, token uuid, expiry) of the token with ``digest``: the owner only if
    the token is neither unknown, revoked nor its owner suspended (expiry is for the caller)."""
    # One query for the token, its owner and the owner's roles and accreditations: this runs
    # on every API call that the read cache cannot answer.
    owner = joinedload(ApiToken.person)
    query = (
        select(ApiToken)
        .where(ApiToken.token_hash == digest)
        .options(owner.joinedload(Person.roles), owner.joinedload(Person.accreditations))
    )
    with transaction(ctx.engine, readonly=True) as session:
        row = session.execute(query).unique().scalar_one_or_none()
        if row is None:
            return None, "unknown token", "", None
        if row.revoked_at is not None:
            return None, "revoked token", row.uuid, None
        if row.expires_at <= ctx.now():
            return None, "expired token", row.uuid, None
        if not row.person.active:
            return None, "account suspended", row.uuid, None
        if row.expires_at - row.created_at > PRIVILEGED_MAX_LIFETIME and is_privileged(
            row.person.role_names
        ):
            # issued before its owner became privileged (or before this rule): too long-lived
            return None, "long-lived token of a privileged person", row.uuid, None
        return person_view(row.person), "", row.uuid, row.expires_at


def revoke_token(ctx: Context, actor: str, token_uuid: str) -> TokenView:
    """Revoke a token at once (its owner, or an admin)."""

    def work(session: Session, me: Person) -> TokenView:
        row = session.scalar(select(ApiToken).where(ApiToken.uuid == token_uuid))
        if row is None:
            raise NotFound(f"unknown token {token_uuid!r}", rule="unknown_token")
        if row.person_id != me.id:
            authorize(me, Action.REVOKE_TOKEN)
        if row.revoked_at is None:
            row.revoked_at = ctx.now()
        session.flush()
        record(session, ctx, me, Action.REVOKE_TOKEN, target=row.uuid, email=row.person.email)
        return token_view(row)

    return perform(ctx, actor, Action.REVOKE_TOKEN, work, target=token_uuid)


def list_tokens(ctx: Context, actor: str, email: str | None = None) -> list[TokenView]:
    """Tokens of ``email`` (default: one's own; another person's for an admin), newest first."""

    def work(session: Session, me: Person) -> list[TokenView]:
        person = person_row(session, email) if email else me
        if person.id != me.id:
            authorize(me, Action.ISSUE_TOKEN)
        query = (
            select(ApiToken)
            .where(ApiToken.person_id == person.id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
        return [token_view(t) for t in session.scalars(query)]

    return read_as(ctx, actor, Action.ISSUE_TOKEN, work, target=email or actor)
