"""Passwords (argon2id), TOTP codes (RFC 6238 via pyotp) and bearer tokens (random, stored as
sha256). No database access: the people and token services store what these return."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from enclave.control.errors import InvalidInput

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
TOKEN_PREFIX = "enc_"
TOTP_ISSUER = "Enclave"

_hasher = PasswordHasher()
# Verified against when the account does not exist, so that timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash("not a password anyone has " + secrets.token_hex(8))


def check_password_policy(password: str) -> None:
    """Raise InvalidInput (``password_policy``) for a password that is too short or too long."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(
            f"a password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters",
            rule="password_policy",
        )


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (after the policy check)."""
    check_password_policy(password)
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with no stored hash, spends the same time."""
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored)


def new_totp_secret() -> str:
    """A fresh base32 TOTP secret."""
    return pyotp.random_base32()


def totp_uri(secret: str, account: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=TOTP_ISSUER)


def match_totp(secret: str, code: str, at: datetime, last_step: int | None) -> int | None:
    """The time step ``code`` is valid for (now, or one step either side), else None.

    A step at or before ``last_step`` is refused, so a code cannot be replayed.
    """
    totp = pyotp.TOTP(secret)
    code = (code or "").strip()
    for offset in (0, -1, 1):
        moment = at.timestamp() + offset * totp.interval
        step = int(moment // totp.interval)
        if hmac.compare_digest(totp.at(int(moment)), code):
            return step if last_step is None or step > last_step else None
    return None


def new_token() -> tuple[str, str]:
    """A new bearer token and the sha256 hex digest under which it is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    """sha256 hex of a bearer token: tokens are random, so no salt or slow hash is needed."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
