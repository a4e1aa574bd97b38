"""Fixtures of the queue tests: ``tests/conftest.py``'s database with the queue's schema
migrated too, and a world of people around the project ``study``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from enclave.control.context import Context
from enclave.control.db import upgrade as upgrade_control
from output_checker.queue.db import upgrade as upgrade_queue
from tests.output_checker.queue.factories import QueueWorld, make_queue_world


@pytest.fixture
def schemas() -> tuple[Callable[[Engine], None], ...]:
    return (upgrade_control, upgrade_queue)


@pytest.fixture
def qw(ctx: Context) -> QueueWorld:
    return make_queue_world(ctx)
