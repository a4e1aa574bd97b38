"""Fixtures of the linkage tests: a migrated control-plane database with people of every
role, zones under tmp_path, and small synthetic deliveries written to disk."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from enclave.control.context import Context
from enclave.linkage.deliveries import write_synthetic
from enclave.linkage.zones import Zones
from enclave.synth.ministries import MinistryData, generate_ministries


@pytest.fixture
def zones(ctx: Context) -> Zones:
    return Zones(ctx.data_dir)


@cache
def small_ministries(population: int = 600, seed: int = 5) -> MinistryData:
    """Synthetic deliveries, generated once per worker."""
    return generate_ministries(population, seed=seed)


@pytest.fixture
def deliveries(tmp_path: Path) -> Path:
    """``small_ministries`` written to disk: ``<dir>/deliveries/<source>/`` and ``truth/``."""
    out = tmp_path / "synth"
    write_synthetic(small_ministries(), out)
    return out / "deliveries"
