"""The manifest of a backup: what it holds, where it came from, and the sha256 of every file.

A restore checks every listed file against its hash before touching anything, and refuses a
backup with a file missing, changed or unlisted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT = 1
BLOCK = 1 << 20


class BackupError(Exception):
    """A backup or restore was refused or failed; ``str(error)`` is one line for people."""


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``: ``files`` maps each file of the backup (not the manifest) to its
    sha256; ``revisions`` the Alembic revision of each schema (control plane, queue)."""

    format: int
    created: str
    enclave_version: str
    database_kind: str
    database_file: str
    revisions: dict[str, str | None]
    data_files: int
    data_bytes: int
    includes_keys: bool
    files: dict[str, str]

    def write(self, directory: Path) -> None:
        text = json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"
        (directory / MANIFEST).write_text(text, encoding="utf-8")

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """The manifest of the backup in ``directory``; BackupError if absent or malformed."""
        path = directory / MANIFEST
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            manifest = cls(**data)
        except FileNotFoundError:
            raise BackupError(f"{directory} is not a backup: {MANIFEST} is missing") from None
        except (OSError, ValueError, TypeError) as error:
            raise BackupError(f"{path} is unreadable: {error}") from None
        if manifest.format != FORMAT:
            raise BackupError(f"{path}: backup format {manifest.format} is not {FORMAT}")
        return manifest


def sha256_file(path: Path) -> str:
    """The sha256 (hex) of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(directory: Path, manifest: Manifest) -> None:
    """Raise BackupError naming the first file that is missing, changed or not listed."""
    present = {p.name for p in directory.iterdir()} - {MANIFEST}
    unlisted = sorted(present - set(manifest.files))
    if unlisted:
        raise BackupError(f"{directory / unlisted[0]} is not listed in the manifest")
    for name, expected in sorted(manifest.files.items()):
        path = directory / name
        if Path(name).name != name or not path.is_file():
            raise BackupError(f"{path} is missing from the backup")
        if sha256_file(path) != expected:
            raise BackupError(f"{path} does not match its sha256 in the manifest")
