"""Where keys live: the master key outside the database, project salts in key files.

The master key comes from the file named by ``ENCLAVE_LINKAGE_MASTER_KEY_FILE`` or from
``ENCLAVE_LINKAGE_MASTER_KEY`` (64 hex digits), never from the database. Each project's key
file ``<data_dir>/keys/<slug>.key`` holds its random salt and key version; the control
plane's close-project hook (``FileKeyDestroyer``) overwrites and deletes it, after which the
project's pseudonyms cannot be derived again. Re-issuing a key for a slug makes a new salt,
so it never brings the old pseudonyms back.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from enclave.linkage.errors import KeyUnavailable
from enclave.linkage.pseudonyms import MIN_KEY_BYTES, project_key

MASTER_KEY_ENV = "ENCLAVE_LINKAGE_MASTER_KEY"
MASTER_KEY_FILE_ENV = "ENCLAVE_LINKAGE_MASTER_KEY_FILE"


def parse_master_key(text: str) -> bytes:
    """A master key from 64+ hex digits; KeyUnavailable otherwise."""
    value = text.strip()
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise KeyUnavailable("the linkage master key must be hex digits") from None
    if len(key) < MIN_KEY_BYTES:
        raise KeyUnavailable("the linkage master key must be at least 32 bytes (64 hex digits)")
    return key


def load_master_key(environ: Mapping[str, str] | None = None) -> bytes:
    """The master key from ``$ENCLAVE_LINKAGE_MASTER_KEY_FILE`` or, failing that,
    ``$ENCLAVE_LINKAGE_MASTER_KEY``.

    Raises:
        KeyUnavailable: neither is set, the file cannot be read, or the key is malformed.
    """
    env = os.environ if environ is None else environ
    path = env.get(MASTER_KEY_FILE_ENV)
    if path:
        try:
            return parse_master_key(Path(path).read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError) as error:
            raise KeyUnavailable(f"cannot read the linkage master key file: {error}") from None
    value = env.get(MASTER_KEY_ENV)
    if value:
        return parse_master_key(value)
    raise KeyUnavailable(
        f"no linkage master key: set {MASTER_KEY_FILE_ENV} (a file with 64 hex digits) "
        f"or {MASTER_KEY_ENV}; `enclave link keygen --out FILE` makes one"
    )


def generate_master_key(path: Path) -> None:
    """Write a new random master key (hex) to ``path``, readable by its owner only.

    Raises:
        KeyUnavailable: ``path`` already exists (a key is never overwritten).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyUnavailable(f"{path} already exists; a master key is never overwritten") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")


@dataclass(frozen=True)
class ProjectKeyFile:
    """The contents of ``<keys>/<slug>.key``."""

    project: str
    version: int
    salt: bytes
    created: str


def key_file(keys_dir: Path, project: str) -> Path:
    """Where ``project``'s key file lives (the name ``FileKeyDestroyer`` deletes)."""
    return keys_dir / f"{project}.key"


def issue_project_key(keys_dir: Path, project: str) -> ProjectKeyFile:
    """The project's key file, created with a fresh random salt if there is none yet."""
    path = key_file(keys_dir, project)
    if path.exists():
        return read_project_key(keys_dir, project)
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    record = ProjectKeyFile(
        project, 1, secrets.token_bytes(MIN_KEY_BYTES), datetime.now(UTC).isoformat()
    )
    data = {
        "project": record.project,
        "version": record.version,
        "salt": record.salt.hex(),
        "created": record.created,
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process issued it first: use that one
        return read_project_key(keys_dir, project)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    return record


def read_project_key(keys_dir: Path, project: str) -> ProjectKeyFile:
    """The existing key file of ``project``.

    Raises:
        KeyUnavailable: there is none (never issued, or destroyed when the project closed),
            or it is unreadable.
    """
    path = key_file(keys_dir, project)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = ProjectKeyFile(
            str(data["project"]),
            int(data["version"]),
            bytes.fromhex(data["salt"]),
            str(data["created"]),
        )
    except FileNotFoundError:
        raise KeyUnavailable(
            f"project {project} has no pseudonym key (never issued, or destroyed at closure)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise KeyUnavailable(f"the key file of project {project} is unreadable: {error}") from None
    if record.project != project:
        raise KeyUnavailable(f"the key file {path.name} belongs to project {record.project}")
    return record


def derive_project_key(master_key: bytes, record: ProjectKeyFile) -> bytes:
    """``K_p`` from the master key and the project's key file."""
    return project_key(master_key, record.project, salt=record.salt, version=record.version)
