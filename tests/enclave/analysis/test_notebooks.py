"""The example notebooks run from top to bottom (nbclient), each well under a minute, and
leave a bundle the queue accepts."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from output_checker.queue.bundles import BundleRef, read_bundle

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["cohort_study", "acro_users"])
def test_example_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outbox = tmp_path / "projects" / "demo" / "outbox" / "ada"
    monkeypatch.setenv("ENCLAVE_DATASETS", str(tmp_path / "data"))
    monkeypatch.setenv("ENCLAVE_OUTBOX", str(outbox))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code")  # stored clean
    client = NotebookClient(
        book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    started = time.monotonic()
    client.execute()
    assert time.monotonic() - started < 60
    errors = [o for c in book.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    (bundle,) = [p for p in outbox.iterdir() if (p / "finalised").exists()]
    read = read_bundle(tmp_path, BundleRef("demo", "ada", bundle.name))
    assert any(f.name.endswith(".png") for f in read.files)
    assert [p for p in outbox.iterdir() if p.name.startswith(".tmp-")] == []
