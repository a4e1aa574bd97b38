"""The example notebooks run from top to bottom (nbclient) and leave a bundle the queue
accepts. The cohort study runs on the research extract of a demonstration installation
(synth -> ingest -> link -> extract, built once per session), and its estimates must agree
with the effects built into the synthetic data."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from enclave.linkage.demo import DemoExtract, build_demo_extract
from output_checker.queue.bundles import Bundle, BundleRef, read_bundle

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
pytestmark = pytest.mark.slow

# the outputs of the cohort study and their checker status; the first two carry recipes
COHORT_OUTPUTS = {
    "eligible_population": "pass",
    "reference_scores": "pass",
    "matching_by_birth_period": "pass",
    "outcomes_by_year": "pass",
    "score_gap_model": "pass",
    "completion_by_group": "pass",
    "completion_model": "pass",
    "disability_by_group": "pass",
    "time_to_admission": "pass",
}
WITH_RECIPES = {"eligible_population", "reference_scores"}


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoExtract:
    """The demonstration installation the notebook builds when run on its own (its defaults:
    the notebook then finds it and reuses it)."""
    return build_demo_extract(tmp_path_factory.mktemp("demo") / "enclave")


def run_notebook(name: str, cwd: Path) -> tuple[nbformat.NotebookNode, float]:
    book = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code")  # stored clean
    client = NotebookClient(
        book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    started = time.monotonic()
    client.execute()
    elapsed = time.monotonic() - started
    errors = [o for c in book.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    return book, elapsed


def the_bundle(data_dir: Path, project: str, outbox: Path) -> Bundle:
    (bundle,) = [p for p in outbox.iterdir() if (p / "finalised").exists()]
    assert [p for p in outbox.iterdir() if p.name.startswith(".tmp-")] == []
    return read_bundle(data_dir, BundleRef(project, "ada", bundle.name))


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("ENCLAVE_DATASETS", raising=False)
    return monkeypatch


def csv_file(bundle: Bundle, name: str) -> pd.DataFrame:
    (data,) = [f.data for f in bundle.files if f.name == name]
    return pd.read_csv(io.BytesIO(data))


def test_cohort_study_recovers_the_known_effects(
    demo: DemoExtract, tmp_path: Path, kernel_env: pytest.MonkeyPatch
) -> None:
    outbox = tmp_path / "projects" / "cydl-demo" / "outbox" / "ada"
    kernel_env.setenv("ENCLAVE_OUTBOX", str(outbox))
    kernel_env.setenv("ENCLAVE_DEMO_DIR", str(demo.data_dir))
    linkage_runs = (demo.data_dir / "linkage" / "runs.jsonl").read_text()
    book, elapsed = run_notebook("cohort_study", tmp_path)
    assert elapsed < 60
    shown = [
        o.get("data", {}).get("text/plain", "") for c in book.cells for o in c.get("outputs", [])
    ]
    assert any("known (realised)" in text for text in shown)  # the comparison with the truth
    # the notebook reused the installation instead of linking again
    assert (demo.data_dir / "linkage" / "runs.jsonl").read_text() == linkage_runs

    bundle = the_bundle(tmp_path, "cydl-demo", outbox)
    outputs = [f for f in bundle.files if f.kind == "output"]
    statuses = {f.group: f.record["status"] for f in outputs if f.record}
    assert statuses == COHORT_OUTPUTS
    assert {f.group for f in outputs if f.recipe} == WITH_RECIPES
    # a recipe names the extract's file by its name and the SHA-256 of its bytes
    manifest = json.loads((demo.extract_dir / "manifest.json").read_text())
    versions = {e["file"].removesuffix(".parquet"): f"sha256:{e['sha256']}"
                for e in manifest["files"]}  # fmt: skip
    for f in outputs:
        if f.recipe:
            assert f.recipe["version"] == versions[f.recipe["dataset"]]
    assert any(f.name == "time_to_admission_plot.png" for f in outputs)

    # small cells of the yearly outcomes were suppressed, and the published tables show
    # exactly those cells as missing
    suppressed = 0
    for f in outputs:
        if f.group == "outcomes_by_year":
            assert f.record is not None
            cells = f.record["cells"]
            suppressed += sum(bool(c["suppressed"]) for c in cells)
            published = csv_file(bundle, f.name).set_index("follow_up_year")
            assert int(published.isna().sum().sum()) == sum(bool(c["suppressed"]) for c in cells)
    assert suppressed > 0

    fasd = demo.effects["fasd"]
    model = csv_file(bundle, "score_gap_model.csv").set_index("term")
    estimate, error = float(model.loc["cohort", "params"]), float(model.loc["cohort", "bse"])
    assert 0 < error < 20
    assert abs(estimate - fasd["realised_score_gap_points"]) < 2.5 * error
    services = csv_file(bundle, "disability_by_group.csv").set_index("group")["mean"]
    gap = 100 * (services["cohort"] - services["control"])
    assert abs(gap - fasd["realised_disability_services_gap_pp"]) < 10
    completion = csv_file(bundle, "completion_by_group.csv").set_index("group")["mean"]
    gap = 100 * (completion["cohort"] - completion["control"])
    assert gap < 0 and abs(gap - fasd["realised_diploma_gap_pp"]) < 15


def test_acro_users_notebook_runs(tmp_path: Path, kernel_env: pytest.MonkeyPatch) -> None:
    outbox = tmp_path / "projects" / "demo" / "outbox" / "ada"
    kernel_env.setenv("ENCLAVE_OUTBOX", str(outbox))
    _, elapsed = run_notebook("acro_users", tmp_path)
    assert elapsed < 60
    bundle = the_bundle(tmp_path, "demo", outbox)
    assert any(f.name.endswith(".png") for f in bundle.files)
