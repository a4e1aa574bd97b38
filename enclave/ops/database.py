"""Dump and load the control plane's database (which also holds the review queue's tables).

SQLite is copied with its online backup API, consistent while the enclave writes to it.
PostgreSQL goes through ``pg_dump --format=custom`` and comes back through ``pg_restore`` in
one transaction, so a failed load leaves the target as it was. The password of a PostgreSQL
URL is passed to the tools in ``PGPASSWORD``, never on a command line.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from enclave.control import db as control_db
from enclave.ops.manifest import BackupError

SQLITE_FILE = "database.sqlite3"
POSTGRESQL_FILE = "database.pgdump"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
PAGES_PER_STEP = 4096

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Database:
    """The database named by a SQLAlchemy URL: ``kind`` is ``sqlite`` or ``postgresql``."""

    url: str

    @property
    def kind(self) -> str:
        backend = make_url(control_db.normalise_url(self.url)).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise BackupError(f"cannot back up a {backend} database")
        return backend

    @property
    def backup_name(self) -> str:
        return SQLITE_FILE if self.kind == "sqlite" else POSTGRESQL_FILE

    @property
    def sqlite_path(self) -> Path:
        database = make_url(self.url).database
        if not database or database == ":memory:":
            raise BackupError("an in-memory SQLite database cannot be backed up or restored")
        return Path(database)

    def libpq(self) -> tuple[str, dict[str, str]]:
        """A libpq connection URI without the password, and the environment carrying it."""
        url = make_url(control_db.normalise_url(self.url))
        env = dict(os.environ)
        if url.password:
            env["PGPASSWORD"] = str(url.password)
        plain = url.set(drivername="postgresql", password=None)
        return plain.render_as_string(hide_password=False), env

    def revisions(self) -> dict[str, str | None]:
        """The Alembic revision of the control plane's and the queue's schema."""
        from output_checker.queue import db as queue_db

        if self.kind == "sqlite" and not self.sqlite_path.is_file():
            raise BackupError(f"the SQLite database {self.sqlite_path} does not exist")
        engine = control_db.make_engine(self.url)
        try:
            return {
                "control": control_db.current_revision(engine),
                "queue": queue_db.current_revision(engine),
            }
        except SQLAlchemyError as error:
            raise BackupError(f"cannot read the database: {_first_line(error)}") from None
        finally:
            engine.dispose()

    def is_empty(self) -> bool:
        """Whether the database holds no tables (a SQLite file that does not exist counts)."""
        if self.kind == "sqlite":
            path = self.sqlite_path
            return not path.exists() or path.stat().st_size == 0
        engine = control_db.make_engine(self.url)
        query = text(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        try:
            with engine.connect() as connection:
                return int(connection.execute(query).scalar_one()) == 0
        except SQLAlchemyError as error:
            raise BackupError(f"cannot reach the target database: {_first_line(error)}") from None
        finally:
            engine.dispose()

    def dump(self, target: Path, progress: Progress) -> None:
        """Write a consistent copy of the database to ``target``."""
        if self.kind == "sqlite":
            _sqlite_dump(self.sqlite_path, target, progress)
        else:
            uri, env = self.libpq()
            _run(["pg_dump", "--format=custom", f"--file={target}", f"--dbname={uri}"], env)

    def load_postgresql(self, dump: Path, *, replace: bool) -> None:
        """Load a ``pg_dump`` archive in one transaction (dropping what exists if ``replace``)."""
        uri, env = self.libpq()
        command = ["pg_restore", "--exit-on-error", "--single-transaction", f"--dbname={uri}"]
        if replace:
            command += ["--clean", "--if-exists"]
        _run([*command, str(dump)], env)


def _sqlite_dump(source: Path, target: Path, progress: Progress) -> None:
    if not source.is_file():
        raise BackupError(f"the SQLite database {source} does not exist")
    # read-only while the services keep running: the backup API copies a consistent snapshot
    _sqlite_copy(f"file:{source}?mode=ro", target, f"the SQLite backup of {source}", progress)


def load_sqlite(backup: Path, target: Path) -> None:
    """Copy the backed-up SQLite file into a new database file ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _sqlite_copy(f"file:{backup}?immutable=1", target, "loading the SQLite backup")
    os.chmod(target, 0o600)


def _sqlite_copy(
    source_uri: str, target: Path, what: str, progress: Progress | None = None
) -> None:
    """Copy the database at ``source_uri`` into ``target`` with SQLite's backup API, as one
    self-contained file (no write-ahead log to carry along)."""
    src = sqlite3.connect(source_uri, uri=True, timeout=60)
    dst = sqlite3.connect(target)
    try:
        if progress is None:
            src.backup(dst)
        else:
            src.backup(
                dst, pages=PAGES_PER_STEP, progress=lambda _s, left, total: progress(left, total)
            )
        dst.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error as error:
        raise BackupError(f"{what} failed: {error}") from None
    finally:
        dst.close()
        src.close()


def replace_sqlite(staged: Path, target: Path) -> None:
    """Move a loaded SQLite file over ``target``; the old file's journals go first, since they
    would otherwise be replayed into the restored database."""
    for suffix in SQLITE_SIDE_FILES:
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(staged, target)


def _run(command: list[str], env: dict[str, str]) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(
            f"{command[0]} is not installed (Debian: apt-get install postgresql-client)"
        )
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        errors = [line for line in lines if "error" in line.lower()]
        message = (errors or lines or [f"exit code {done.returncode}"])[0]
        raise BackupError(f"{command[0]} failed: {message}")


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
