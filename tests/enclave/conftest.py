"""Fixtures of every test of the platform that needs a control plane (the control plane's
own, the hub's, the linkage unit's): a migrated database per test on every backend, a
settable clock, a Context wired to both, and people of every role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.control.context import Context
from enclave.control.db import make_engine, upgrade
from tests.enclave.control.dbfixtures import BACKENDS, temporary_database
from tests.enclave.control.factories import FakeClock, World, make_world


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
    upgrade(engine)
    context = Context(engine=engine, data_dir=tmp_path / "data", clock=clock)
    yield context
    context.close()


@pytest.fixture
def world(ctx: Context) -> World:
    return make_world(ctx)
