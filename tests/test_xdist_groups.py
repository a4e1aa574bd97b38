"""Tests marked with one ``xdist_group`` run on one worker under ``make test``'s
``-n auto --dist loadgroup`` (``tests/conftest.py`` restores it): the hub tests rely on it to
share one running enclave instead of starting one per worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GROUPED = """
import os
from pathlib import Path

import pytest


@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("n", range(8))
def test_grouped(n: int) -> None:
    Path(os.environ["WORKERS_SEEN"], f"grouped-{n}").write_text(os.environ["PYTEST_XDIST_WORKER"])


@pytest.mark.parametrize("n", range(8))
def test_free(n: int) -> None:
    Path(os.environ["WORKERS_SEEN"], f"free-{n}").write_text(os.environ["PYTEST_XDIST_WORKER"])
"""


def test_a_group_runs_on_one_worker(tmp_path: Path) -> None:
    package = tmp_path / "grouping"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "conftest.py").write_text(
        "from tests.conftest import pytest_collection_modifyitems\n"
    )
    (package / "test_grouped.py").write_text(GROUPED)
    seen = tmp_path / "seen"
    seen.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-o",
            "addopts=",
            "--rootdir",
            str(tmp_path),
            str(package),
        ],
        cwd=tmp_path,
        env={**os.environ, "WORKERS_SEEN": str(seen), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    grouped = {path.read_text() for path in seen.glob("grouped-*")}
    assert len(list(seen.glob("grouped-*"))) == 8 and len(grouped) == 1, grouped
    assert len(list(seen.glob("free-*"))) == 8
