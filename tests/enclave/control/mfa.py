"""A fresh TOTP code for tests that issue tokens of privileged people (SATRE 3.2.04: the
requester proves a second factor, and each code works once)."""

from __future__ import annotations

import pyotp
from sqlalchemy import select

from enclave.control.context import Context
from enclave.control.db import transaction
from enclave.control.models import Person
from enclave.control.service import people
from tests.enclave.control.factories import FakeClock

STEP = 30  # seconds: pyotp's default interval, the control plane's


def fresh_code(ctx: Context, email: str) -> str:
    """A code of ``email`` that the control plane has not seen: their TOTP is enrolled (by
    themselves) on first use, and the test clock moves on a step when this step's code was
    used already (by a login or an earlier token)."""
    with transaction(ctx.engine, readonly=True) as session:
        row = session.execute(
            select(Person.totp_secret, Person.totp_last_step).where(Person.email == email)
        ).one()
    secret, last = row
    if secret is None:
        secret = people.enrol_totp(ctx, email, email).secret
        last = None
    step = int(ctx.now().timestamp() // STEP)
    if last is not None and last >= step:
        assert isinstance(ctx.clock, FakeClock), "a fresh code needs the test clock"
        ctx.clock.advance(seconds=STEP * (last - step + 1))
    return pyotp.TOTP(secret).at(ctx.now())
