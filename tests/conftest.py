"""Fixtures of every test that needs a control plane: a throw-away database per test on
every backend (SQLite always, PostgreSQL when ENCLAVE_TEST_DATABASE_URL is set), migrated with
the ``schemas`` a package's tests ask for, a settable clock, and a Context wired to both.

Also the ``xdist_group`` marks' effect under ``--dist loadgroup`` (``make test``), which
pytest-xdist 3.8 no longer achieves on pytest 9.2 (it renames ``item._nodeid``, which pytest
no longer reads): without it a module's shared fixture runs once per worker, and two
``enclave up`` runs at once fought over the same session cgroup."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId
from sqlalchemy import Engine

from enclave.control.context import Context
from enclave.control.db import make_engine
from enclave.control.db import upgrade as upgrade_control
from tests.enclave.control.dbfixtures import BACKENDS, temporary_database
from tests.enclave.control.factories import FakeClock


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker under ``--dist loadgroup``: suffix each grouped test's node id with
    ``@<group>``, which the controller's LoadGroupScheduling sends to a single worker."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        groups = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
        if groups and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(groups))}")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temporary_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def schemas() -> tuple[Callable[[Engine], None], ...]:
    """The migrations ``ctx`` runs: the control plane's; a package's conftest adds its own."""
    return (upgrade_control,)


@pytest.fixture
def ctx(
    database_url: str,
    tmp_path: Path,
    clock: FakeClock,
    schemas: tuple[Callable[[Engine], None], ...],
) -> Iterator[Context]:
    engine = make_engine(database_url)
    for upgrade in schemas:
        upgrade(engine)
    context = Context(engine=engine, data_dir=tmp_path / "data", clock=clock)
    yield context
    context.close()
