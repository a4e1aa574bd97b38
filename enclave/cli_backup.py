"""``enclave backup create|verify|restore``: wiring only (the logic is in ``enclave.ops``).

A refusal (damaged backup, non-empty target, missing tool) is one line on stderr and exit
code 2, with nothing changed. A restore whose audit chain then fails verification exits 1.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path

from enclave.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.load(config_file=args.config)
    data_dir = getattr(args, "data_dir", None)
    database_url = getattr(args, "database_url", None)
    if data_dir is not None:
        follows = settings.database_url == Settings(data_dir=settings.data_dir).database_url
        values = {f.name: getattr(settings, f.name) for f in fields(Settings)}
        # a default SQLite file lives in the data directory, so it moves with it
        values.update(data_dir=data_dir, database_url="" if follows else settings.database_url)
        settings = Settings(**values)
    if database_url:
        settings = replace(settings, database_url=database_url)
    return settings


def _fail(error: Exception) -> int:
    print(f"enclave backup: error: {error}", file=sys.stderr)
    return 2


def _create(args: argparse.Namespace) -> int:
    from enclave.ops.backup import BackupOptions, create_backup
    from enclave.ops.manifest import BackupError

    options = BackupOptions(include_keys=args.include_keys, progress=not args.quiet)
    try:
        path = create_backup(_settings(args), args.to, options)
    except BackupError as error:
        return _fail(error)
    print(path)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from enclave.ops.manifest import BackupError
    from enclave.ops.restore import check_backup

    try:
        manifest = check_backup(args.source)
    except BackupError as error:
        return _fail(error)
    print(
        f"backup intact: {len(manifest.files)} files, {manifest.database_kind} database, "
        f"made {manifest.created} by enclave {manifest.enclave_version}"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from enclave.ops.manifest import BackupError
    from enclave.ops.restore import restore_backup

    try:
        report = restore_backup(
            args.source, _settings(args), force=args.force, master_key_to=args.master_key_to
        )
    except BackupError as error:
        return _fail(error)
    print(f"restored into {report.data_dir} ({report.database_kind} database)")
    if report.kept_aside is not None:
        print(f"the replaced data directory is kept at {report.kept_aside}")
    if report.schema_behind:
        print(
            "the schema is older than this code: run `enclave admin init` and `output-checker init`"
        )
    if not report.audit.ok:
        print(f"enclave backup: {report.audit.summary()}", file=sys.stderr)
        return 1
    print(report.audit.summary())
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``backup create``, ``backup verify`` and ``backup restore`` to ``enclave``."""
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", type=Path, help="TOML settings file (or $ENCLAVE_CONFIG)")
    backup = sub.add_parser("backup", help="back up or restore the database and data directory")
    verbs = backup.add_subparsers(dest="backup_command", required=True)
    create = verbs.add_parser("create", help="write a new backup directory", parents=[config])
    create.add_argument("--to", type=Path, required=True, metavar="DIR", help="where to write it")
    create.add_argument("--quiet", action="store_true", help="no progress bars")
    create.add_argument(
        "--include-keys",
        action="store_true",
        help="also the pseudonym keys, secrets/ and the linkage master key (keep offline!)",
    )
    create.set_defaults(run=_create)
    check = verbs.add_parser("verify", help="check a backup's sha256 sums", parents=[config])
    check.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR")
    check.set_defaults(run=_verify)
    restore = verbs.add_parser(
        "restore", help="restore a backup, then verify the audit chain", parents=[config]
    )
    restore.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR")
    restore.add_argument("--data-dir", type=Path, help="restore here (default: the settings')")
    restore.add_argument("--database-url", help="restore into this database (default: settings')")
    restore.add_argument("--force", action="store_true", help="replace a non-empty target")
    restore.add_argument(
        "--master-key-to", type=Path, metavar="FILE", help="write the backup's master key here"
    )
    restore.set_defaults(run=_restore)
