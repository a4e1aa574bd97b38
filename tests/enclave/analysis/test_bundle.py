"""finalise(): one bundle in the outbox, in the queue's format, written atomically; the
queue's reader accepts it (round trip) and results.json is ACRO's."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from enclave.analysis import AnalysisError, Session, bundle
from output_checker.acro_interop import from_acro_results
from output_checker.queue.bundles import finalised_bundles, read_bundle
from tests.enclave.analysis.conftest import OWNER, PROJECT


def _make_outputs(session: Session, charities: pd.DataFrame) -> None:
    df = session.load("charities")
    session.crosstab(df.year, df.grant_type, margins=True)
    session.olsr("inc_activity ~ inc_grants + total_costs", data=df)
    session.hist(df, "total_costs", bins=[0, 20_000, 40_000, 60_000, 80_000, 1_000_000])
    session.add_comments("output_0", "Charities by year and grant type.")
    session.add_exception("output_2", "Bins are wide; the small bin is the top-coded tail.")
    session.rename_output("output_1", "activity_model")


def test_bundle_is_accepted_by_the_queue(
    session: Session, charities: pd.DataFrame, data_dir: Path
) -> None:
    _make_outputs(session, charities)
    path = session.finalise(title="Charity outputs", ext="xlsx")
    assert path.parent == data_dir / "projects" / PROJECT / "outbox" / OWNER
    assert len(session.outputs) == 0 and session.last_bundle == path
    (ref,) = list(finalised_bundles(data_dir))
    read = read_bundle(data_dir, ref)  # refuses anything the queue would not take
    assert read.title == "Charity outputs"
    names = [f.name for f in read.files]
    assert names == [
        "output_0.csv", "activity_model.csv", "output_2_table.csv", "output_2_plot.png",
        "results.json", "session.json", "results.xlsx",
    ]  # fmt: skip
    by_name = {f.name: f for f in read.files}
    assert by_name["output_2_plot.png"].exception.startswith("Bins are wide")
    assert by_name["output_0.csv"].record is not None
    assert by_name["results.json"].kind == "supporting"
    assert read.groups["output_0"][0] == "Charities by year and grant type."
    for file in read.files:
        assert file.sha256 == hashlib.sha256((path / file.name).read_bytes()).hexdigest()
        if file.record is not None and file.name.endswith(".csv"):
            assert file.record["output"]["sha256"] == file.sha256
    png = by_name["output_2_plot.png"]
    assert png.record is not None
    assert png.record["output"]["table_sha256"] == by_name["output_2_table.csv"].sha256


def test_results_json_is_acro_compatible(
    session: Session, charities: pd.DataFrame, acro: ModuleType
) -> None:
    _make_outputs(session, charities)
    path = session.finalise()
    document = json.loads((path / "results.json").read_text())
    assert set(document) == {"version", "tool", "results"}
    assert list(document["results"]) == [
        "output_0", "activity_model", "output_2_table", "output_2_plot",
    ]  # fmt: skip
    entry = document["results"]["output_0"]
    assert entry["files"][0]["name"] == "output_0.csv"
    assert entry["comments"] == ["Charities by year and grant type."]
    assert entry["type"] == "table"
    assert document["results"]["activity_model"]["type"] == "regression"
    assert document["results"]["output_2_table"]["exception"].startswith("Bins are wide")
    imported = from_acro_results(document)
    assert [o.uid for o in imported][:2] == ["output_0", "activity_model"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = acro.record.load_records(str(path))  # ACRO itself reads it
    assert "activity_model" in loaded.get_keys()


def test_a_failed_write_leaves_nothing_and_keeps_the_outputs(
    session: Session, charities: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_outputs(session, charities)
    written: list[Path] = []
    original = bundle._write_new

    def failing(path: Path, data: bytes) -> None:
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        written.append(path)
        original(path, data)

    monkeypatch.setattr(bundle, "_write_new", failing)
    with pytest.raises(AnalysisError, match="No space left on device"):
        session.finalise()
    assert list(session.outbox.iterdir()) == []  # no temporary folder, no bundle
    assert len(session.outputs) == 3


def test_the_marker_is_written_last(
    session: Session, charities: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    session.crosstab(charities.year, charities.grant_type)
    order: list[tuple[str, bool]] = []
    original = bundle._write_new

    def spy(path: Path, data: bytes) -> None:
        order.append((path.name, path.parent.name.startswith(".tmp-")))
        original(path, data)

    monkeypatch.setattr(bundle, "_write_new", spy)
    session.finalise()
    assert order[-1] == (bundle.MARKER, False)  # in the renamed folder, after everything
    assert all(in_temp for _, in_temp in order[:-1])


def test_finalise_refuses_what_the_queue_would_refuse(
    session: Session, charities: pd.DataFrame, tmp_path: Path
) -> None:
    with pytest.raises(AnalysisError, match="there are no outputs"):
        session.finalise()
    session.crosstab(charities.year, charities.grant_type)
    with pytest.raises(AnalysisError, match="title"):
        session.finalise(title="x" * 300)
    with pytest.raises(AnalysisError, match="ext"):
        session.finalise(ext="zip")
    executable = tmp_path / "run.sh"
    executable.write_text("echo hi")
    with pytest.raises(AnalysisError, match="cannot be released"):
        session.custom_output(executable)
    assert not session.outbox.exists()
