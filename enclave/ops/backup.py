"""``enclave backup create``: the database, the data directory and a manifest, all or nothing.

The backup is written to a hidden directory next to its final name and renamed at the end, so
a failed or interrupted backup leaves no directory that looks like a backup. The database is
copied first and the files second: the queue's snapshots and the extracts are only ever added,
so the files are then a superset of what the database refers to.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from tqdm import tqdm  # type: ignore[import-untyped]

from enclave.linkage.keys import MASTER_KEY_ENV, MASTER_KEY_FILE_ENV
from enclave.ops.database import Database
from enclave.ops.manifest import FORMAT, MANIFEST, BackupError, Manifest, sha256_file
from enclave.ops.snapshot import Selection, sqlite_files, write_archive
from enclave.settings import Settings

FILES_ARCHIVE = "files.tar"
MASTER_KEY = "master.key"
PREFIX = "enclave-backup-"

Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(f"enclave backup: {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BackupOptions:
    """``include_keys`` adds ``keys/``, ``secrets/`` and the linkage master key (from
    ``environ``) to the backup; ``progress`` shows bars on stderr."""

    include_keys: bool = False
    progress: bool = True
    environ: dict[str, str] | None = None


def enclave_version() -> str:
    try:
        return version("enclave")
    except PackageNotFoundError:
        return "unknown"


def create_backup(
    settings: Settings, parent: Path, options: BackupOptions = BackupOptions(), say: Say = _stderr
) -> Path:
    """Write a new backup under ``parent`` and return its directory.

    Raises:
        BackupError: the data directory or database is missing or unreadable, ``parent`` lies
            inside the data directory, or a step failed (nothing is left behind then).
    """
    data_dir = settings.data_dir.resolve()
    if not data_dir.is_dir():
        raise BackupError(f"the data directory {data_dir} does not exist")
    parent = parent.resolve()
    if parent == data_dir or data_dir in parent.parents:
        raise BackupError(f"{parent} is inside the data directory; back up to somewhere else")
    database = Database(settings.database_url)
    kind = database.kind
    now = datetime.now(UTC)
    final = parent / f"{PREFIX}{now.strftime('%Y%m%dT%H%M%S%fZ')}"
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{final.name}.partial"
    staging.mkdir(mode=0o700)
    try:
        revisions = database.revisions()
        say(f"copying the {kind} database")
        database_file = staging / database.backup_name
        with tqdm(desc="database", disable=not options.progress, unit="page") as shown:

            def pages(left: int, total: int) -> None:
                shown.total = total
                shown.update(total - left - shown.n)

            database.dump(database_file, pages)
        skipped = sqlite_files(database.sqlite_path.resolve()) if kind == "sqlite" else frozenset()
        say(f"archiving {data_dir}")
        stats = write_archive(
            Selection(data_dir, options.include_keys, skipped),
            staging / FILES_ARCHIVE,
            progress=options.progress,
        )
        if options.include_keys:
            say(
                "WARNING: this backup holds the pseudonym keys; anyone holding it together "
                "with the data can re-identify; keep it offline and apart"
            )
            _copy_master_key(options.environ, staging / MASTER_KEY, say)
        say("hashing the backup")
        files = {p.name: sha256_file(p) for p in sorted(staging.iterdir()) if p.name != MANIFEST}
        Manifest(
            format=FORMAT,
            created=now.isoformat().replace("+00:00", "Z"),
            enclave_version=enclave_version(),
            database_kind=kind,
            database_file=database.backup_name,
            revisions=revisions,
            data_files=stats.files,
            data_bytes=stats.bytes,
            includes_keys=options.include_keys,
            files=files,
        ).write(staging)
        for path in staging.iterdir():
            os.chmod(path, 0o600)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"backup written to {final} ({stats.files} files, {stats.bytes:,} bytes of data)")
    return final


def _copy_master_key(environ: dict[str, str] | None, target: Path, say: Say) -> None:
    env = os.environ if environ is None else environ
    key_file = env.get(MASTER_KEY_FILE_ENV)
    if key_file:
        try:
            text = Path(key_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise BackupError(f"cannot read the linkage master key file: {error}") from None
    elif env.get(MASTER_KEY_ENV):
        text = env[MASTER_KEY_ENV].strip() + "\n"
    else:
        say(f"no linkage master key configured ({MASTER_KEY_FILE_ENV}); none included")
        return
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
