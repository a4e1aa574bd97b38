"""Throw-away databases for control-plane tests: a SQLite file under tmp_path, and, when
ENCLAVE_TEST_DATABASE_URL is set, a fresh uniquely named PostgreSQL schema in that database
(selected through ``search_path``), so that xdist workers never share state and nothing
needs a slow CREATE DATABASE. Importable by other test packages (the CLI and web tests)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from enclave.control.db import normalise_url

POSTGRES_URL = os.environ.get("ENCLAVE_TEST_DATABASE_URL", "")
BACKENDS: tuple[str, ...] = ("sqlite", "postgresql") if POSTGRES_URL else ("sqlite",)


@contextmanager
def temporary_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty database of ``backend``; drop it afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'enclave.sqlite3'}"
        return
    schema = f"enclave_test_{uuid.uuid4().hex[:20]}"
    admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
