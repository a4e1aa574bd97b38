"""Fixtures of the backup tests: throw-away databases of both kinds (a SQLite file; a whole,
uniquely named PostgreSQL database, since ``pg_dump`` copies databases) and a small enclave
state built through the service layer, with files in every zone of its data directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from enclave.control.context import Context
from enclave.control.db import make_engine, normalise_url, transaction, upgrade
from enclave.control.rules import ProjectState
from enclave.control.service import people
from enclave.linkage.zones import make_read_only
from output_checker.queue import db as queue_db
from tests.enclave.control.factories import FakeClock, make_project, make_world

# the machine's PostgreSQL (trust authentication), unless the test run names another
POSTGRES_URL = os.environ.get(
    "ENCLAVE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Place:
    """Where an installation lives: its data directory, database and settings file."""

    data_dir: Path
    database_url: str
    config: Path


def _ensure_pg_tools() -> None:
    """pg_dump and pg_restore, from Debian's client package when missing (as root)."""
    if shutil.which("pg_dump") and shutil.which("pg_restore"):
        return
    apt = shutil.which("apt-get")
    if os.geteuid() == 0 and apt:
        subprocess.run([apt, "update", "-q"], check=False, capture_output=True, timeout=900)
        subprocess.run(
            [apt, "install", "-y", "-q", "postgresql-client"],
            check=False,
            capture_output=True,
            timeout=900,
        )


def _postgres_database() -> Iterator[str]:
    _ensure_pg_tools()
    name = f"enclave_backup_{uuid.uuid4().hex[:16]}"
    admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


PlaceFactory = Callable[[str], Place]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_place(tmp_path: Path) -> Iterator[PlaceFactory]:
    """``new_place(backend)``: an empty data directory and database, with a settings file."""
    cleanups: list[Iterator[str]] = []

    def make(backend: str) -> Place:
        name = uuid.uuid4().hex[:8]
        data_dir = tmp_path / f"enclave-{name}"
        if backend == "sqlite":
            url = f"sqlite:///{data_dir / 'db' / 'enclave.sqlite3'}"
        else:
            databases = _postgres_database()
            url = next(databases)
            cleanups.append(databases)
        config = tmp_path / f"{name}.toml"
        config.write_text(f'data_dir = "{data_dir}"\ndatabase_url = "{url}"\n', encoding="utf-8")
        return Place(data_dir, url, config)

    yield make
    for databases in cleanups:
        next(databases, None)


@pytest.fixture
def place(backend: str, new_place: PlaceFactory) -> Place:
    """An installation with people, projects, an audit trail and files in every zone."""
    made = new_place(backend)
    build_state(made)
    return made


def build_state(place: Place) -> None:
    engine = make_engine(place.database_url)
    upgrade(engine)
    queue_db.upgrade(engine)
    ctx = Context(engine=engine, data_dir=place.data_dir, clock=FakeClock())
    try:
        world = make_world(ctx)
        make_project(ctx, world, "study")
        make_project(ctx, world, "paused", ProjectState.SUSPENDED)
        people.set_active(
            ctx, world.admin, world.checker, active=False, reason="left the organisation"
        )
    finally:
        ctx.close()
    write_files(place.data_dir)


def write_files(data_dir: Path) -> None:
    files = {
        "projects/study/data/episodes.csv": b"age_band,n\n20-29,14\n",
        "projects/study/outbox/ada/table.csv": b"a,b\n1,2\n",
        "queue/blobs/ab/ab" + "0" * 62: b"snapshot bytes",
        "released/study/table.csv": b"a,b\n1,2\n",
        "linkage/person_index.parquet": os.urandom(4096),
        "content/hospital/abc.parquet": os.urandom(1024),
        "keys/study.key": b'{"project": "study"}',
        "secrets/secret-key": b"not-a-real-secret",
        "hub/jupyterhub.sqlite": b"hub state",
    }
    for relative, data in files.items():
        path = data_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.chmod(data_dir / "queue/blobs/ab" / ("ab" + "0" * 62), 0o440)
    os.symlink("episodes.csv", data_dir / "projects/study/data/latest.csv")
    make_read_only(data_dir / "projects/study/data")


def table_rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, sorted: what "the same database" compares."""
    engine = make_engine(url)
    try:
        names = sorted(inspect(engine).get_table_names())
        with transaction(engine, readonly=True) as session:
            return {
                name: sorted(
                    (tuple(row) for row in session.execute(text(f'SELECT * FROM "{name}"'))),
                    key=repr,
                )
                for name in names
            }
    finally:
        engine.dispose()


def tree(root: Path, left_out: frozenset[str] = frozenset()) -> dict[str, tuple[str, int]]:
    """relative path -> (content or link target, mode) of everything under ``root``."""
    seen: dict[str, tuple[str, int]] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] in left_out:
            continue
        mode = path.lstat().st_mode & 0o7777
        if path.is_symlink():
            seen[str(relative)] = (f"-> {os.readlink(path)}", mode)
        elif path.is_file():
            seen[str(relative)] = (path.read_bytes().hex(), mode)
        else:
            seen[str(relative)] = ("dir", mode)
    return seen
