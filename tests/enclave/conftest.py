"""Fixtures of the platform's tests that need a control plane (the control plane's own, the
hub's, the linkage unit's): people of every role, on ``tests/conftest.py``'s database."""

from __future__ import annotations

import pytest

from enclave.control.context import Context
from tests.enclave.control.factories import World, make_world


@pytest.fixture
def world(ctx: Context) -> World:
    return make_world(ctx)
