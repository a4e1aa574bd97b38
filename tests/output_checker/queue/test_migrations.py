"""The queue's schema: its own migrations and version table in the control plane's
database, after the control plane's; upgrade, downgrade and upgrade again on every backend;
the migrated schema matches the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from enclave.control.db import current_revision as control_revision
from enclave.control.db import make_engine
from enclave.control.db import upgrade as upgrade_control
from output_checker.queue import db
from output_checker.queue.errors import QueueError
from output_checker.queue.models import QUEUE_TABLES, QueueBase, include_object


def test_the_control_plane_comes_first(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with pytest.raises(QueueError, match="control plane's schema must be created first"):
            db.upgrade(engine)
        assert not QUEUE_TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade_control(engine)
        assert db.current_revision(engine) is None
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
        db.require_current(engine)
        tables = set(inspect(engine).get_table_names())
        assert tables >= QUEUE_TABLES and db.VERSION_TABLE in tables
        control = control_revision(engine)
        db.downgrade(engine, "base")
        assert db.current_revision(engine) is None
        assert not QUEUE_TABLES & set(inspect(engine).get_table_names())
        assert control_revision(engine) == control  # the control plane is untouched
        with pytest.raises(QueueError, match="run `output-checker init`"):
            db.require_current(engine)
        db.upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= QUEUE_TABLES
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade_control(engine)
        db.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_object": include_object}
            )
            assert compare_metadata(context, QueueBase.metadata) == []
    finally:
        engine.dispose()
