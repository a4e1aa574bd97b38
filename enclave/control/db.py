"""Engine, transaction scope and migrations of the control-plane database.

Writes are serialised on both backends, so a rule checked at the start of a transaction still
holds at its end and the audit chain never forks: SQLite transactions begin with
``BEGIN IMMEDIATE`` (the write lock is taken up front) and PostgreSQL write transactions take a
transaction-scoped advisory lock first. Control-plane writes are small and rare; correctness
is worth more than concurrent writers here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from enclave.control import readcache
from enclave.control.errors import ControlError
from enclave.control.models import StateVersion

MIGRATIONS = Path(__file__).with_name("migrations")
# Arbitrary constant naming the control plane's write lock among PostgreSQL advisory locks.
WRITE_LOCK_KEY = 0x656E636C  # "encl"
WRITE_LOCK = select(func.pg_advisory_xact_lock(WRITE_LOCK_KEY))
# Every write transaction moves the state version on (under the write lock, so versions follow
# commit order); readers may keep what they read while it stands still.
BUMP_VERSION = (
    update(StateVersion)
    .where(StateVersion.id == 1)
    .values(n=StateVersion.n + 1)
    .execution_options(synchronize_session=False)
)
VERSION = select(StateVersion.n).where(StateVersion.id == 1)
# Execution options of a read-only transaction; ``postgresql_readonly`` is reset when the
# connection goes back to the pool.
SQLITE_READ = {"enclave_readonly": True}
READONLY_OPTIONS = {**SQLITE_READ, "postgresql_readonly": True}


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite file or PostgreSQL); creates a SQLite file's directory."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module so that _sqlite_begin decides.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA busy_timeout = 60000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    readonly = connection.get_execution_options().get("enclave_readonly", False)
    connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


@contextmanager
def transaction(
    engine: Engine, *, readonly: bool = False, moves_version: bool = True
) -> Iterator[Session]:
    """One database transaction as a Session: committed on success, rolled back on any error.

    Write transactions are serialised (see the module docstring); ``readonly`` ones are not.
    A write moves the state version on unless ``moves_version`` is False, which is only for
    appending audit events that no cached read depends on (page views; not logouts).
    """
    postgresql = engine.dialect.name == "postgresql"
    with Session(engine, expire_on_commit=False) as session, session.begin():
        if readonly:
            # PostgreSQL: psycopg opens the transaction with BEGIN READ ONLY (no extra round
            # trip); SQLite: _sqlite_begin reads the flag and takes no write lock.
            session.connection(execution_options=READONLY_OPTIONS if postgresql else SQLITE_READ)
        else:
            if postgresql:
                session.execute(WRITE_LOCK)
            if moves_version:
                session.execute(BUMP_VERSION)
        yield session
    if moves_version and not readonly:
        readcache.unpin()


def state_version(engine: Engine) -> int:
    """The state version: it grows with every committed write transaction."""
    # One statement needs no transaction: on PostgreSQL autocommit saves BEGIN and ROLLBACK.
    options = (
        {"isolation_level": "AUTOCOMMIT"} if engine.dialect.name == "postgresql" else SQLITE_READ
    )
    with engine.connect().execution_options(**options) as connection:
        return int(connection.execute(VERSION).scalar_one())


class VersionReader:
    """The cheapest correct read of the state version, for a server's read cache. On
    PostgreSQL: one statement on connections of a small pool of its own, in autocommit with no
    ping or reset around it (tens of microseconds of CPU instead of about 0.3 ms through the
    engine's pool); a connection that fails is dropped and the version read the standard way,
    which reports a database that is really down. Elsewhere: ``state_version``. ``name`` is
    the connections' ``application_name``."""

    def __init__(self, engine: Engine, name: str = "enclave-version-reader") -> None:
        self._engine = engine
        self._direct: Engine | None = None
        if engine.dialect.name == "postgresql":
            self._direct = create_engine(
                engine.url,
                isolation_level="AUTOCOMMIT",  # a statement sees every write committed before it
                pool_pre_ping=False,
                pool_reset_on_return=None,
                connect_args={"application_name": name},  # what pg_stat_activity shows
            )
            self._sql = str(VERSION.compile(engine, compile_kwargs={"literal_binds": True}))
            self._errors = self._direct.dialect.loaded_dbapi.Error
            # whoever releases the engine's connections releases these too
            event.listen(engine, "engine_disposed", lambda _engine: self.close())

    def __call__(self) -> int:
        if self._direct is None:
            return state_version(self._engine)
        connection = self._direct.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(self._sql)
            row = cursor.fetchone()
            cursor.close()
        except self._errors:
            connection.invalidate()  # a server restart or a killed backend: reconnect next time
            return state_version(self._engine)
        finally:
            connection.close()
        return int(row[0]) if row else state_version(self._engine)  # no row: let it raise

    def close(self) -> None:
        if self._direct is not None:
            self._direct.dispose()


def _alembic_config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` (Alembic, run in one transaction)."""
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Downgrade the schema to ``revision``; ``base`` drops every control-plane table."""
    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None before ``upgrade``."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()
    assert head is not None
    return head


def require_current(engine: Engine) -> None:
    """Raise ControlError unless the schema is at the newest revision."""
    current = current_revision(engine)
    if current != head_revision():
        raise ControlError(
            f"the database schema is at {current or 'nothing'}, not {head_revision()}: "
            "run `enclave admin init`",
            rule="schema",
        )
