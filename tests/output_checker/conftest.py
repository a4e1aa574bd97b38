"""Fixtures shared by the checker tests."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def acro() -> Iterator[ModuleType]:
    """ACRO 1.0.2 for parity tests, imported without letting its ``logging.basicConfig`` leak
    into other tests. The checker itself never imports ACRO."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import acro as module
    root.setLevel(level)
    root.handlers[:] = handlers
    for name in ("acro", "acro:records", "acro:summary"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    yield module
