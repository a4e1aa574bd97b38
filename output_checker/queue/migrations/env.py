"""Alembic environment of the queue: runs on the connection ``output_checker.queue.db`` hands
over, records its revision in its own version table, and looks only at the queue's tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from enclave.control.db import normalise_url
from output_checker.queue.models import QueueBase, include_object

VERSION_TABLE = "alembic_version_queue"
target_metadata = QueueBase.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:  # `alembic` run by hand with sqlalchemy.url set
        url = context.config.get_main_option("sqlalchemy.url")
        assert url, "set sqlalchemy.url or pass a connection"
        with create_engine(normalise_url(url)).begin() as owned:
            _run(owned)
    else:
        _run(connection)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
