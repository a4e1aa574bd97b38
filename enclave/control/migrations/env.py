"""Alembic environment: runs on the connection that ``enclave.control.db`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from enclave.control.db import normalise_url
from enclave.control.models import Base

target_metadata = Base.metadata


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
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
