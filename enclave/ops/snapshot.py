"""The data directory as a tar archive, less what a backup must not or need not carry.

Left out always: the SQLite database and its journals (they come from the backup API),
``run/`` (sockets), ``session-env/`` (rebuilt by ``enclave up``) and ``hub/`` (JupyterHub's own
sessions and cookie secret, recreated at start; memberships are mirrored from the control
plane). Left out unless keys are asked for: ``keys/`` (the projects' pseudonym salts) and
``secrets/``, which are backed up apart from the data (see docs/operations.md).
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from enclave.linkage.progress import bar

ALWAYS_LEFT_OUT = frozenset({"run", "session-env", "hub"})
KEY_DIRS = frozenset({"keys", "secrets"})


@dataclass(frozen=True)
class SnapshotStats:
    files: int
    bytes: int


@dataclass(frozen=True)
class Selection:
    """Which paths under ``data_dir`` go into the archive."""

    data_dir: Path
    include_keys: bool
    skipped_files: frozenset[Path]

    def top_level_left_out(self) -> frozenset[str]:
        return ALWAYS_LEFT_OUT if self.include_keys else ALWAYS_LEFT_OUT | KEY_DIRS

    def entries(self) -> Iterator[Path]:
        """Directories and regular files (and symbolic links) to archive, parents first."""
        left_out = self.top_level_left_out()
        for root, dirs, files in os.walk(self.data_dir):
            here = Path(root)
            if here == self.data_dir:
                dirs[:] = [d for d in dirs if d not in left_out]
            dirs.sort()
            for name in dirs:
                yield here / name
            for name in sorted(files):
                path = here / name
                mode = path.lstat().st_mode
                wanted = stat.S_ISREG(mode) or stat.S_ISLNK(mode)
                if wanted and path not in self.skipped_files:
                    yield path


def sqlite_files(database: Path) -> frozenset[Path]:
    """A SQLite database file and its journals."""
    names = [database, *(Path(f"{database}{s}") for s in ("-wal", "-shm", "-journal"))]
    return frozenset(names)


def write_archive(selection: Selection, target: Path, *, progress: bool) -> SnapshotStats:
    """Write the selected entries to an uncompressed tar at ``target`` (paths relative to the
    data directory; owners, modes and times kept)."""
    entries = list(selection.entries())
    total = sum(p.lstat().st_size for p in entries if p.is_file() and not p.is_symlink())
    files = 0
    with (
        tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar,
        bar(total, "data directory", enabled=progress, unit="B") as shown,
    ):
        for path in entries:
            info = tar.gettarinfo(path, arcname=str(path.relative_to(selection.data_dir)))
            if info.isreg():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
                files += 1
                shown.update(info.size)
            else:
                tar.addfile(info)
    return SnapshotStats(files, total)


def extract_archive(archive: Path, target: Path) -> None:
    """Unpack into ``target``; the ``tar`` filter refuses absolute paths, escapes and links
    out of ``target``, and drops setuid bits, while owners and modes are kept."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r") as tar:
        tar.extractall(target, filter="tar")
