"""Fixtures of the queue tests: the control plane's throw-away databases (SQLite always,
PostgreSQL when ENCLAVE_TEST_DATABASE_URL is set), both schemas migrated, a settable clock,
and a world of people around the project ``study``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.control.context import Context
from enclave.control.db import make_engine
from enclave.control.db import upgrade as upgrade_control
from output_checker.queue.db import upgrade as upgrade_queue
from tests.enclave.control.dbfixtures import BACKENDS, temporary_database
from tests.enclave.control.factories import FakeClock
from tests.output_checker.queue.factories import QueueWorld, make_queue_world


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temporary_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctx(database_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Context]:
    engine = make_engine(database_url)
    upgrade_control(engine)
    upgrade_queue(engine)
    context = Context(engine=engine, data_dir=tmp_path / "data", clock=clock)
    yield context
    context.close()


@pytest.fixture
def qw(ctx: Context) -> QueueWorld:
    return make_queue_world(ctx)
