"""Unix accounts of the sessions: every researcher's server runs under its own uid.

The host account is ``<prefix><username>`` (``enc-rae``), so no researcher can be given the
name, and the uid, of a system account such as ``root`` or ``postgres``. Names that would pass
the 32-character limit of ``useradd`` become ``<prefix>`` plus a hash. The account has no home,
no password and no login shell: it exists only to own the session's processes and files.
Inside the sandbox the generated ``/etc/passwd`` shows the researcher's own username.
"""

from __future__ import annotations

import asyncio
import hashlib
import pwd
import re
from dataclasses import dataclass

MAX_NAME = 32
VALID = re.compile(r"^[a-z_][a-z0-9_.-]*$")


class AccountError(RuntimeError):
    """The account could not be created or is unusable (a uid of 0, for instance)."""


@dataclass(frozen=True)
class Account:
    """A host account: its name, uid and primary gid."""

    name: str
    uid: int
    gid: int


def account_name(username: str, prefix: str) -> str:
    """The host account name of ``username``: readable when it fits, hashed when not."""
    name = prefix + username.replace(".", "-")
    if len(name) <= MAX_NAME and VALID.match(name):
        return name
    digest = hashlib.sha256(username.encode("utf-8")).hexdigest()
    return (prefix + digest)[:MAX_NAME]


def lookup(name: str) -> Account | None:
    """The existing account ``name``, or None."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


_LOCK = asyncio.Lock()  # useradd takes a lock on /etc/passwd and fails when it is held


async def ensure_account(name: str, *, useradd: str = "/usr/sbin/useradd") -> Account:
    """Return the account ``name``, creating it (no home, no password, no shell) if needed.

    Raises AccountError when useradd fails or the account maps to uid or gid 0.
    """
    async with _LOCK:
        found = lookup(name)
        if found is None:
            process = await asyncio.create_subprocess_exec(
                useradd,
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                "--comment",
                "enclave session",
                name,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await process.communicate()
            found = lookup(name)
            if found is None:
                detail = err.decode("utf-8", "replace").strip()
                raise AccountError(f"useradd {name} failed ({process.returncode}): {detail}")
    if found.uid == 0 or found.gid == 0:
        raise AccountError(f"account {name} has uid or gid 0 and cannot run a session")
    return found
