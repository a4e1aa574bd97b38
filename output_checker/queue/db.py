"""The queue's schema in the control plane's database: migrations and their revision.

The queue has its own Alembic history (``migrations/``) recorded in its own version table,
so the control plane and the queue upgrade independently; the control plane's tables must
exist first because the queue's refer to ``people`` and ``projects``. Transactions are the
control plane's (``enclave.control.db.transaction``): writes are serialised on both backends,
so a rule checked at the start of a service call still holds when it commits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from enclave.control import db as control_db
from output_checker.queue.errors import QueueError

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version_queue"


def _config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the queue's tables to ``revision`` in one transaction.

    Raises QueueError (rule ``schema``) if the control plane's schema is not current.
    """
    if control_db.current_revision(engine) != control_db.head_revision():
        raise QueueError(
            "the control plane's schema must be created first: run `enclave admin init`",
            rule="schema",
        )
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Downgrade the queue's tables to ``revision``; ``base`` drops them all."""
    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The queue schema's revision, or None before ``upgrade``."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str:
    """The newest queue revision shipped with this code."""
    head = ScriptDirectory.from_config(_config(None)).get_current_head()
    assert head is not None
    return head


def require_current(engine: Engine) -> None:
    """Raise QueueError (rule ``schema``) unless the queue's schema is at its newest revision."""
    current = current_revision(engine)
    if current != head_revision():
        raise QueueError(
            f"the queue schema is at {current or 'nothing'}, not {head_revision()}: "
            "run `output-checker init`",
            rule="schema",
        )
