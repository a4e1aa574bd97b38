"""What closing a project does on disk: archive its workspace and destroy its pseudonym key.

Both run inside the closing transaction, after every database check has passed and just
before the commit, so a failure leaves the project open and the close can be retried. Both are
idempotent for that reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

# The research extract (projects/<slug>/data) is deleted, not archived: it is re-derivable from
# the content zone, and keeping a copy after the key is destroyed would keep microdata alive.
EXTRACT_DIR = "data"


class KeyDestroyer(Protocol):
    """Destroys a project's pseudonym key(s). The linkage unit provides the real one."""

    def destroy(self, project_slug: str) -> list[str]:
        """Destroy every key of ``project_slug``; return what was destroyed (names, not keys).

        Must be idempotent: a second call after success returns an empty list.
        """
        ...


@dataclass(frozen=True)
class FileKeyDestroyer:
    """Deletes ``<keys_dir>/<slug>`` and ``<keys_dir>/<slug>.*`` after overwriting them.

    Only an exact name or a name with a suffix after a dot matches: slugs never contain dots,
    so project ``abc`` can never take ``abc-def``'s key with it.
    """

    keys_dir: Path

    def destroy(self, project_slug: str) -> list[str]:
        if not self.keys_dir.is_dir():
            return []
        doomed = [self.keys_dir / project_slug, *self.keys_dir.glob(f"{project_slug}.*")]
        destroyed = []
        for path in doomed:
            if path.is_file() and not path.is_symlink():
                _overwrite(path)
                path.unlink()
                destroyed.append(path.name)
        return sorted(destroyed)


def _overwrite(path: Path) -> None:
    # Best effort only (journalling and SSDs keep copies); the real protection is that the
    # key never leaves the keys directory and the disk is encrypted.
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.write(b"\0" * size)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class ArchiveResult:
    """Where the workspace went: the archive (None if there was no workspace) and its hash."""

    archive: Path | None
    sha256: str | None
    extract_deleted: bool


def workspace_dir(data_dir: Path, project_slug: str) -> Path:
    """The project's working directory: ``<data_dir>/projects/<slug>``."""
    return data_dir / "projects" / project_slug


def archive_workspace(data_dir: Path, project_slug: str, at: datetime) -> ArchiveResult:
    """Pack ``projects/<slug>`` (less its extract) into ``archive/<slug>-<time>.tar.gz``.

    The workspace directory is removed afterwards. Returns an empty result when there is no
    workspace (a project closed before any session, or a retried close).
    """
    source = workspace_dir(data_dir, project_slug)
    if not source.is_dir():
        return ArchiveResult(None, None, False)
    extract = source / EXTRACT_DIR
    extract_deleted = extract.exists()
    if extract_deleted:
        shutil.rmtree(extract)
    target_dir = data_dir / "archive"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{project_slug}-{at.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"
    partial = target.with_suffix(".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(source, arcname=project_slug)
    partial.replace(target)
    shutil.rmtree(source)
    return ArchiveResult(target, _sha256(target), extract_deleted)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
