"""``enclave backup restore``: check the whole backup, load it, then verify the audit chain.

Nothing is changed until every file of the backup matches its sha256 and the targets are
empty (or ``force`` says to replace them). The files are unpacked into a hidden directory next
to the data directory and swapped in with a rename at the end; a replaced data directory is
kept beside it as ``<name>.before-restore-<time>``. A PostgreSQL database is loaded in one
transaction just before the swap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from enclave.control import audit
from enclave.control import db as control_db
from enclave.linkage.zones import remove_tree
from enclave.ops.backup import FILES_ARCHIVE, MASTER_KEY
from enclave.ops.database import Database, load_sqlite, replace_sqlite
from enclave.ops.manifest import BackupError, Manifest, verify_files
from enclave.ops.snapshot import extract_archive
from enclave.settings import Settings
from output_checker.queue import db as queue_db

Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(f"enclave backup: {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RestoreReport:
    """What was restored and what the audit chain's verification found."""

    data_dir: Path
    database_kind: str
    audit: audit.VerifyReport
    schema_behind: bool
    kept_aside: Path | None


def check_backup(source: Path, say: Say = _stderr) -> Manifest:
    """The backup's manifest once every file matches its sha256; BackupError otherwise."""
    if not source.is_dir():
        raise BackupError(f"{source} is not a directory")
    manifest = Manifest.read(source)
    say(f"checking the sha256 of {len(manifest.files)} files")
    verify_files(source, manifest)
    for name, migrations in (
        ("control", control_db.MIGRATIONS),
        ("queue", queue_db.MIGRATIONS),
    ):
        revision = manifest.revisions.get(name)
        if revision is not None and not _known(migrations, revision):
            raise BackupError(
                f"the backup's {name} schema is at revision {revision}, unknown to this "
                f"version of the enclave: restore with enclave {manifest.enclave_version}"
            )
    return manifest


def _known(migrations: Path, revision: str) -> bool:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    try:
        return ScriptDirectory.from_config(config).get_revision(revision) is not None
    except CommandError:
        return False


def restore_backup(
    source: Path,
    settings: Settings,
    *,
    force: bool = False,
    master_key_to: Path | None = None,
    say: Say = _stderr,
) -> RestoreReport:
    """Restore the backup in ``source`` into ``settings``' data directory and database.

    Raises:
        BackupError: the backup is damaged or incomplete, of another database kind, newer
            than this code, or a target is not empty and ``force`` is not set. Nothing has
            changed then.
    """
    source = source.resolve()
    manifest = check_backup(source, say)
    database = Database(settings.database_url)
    if database.kind != manifest.database_kind:
        raise BackupError(
            f"the backup holds a {manifest.database_kind} database; the target is {database.kind}"
        )
    data_dir = settings.data_dir.resolve()
    if master_key_to is not None and master_key_to.exists():
        raise BackupError(f"{master_key_to} exists; a master key is never overwritten")
    if not force:
        if data_dir.exists() and any(data_dir.iterdir()):
            raise BackupError(f"the data directory {data_dir} is not empty (--force replaces it)")
        if not database.is_empty():
            raise BackupError("the target database is not empty (--force replaces it)")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = data_dir.parent / f".{data_dir.name}.restoring-{stamp}"
    staged_db: Path | None = None
    try:
        say(f"unpacking {manifest.data_files} files")
        extract_archive(source / FILES_ARCHIVE, staging)
        os.chmod(staging, 0o711)
        dump = source / manifest.database_file
        if database.kind == "sqlite":
            target = database.sqlite_path.resolve()
            inside = data_dir in target.parents
            staged_db = (
                staging / target.relative_to(data_dir)
                if inside
                else target.parent / f".{target.name}.restoring-{stamp}"
            )
            say("loading the SQLite database")
            load_sqlite(dump, staged_db)
            os.chmod(staged_db.parent, 0o700)
        else:
            say("loading the PostgreSQL database (one transaction)")
            database.load_postgresql(dump, replace=force)
    except BaseException:
        remove_tree(staging)
        if staged_db is not None and staging not in staged_db.parents:
            staged_db.unlink(missing_ok=True)
        raise
    kept_aside = _swap(staging, data_dir, stamp)
    if staged_db is not None and staging not in staged_db.parents:
        replace_sqlite(staged_db, database.sqlite_path.resolve())
    _install_master_key(source, master_key_to, say)
    say("verifying the audit chain")
    engine = control_db.make_engine(settings.database_url)
    try:
        report = audit.verify(engine)
    finally:
        engine.dispose()
    behind = manifest.revisions.get(
        "control"
    ) != control_db.head_revision() or manifest.revisions.get("queue") not in (
        None,
        queue_db.head_revision(),
    )
    return RestoreReport(data_dir, database.kind, report, behind, kept_aside)


def _swap(staging: Path, data_dir: Path, stamp: str) -> Path | None:
    kept: Path | None = None
    if data_dir.exists():
        if any(data_dir.iterdir()):
            kept = data_dir.parent / f"{data_dir.name}.before-restore-{stamp}"
            os.replace(data_dir, kept)
        else:
            data_dir.rmdir()
    os.replace(staging, data_dir)
    return kept


def _install_master_key(source: Path, target: Path | None, say: Say) -> None:
    key = source / MASTER_KEY
    if not key.is_file():
        if target is not None:
            say("the backup holds no master key; nothing written to --master-key-to")
        return
    if target is None:
        say(f"the backup holds the linkage master key ({key}); install it with --master-key-to")
        return
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.read_bytes())
    say(f"linkage master key written to {target}")
