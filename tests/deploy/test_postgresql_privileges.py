"""The postgresql role's SQL on a real PostgreSQL server: it makes the roles and the database,
the enclave's migrations run as the owner, and then the application role can read and append
to the audit trail but not rewrite it: UPDATE, DELETE and TRUNCATE fail with permission
denied (SQLSTATE 42501, the privilege check, not the hash chain's triggers)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.exc import ProgrammingError

from enclave.control import audit
from enclave.control.db import make_engine, transaction
from enclave.control.db import upgrade as upgrade_control
from enclave.control.models import AuditEvent
from output_checker.queue.db import upgrade as upgrade_queue
from tests.deploy.roles import defaults, render

SERVER = "127.0.0.1:5432"
SUPERUSER = f"postgresql+psycopg://postgres@{SERVER}"


def _psql(database: str, script: Path) -> None:
    host, port = SERVER.split(":")
    subprocess.run(
        [
            "psql",
            "-X",
            "-q",
            "-h",
            host,
            "-p",
            port,
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            str(script),
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def names(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A database and two roles of unique names, made by the role's SQL; dropped after."""
    suffix = uuid.uuid4().hex[:12]
    chosen = {
        "enclave_db_name": f"enclave_deploy_{suffix}",
        "enclave_db_owner": f"enclave_owner_{suffix}",
        "enclave_db_app": f"enclave_app_{suffix}",
    }
    roles_sql = tmp_path / "roles.sql"
    roles_sql.write_text(render("postgresql", "roles.sql.j2", **chosen))
    _psql("test", roles_sql)
    _psql("test", roles_sql)  # run on every playbook run: a second time must change nothing
    try:
        yield chosen
    finally:
        admin = create_engine(f"{SUPERUSER}/test", isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(
                text(f'DROP DATABASE IF EXISTS "{chosen["enclave_db_name"]}" WITH (FORCE)')
            )
            for role in (chosen["enclave_db_app"], chosen["enclave_db_owner"]):
                connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def _engine(role: str, database: str) -> Engine:
    return make_engine(f"postgresql+psycopg://{role}@{SERVER}/{database}")


def _refused(engine: Engine, statement: str) -> str:
    with pytest.raises(ProgrammingError) as refused, engine.begin() as connection:
        connection.execute(text(statement))
    assert getattr(refused.value.orig, "sqlstate", None) == "42501", refused.value
    return str(refused.value.orig)


@pytest.mark.slow
def test_the_application_role_may_append_to_the_audit_trail_but_never_rewrite_it(
    names: dict[str, str], tmp_path: Path
) -> None:
    database = names["enclave_db_name"]
    owner = _engine(names["enclave_db_owner"], database)
    upgrade_control(owner)  # what `enclave admin init` does, as the owner
    upgrade_queue(owner)
    owner.dispose()
    privileges = tmp_path / "privileges.sql"
    privileges.write_text(
        render("postgresql", "privileges.sql.j2", **names, **defaults("postgresql"))
    )
    _psql(database, privileges)
    _psql(database, privileges)  # re-applied after every migration: must stay valid

    app = _engine(names["enclave_db_app"], database)
    try:
        with transaction(app) as session:  # INSERT (and the head's UPDATE) as the code does it
            audit.append(session, at=datetime.now(UTC), actor="deploy-test", action="probe")
        with transaction(app, readonly=True) as session:
            assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1
        assert audit.verify(app).ok

        # The attack: rewrite or erase the trail as the application.
        assert "permission denied for table audit_events" in _refused(
            app, "UPDATE audit_events SET actor = 'someone else'"
        )
        assert "permission denied" in _refused(app, "DELETE FROM audit_events")
        assert "permission denied" in _refused(app, "TRUNCATE audit_events")
        # Nor forget what was released: the differencing ledger only grows.
        for statement in (
            "UPDATE queue_ledger_entries SET sha256 = NULL",
            "DELETE FROM queue_ledger_entries",
        ):
            assert "permission denied for table queue_ledger_entries" in _refused(app, statement)
        # Nor can it remove the triggers, change the schema or move the migration marker.
        assert "must be owner" in _refused(app, "ALTER TABLE audit_events DISABLE TRIGGER USER")
        assert "permission denied for schema public" in _refused(app, "CREATE TABLE t (x int)")
        assert "permission denied" in _refused(app, "UPDATE alembic_version SET version_num = 'x'")
        with transaction(app, readonly=True) as session:
            assert session.scalar(select(AuditEvent.actor)) == "deploy-test"
    finally:
        app.dispose()
