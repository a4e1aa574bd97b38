"""What closing a project does on disk: inventory, export its audit events, archive its
workspace and destroy its pseudonym key.

All run inside the closing transaction, after every database check has passed and just
before the commit, so a failure leaves the project open and the close can be retried. The
writing steps come first and the destroying ones last; each is idempotent for that reason.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from enclave.control.certificates import SIGNING_KEY_FILE, file_digest

# The research extract (projects/<slug>/data) is deleted, not archived: it is re-derivable from
# the content zone, and keeping a copy after the key is destroyed would keep microdata alive.
EXTRACT_DIR = "data"

# Files of the keys directory that no project's close may take with it, whatever its slug
# (a project named ``certificate-signing`` would otherwise match the signing key).
PROTECTED_KEYS = frozenset({SIGNING_KEY_FILE})


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
        destroyed = []
        for path in key_files(self.keys_dir, project_slug):
            _overwrite(path)
            path.unlink()
            destroyed.append(path.name)
        return sorted(destroyed)


def key_files(keys_dir: Path, project_slug: str) -> list[Path]:
    """The key files of ``project_slug``: ``<slug>`` and ``<slug>.*``, regular files only (a
    symlink is never followed), never a PROTECTED_KEYS file."""
    if not keys_dir.is_dir():
        return []
    doomed = [keys_dir / project_slug, *keys_dir.glob(f"{project_slug}.*")]
    return sorted(
        path
        for path in doomed
        if path.is_file() and not path.is_symlink() and path.name not in PROTECTED_KEYS
    )


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


def archive_dir(data_dir: Path) -> Path:
    """Where closed projects' archives and audit exports go: ``<data_dir>/archive``."""
    return data_dir / "archive"


def _stamp(at: datetime) -> str:
    return at.strftime("%Y%m%dT%H%M%SZ")


def archive_workspace(data_dir: Path, project_slug: str, at: datetime) -> ArchiveResult:
    """Pack ``projects/<slug>`` (less its extract) into ``archive/<slug>-<time>.tar.gz``.

    The workspace directory is removed afterwards. Returns an empty result when there is no
    workspace (a project closed before any session, or a retried close).
    """
    packed = pack_workspace(data_dir, project_slug, at)
    extract_deleted = remove_workspace(data_dir, project_slug)
    return ArchiveResult(packed.archive, packed.sha256, extract_deleted)


def pack_workspace(data_dir: Path, project_slug: str, at: datetime) -> ArchiveResult:
    """Write the archive of ``projects/<slug>`` less its extract, touching nothing else
    (``remove_workspace`` deletes afterwards). ``extract_deleted`` is always False here."""
    source = workspace_dir(data_dir, project_slug)
    if not source.is_dir():
        return ArchiveResult(None, None, False)
    skipped = f"{project_slug}/{EXTRACT_DIR}"

    def without_extract(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if info.name == skipped or info.name.startswith(f"{skipped}/") else info

    target_dir = archive_dir(data_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{project_slug}-{_stamp(at)}.tar.gz"
    partial = target.with_suffix(".partial")
    try:
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(source, arcname=project_slug, filter=without_extract)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return ArchiveResult(target, file_digest(target)[1], False)


def remove_workspace(data_dir: Path, project_slug: str) -> bool:
    """Delete ``projects/<slug>`` with its extract (even a read-only one); return whether
    there was an extract."""
    source = workspace_dir(data_dir, project_slug)
    if not source.is_dir():
        return False
    extract_deleted = (source / EXTRACT_DIR).exists()
    for path in [source, *source.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            os.chmod(path, 0o700)  # the extract is made read-only once written
    shutil.rmtree(source)
    return extract_deleted


@dataclass(frozen=True)
class Item:
    """One file a close deletes, archives or destroys, as it was before: its path relative to
    the data directory, its size and its sha256."""

    path: str
    size: int
    sha256: str
    disposition: str  # deleted | archived | destroyed

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "disposition": self.disposition,
        }


def inventory(data_dir: Path, project_slug: str) -> list[Item]:
    """Every regular file the close of ``project_slug`` will remove, hashed beforehand: the
    workspace's files (the extract ``deleted``, the rest ``archived``) and its key files
    (``destroyed``). Symlinks are never followed."""
    items: list[Item] = []
    source = workspace_dir(data_dir, project_slug)
    extract = source / EXTRACT_DIR
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.is_symlink():
                inside = extract in path.parents
                items.append(_item(data_dir, path, "deleted" if inside else "archived"))
    for path in key_files(data_dir / "keys", project_slug):
        items.append(_item(data_dir, path, "destroyed"))
    return items


def _item(data_dir: Path, path: Path, disposition: str) -> Item:
    size, digest = file_digest(path)
    return Item(path.relative_to(data_dir).as_posix(), size, digest, disposition)


@dataclass(frozen=True)
class Export:
    """A file written by a close: where, how big, its sha256 and how many lines."""

    path: Path
    size: int
    sha256: str
    lines: int


def export_audit(data_dir: Path, project_slug: str, at: datetime, lines: Iterable[str]) -> Export:
    """Write ``lines`` (JSON, one per line) to ``archive/<slug>-<time>.audit.jsonl``; written
    to a temporary name and renamed, so a reader never sees half of it."""
    target_dir = archive_dir(data_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{project_slug}-{_stamp(at)}.audit.jsonl"
    partial = target.with_suffix(".partial")
    count = 0
    try:
        with partial.open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    size, digest = file_digest(target)
    return Export(target, size, digest, count)
