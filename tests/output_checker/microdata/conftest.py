"""Fixtures shared by the microdata tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

_RELATIVE = Path("shared") / "data" / "sdcmicro"


def _find_sdcmicro_dir() -> Path | None:
    """The sdcMicro datasets: ``$ENCLAVE_SHARED_DATA/sdcmicro`` (or the variable itself when it
    already names that folder), else ``shared/data/sdcmicro`` beside a parent of the repo root."""
    env = os.environ.get("ENCLAVE_SHARED_DATA")
    if env:
        base = Path(env)
        for candidate in (base / "sdcmicro", base):
            if (candidate / "testdata.csv").is_file():
                return candidate
    repo_root = Path(__file__).resolve().parents[3]
    for parent in repo_root.parents:
        candidate = parent / _RELATIVE
        if (candidate / "testdata.csv").is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def sdcmicro_dir() -> Path:
    """Folder holding sdcMicro's bundled datasets as CSV (read in place, never copied)."""
    found = _find_sdcmicro_dir()
    if found is None:
        pytest.fail(
            "sdcMicro datasets not found: set ENCLAVE_SHARED_DATA or add shared/data/sdcmicro"
        )
    return found


class RUniform:
    """R's default generator (Mersenne-Twister, ``set.seed`` scrambling) and ``runif``, so that
    sdcMicro tests that build data with ``set.seed(s); runif(...)`` can be reproduced exactly."""

    def __init__(self, seed: int) -> None:
        state = seed & 0xFFFFFFFF
        for _ in range(50):
            state = (69069 * state + 1) & 0xFFFFFFFF
        words = []
        for _ in range(625):
            state = (69069 * state + 1) & 0xFFFFFFFF
            words.append(state)
        # The first word is R's position slot (reset to 624); the other 624 are the MT state.
        self._bits = np.random.MT19937(0)
        self._bits.state = {
            "bit_generator": "MT19937",
            "state": {"key": np.array(words[1:], dtype=np.uint32), "pos": 624},
        }

    def runif(self, n: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
        """``runif(n, low, high)`` continuing the stream."""
        u = self._bits.random_raw(n).astype(np.float64) * 2.3283064365386963e-10
        return low + (high - low) * u


@pytest.fixture
def r_set_seed() -> Callable[[int], RUniform]:
    """``r_set_seed(s)`` returns a stream equal to R's after ``set.seed(s)``."""
    return RUniform
