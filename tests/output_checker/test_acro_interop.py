"""ACRO results.json export and import (spec §12.4), against real ACRO 1.0.2 output."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from output_checker import CheckerError, Status, check_table
from output_checker.acro_interop import (
    CHECK_TO_RULE,
    NAMESPACE,
    RULE_TO_CHECK,
    from_acro_results,
    to_acro_results,
    write_acro_results,
)
from output_checker.results import TableResult

ACRO_RECORD_KEYS = {
    "uid", "status", "type", "properties", "files", "outcome", "command", "summary",
    "timestamp", "comments", "exception", "fair",
}  # fmt: skip


def survey(seed: int = 5, n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "region": rng.choice(["north", "south", "west"], n, p=[0.5, 0.46, 0.04]),
            "size": rng.choice([1, 2, 3], n, p=[0.5, 0.3, 0.2]),
            "sector": rng.choice(["a", "b"], n),
            "inc": np.round(rng.lognormal(3, 1, n), 2),
            "x": rng.normal(size=n),
        }
    )
    frame.loc[frame.index[:3], "inc"] = np.nan
    return frame


def table_results(df: pd.DataFrame) -> list[TableResult]:
    return [
        check_table(df, "region", "size", conventions="acro"),
        check_table(df, "region", "size", values="inc", aggfunc="mean", conventions="acro"),
        check_table(df, "region", "size", values="inc", aggfunc="mean", margins=True),
        check_table(df, ["region", "sector"], "size", values="inc", aggfunc="sum"),
        check_table(df, "size", values="inc", aggfunc="median"),
    ]


def flagged_by_rule(result: TableResult) -> dict[str, set[tuple[int, int]]]:
    """Positions of non-pass cells per rule, placed by the labels of ``result.to_frame()``."""
    frame = result.to_frame()
    out: dict[str, set[tuple[int, int]]] = {rule: set() for rule in result.rules}
    for cell in result.to_dict()["cells"]:
        key = cell["index"][0] if len(cell["index"]) == 1 else tuple(cell["index"])
        col = cell["columns"][0] if len(cell["columns"]) == 1 else tuple(cell["columns"])
        position = (
            frame.index.get_loc(key),
            frame.columns.get_loc(col) if cell["columns"] else 0,
        )
        for rule, check in cell["checks"].items():
            if check["status"] != "pass":
                out[rule].add(position)
    return out


def export(tmp_path: Path, results: list[TableResult]) -> Path:
    files = {}
    for i, result in enumerate(results):
        path = tmp_path / "work" / f"table_{i}.csv"
        path.parent.mkdir(exist_ok=True)
        path.write_text(result.to_frame().to_csv())
        files[f"output_{i}"] = path
    return write_acro_results(tmp_path / "bundle", [r.to_dict() for r in results], files)


# ----- export -------------------------------------------------------------------------------------
def test_round_trip_keeps_statuses_cells_and_record(tmp_path: Path) -> None:
    results = table_results(survey())
    imported = from_acro_results(export(tmp_path, results))
    assert [o.uid for o in imported] == [f"output_{i}" for i in range(len(results))]
    assert {o.status for o in imported} >= {Status.FAIL}  # the data have unsafe cells
    for output, result in zip(imported, results, strict=True):
        record = result.to_dict()
        assert output.problems == () and output.verified
        assert output.status == output.recorded_status == result.status
        expected = flagged_by_rule(result)
        assert {rule: set(cells) for rule, cells in output.flagged.items()} == expected
        assert output.flagged_counts == {rule: len(cells) for rule, cells in expected.items()}
        assert output.enclave == json.loads(json.dumps(record))
        assert len(output.row_labels) * len(output.column_labels) == len(record["cells"])


@pytest.mark.parity
def test_export_matches_acro_shape_and_cells(acro: ModuleType, tmp_path: Path) -> None:
    df = survey()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = acro.ACRO(suppress=False)
        session.crosstab(df.region, df["size"], values=df.inc, aggfunc="mean")
    theirs = session.results.get_index(-1)
    ours_result = check_table(
        df, "region", "size", values="inc", aggfunc="mean", conventions="acro"
    )
    document = to_acro_results([ours_result.to_dict()])
    ours = document["results"]["output_0"]
    assert set(ours) == ACRO_RECORD_KEYS | {NAMESPACE}
    assert document["version"] == "1.0.2" and document["tool"]["@type"] == "SoftwareApplication"
    sdc = ours["files"][0]["sdc"]
    for check, cells in theirs.sdc["cells"].items():
        if check in CHECK_TO_RULE:
            assert sorted(sdc["cells"][check]) == sorted(cells), check
            assert sdc["summary"][check] == theirs.sdc["summary"][check]
    outcome = json.loads(theirs.outcome.to_json())
    assert outcome.keys() == ours["outcome"].keys()  # labels stringified as pandas does
    for column, cells in outcome.items():
        for row, text in cells.items():
            flagged = {c for c in text.removeprefix("ok").split("; ") if c in CHECK_TO_RULE}
            assert set(filter(None, ours["outcome"][column][row].split("; "))) - {"ok"} == flagged
    assert ours["status"] == theirs.status == "fail"


def test_multilevel_labels_are_tuple_reprs() -> None:
    result = check_table(survey(), ["region", "sector"], "size", values="inc", aggfunc="sum")
    outcome = to_acro_results([result.to_dict()])["results"]["output_0"]["outcome"]
    assert list(outcome) == ["1", "2", "3"]
    assert "('north', 'a')" in outcome["1"]


@pytest.mark.parity
def test_acro_can_load_the_export(acro: ModuleType, tmp_path: Path) -> None:
    results = table_results(survey())
    results_json = export(tmp_path, results)
    loaded = acro.record.load_records(str(results_json.parent))
    assert [r.status for r in loaded.results.values()] == [r.status.label for r in results]
    # SACRO-Viewer's structural check: version, results, files with names, cells as pairs
    document = json.loads(results_json.read_text())
    major, minor, *_ = document["version"].split(".")
    assert (int(major), int(minor)) >= (1, 0)
    for output in document["results"].values():
        assert output["files"] and all("name" in f for f in output["files"])
        for cells in output["files"][0]["sdc"]["cells"].values():
            assert all(len(pair) == 2 for pair in cells)
    for name in [*(f"table_{i}.csv" for i in range(len(results))), "results.json"]:
        digest = (results_json.parent / "checksums" / f"{name}.txt").read_text()
        assert digest == hashlib.sha256((results_json.parent / name).read_bytes()).hexdigest()


def test_export_refuses_a_file_that_is_not_the_checked_output(tmp_path: Path) -> None:
    result = check_table(survey(), "region", "size")
    forged = tmp_path / "table.csv"
    forged.write_text(result.to_frame().to_csv().replace("north", "norht"))
    with pytest.raises(CheckerError, match="not the output that was checked"):
        to_acro_results([result.to_dict()], files={"output_0": forged})


def test_export_errors(tmp_path: Path) -> None:
    record = check_table(survey(), "region", "size").to_dict()
    with pytest.raises(CheckerError, match="unknown output"):
        to_acro_results([record], files={"output_7": tmp_path / "x.csv"})
    with pytest.raises(CheckerError, match=r"output_1: manifest record invalid at \$\.status"):
        to_acro_results([record, record | {"status": "ok"}])
    same_name = []
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        same_name.append(tmp_path / folder / "table.csv")
        same_name[-1].write_text(check_table(survey(), "region", "size").to_frame().to_csv())
    with pytest.raises(CheckerError, match="used by another output"):
        to_acro_results(
            [record, record], files={"output_0": same_name[0], "output_1": same_name[1]}
        )
    with pytest.raises(CheckerError, match="file not found"):
        to_acro_results([record], files={"output_0": tmp_path / "absent.csv"})
    with pytest.raises(CheckerError, match="no file given"):
        write_acro_results(tmp_path / "out", [record], {})


# ----- import of real ACRO output ----------------------------------------------------------------
@pytest.fixture(scope="module")
def acro_folder(acro: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A results folder written by ACRO 1.0.2 (crosstab, mean table, ols) and its live sdc."""
    df = survey()
    base = tmp_path_factory.mktemp("acro")
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as patch:
        warnings.simplefilter("ignore")
        patch.chdir(base)  # ACRO removes an "acro_artifacts" folder from the working directory
        session = acro.ACRO(suppress=False)
        session.crosstab(df.region, df["size"])
        session.crosstab(df.region, df["size"], values=df.inc, aggfunc="mean")
        session.ols(df.inc.fillna(0), sm.add_constant(df[["x"]]))
        live = {uid: (r.status, r.sdc) for uid, r in session.results.results.items()}
        session.finalise(str(base / "out"), "json")
    return base / "out", live


@pytest.mark.parity
def test_import_real_acro_results(acro_folder: tuple[Path, dict]) -> None:
    folder, live = acro_folder
    imported = {o.uid: o for o in from_acro_results(folder / "results.json")}
    assert set(live) <= set(imported)
    for uid, (status, sdc) in live.items():
        output = imported[uid]
        assert output.verified and output.problems == ()
        assert output.status == output.recorded_status == Status.from_label(status)
        for check, cells in sdc.get("cells", {}).items():
            target = output.flagged if check in CHECK_TO_RULE else output.other_checks
            assert target[CHECK_TO_RULE.get(check, check)] == tuple(map(tuple, cells))
    count, mean, ols = imported["output_0"], imported["output_1"], imported["output_2"]
    assert count.status == mean.status == Status.FAIL
    assert "PresenceOfLinkedTableCheck" in count.other_checks
    assert ols.acro_type == "regression" and ols.properties["dof"] == 238 and ols.flagged == {}
    summaries = [o for o in imported.values() if o.uid.endswith("DONT_RELEASE")]
    assert summaries and all(o.status == Status.REVIEW for o in summaries)


@pytest.mark.parity
def test_imported_acro_cells_match_our_acro_mode(acro_folder: tuple[Path, dict]) -> None:
    folder, _ = acro_folder
    imported = {o.uid: o for o in from_acro_results(folder)}
    df = survey()
    ours = {
        "output_0": check_table(df, "region", "size", conventions="acro"),
        "output_1": check_table(
            df, "region", "size", values="inc", aggfunc="mean", conventions="acro"
        ),
    }
    for uid, result in ours.items():
        expected = flagged_by_rule(result)
        got = {rule: set(cells) for rule, cells in imported[uid].flagged.items()}
        assert got == {rule: expected[rule] for rule in got}
        assert expected["threshold"]  # the rare region makes small cells
        assert imported[uid].status == result.status


# ----- tampering ---------------------------------------------------------------------------------
@pytest.fixture
def folder(acro_folder: tuple[Path, dict], tmp_path: Path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(acro_folder[0], copy)
    return copy


def by_uid(folder: Path) -> dict[str, Any]:
    return {o.uid: o for o in from_acro_results(folder)}


@pytest.mark.parity
def test_changed_file_is_reported(folder: Path) -> None:
    path = folder / "output_2_0.csv"  # the regression: ACRO said pass
    path.write_text(path.read_text().replace("0.", "9."))
    outputs = by_uid(folder)
    assert outputs["output_2"].recorded_status == Status.PASS
    assert outputs["output_2"].status == Status.REVIEW and not outputs["output_2"].verified
    assert any("checksum mismatch" in p for p in outputs["output_2"].problems)
    assert outputs["output_0"].problems == ()


@pytest.mark.parity
def test_missing_file_and_missing_checksum_are_reported(folder: Path) -> None:
    (folder / "output_0_0.csv").unlink()
    (folder / "checksums" / "output_1_0.csv.txt").unlink()
    outputs = by_uid(folder)
    assert outputs["output_0"].problems == ("output_0_0.csv: file missing",)
    assert outputs["output_1"].problems == ("output_1_0.csv: no checksum in checksums/",)
    assert outputs["output_2"].problems == ()


@pytest.mark.parity
def test_edited_results_json_is_reported_on_every_output(folder: Path) -> None:
    document = json.loads((folder / "results.json").read_text())
    document["results"]["output_0"]["status"] = "pass"
    (folder / "results.json").write_text(json.dumps(document))
    outputs = by_uid(folder)
    assert outputs["output_0"].status == Status.REVIEW
    assert all(any("results.json" in p for p in o.problems) for o in outputs.values())


@pytest.mark.parity
def test_path_outside_the_folder_is_never_read(folder: Path) -> None:
    secret = folder.parent / "secret.csv"
    secret.write_text("x\n1\n")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    (folder / "checksums" / "../secret.csv.txt").write_text(digest)  # a matching checksum
    document = json.loads((folder / "results.json").read_text())
    document["results"]["output_2"]["files"] = [{"name": "../secret.csv", "sdc": {}}]
    output = from_acro_results(document, base_dir=folder)[2]
    assert output.uid == "output_2" and not output.verified
    assert output.problems == ("file name is not a plain name in the folder",)


@pytest.mark.parity
def test_dict_without_folder_is_not_verified(acro_folder: tuple[Path, dict]) -> None:
    document = json.loads((acro_folder[0] / "results.json").read_text())
    outputs = from_acro_results(document)
    assert all(not o.verified and o.status >= Status.REVIEW for o in outputs)


def test_swapped_output_is_caught_by_the_enclave_record(tmp_path: Path) -> None:
    results = table_results(survey())[:2]
    results_json = export(tmp_path, results)
    folder = results_json.parent
    # a consistent forger: new file content and a matching checksum
    (folder / "table_1.csv").write_text("region,1,2,3\nnorth,1,2,3\n")
    digest = hashlib.sha256((folder / "table_1.csv").read_bytes()).hexdigest()
    (folder / "checksums" / "table_1.csv.txt").write_text(digest)
    output = by_uid(folder)["output_1"]
    assert output.files[0].verified
    assert output.problems == ("table_1.csv is not the output the enclave checked",)
    assert output.status == Status.FAIL  # never better than the enclave's verdict


def test_status_laundered_in_acro_keys_keeps_the_enclave_verdict(tmp_path: Path) -> None:
    record = check_table(survey(), "region", "size").to_dict()
    assert record["status"] == "fail"
    document = to_acro_results([record])
    document["results"]["output_0"]["status"] = "pass"
    [output] = from_acro_results(document)
    assert output.status == Status.FAIL
    assert "status pass differs from the enclave's fail" in output.problems


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": "1.0.2"}, "no 'results'"),
        ({"results": {}}, "no 'version'"),
        ({"version": "1", "results": {"o": {"status": "maybe", "files": []}}}, "status must"),
        ({"version": "1", "results": {"o": {"status": "pass", "files": []}}}, "non-empty"),
        (
            {
                "version": "1",
                "results": {
                    "o": {
                        "status": "pass",
                        "files": [{"name": "a", "sdc": {"cells": {"NKCheck": [[1]]}}}],
                    }
                },
            },
            "pair of integers",
        ),
    ],
)
def test_malformed_results_are_refused(document: dict, message: str) -> None:
    with pytest.raises(CheckerError, match=message):
        from_acro_results(document)


def test_unreadable_results_file(tmp_path: Path) -> None:
    with pytest.raises(CheckerError, match="not found"):
        from_acro_results(tmp_path / "results.json")
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(CheckerError, match=r"cannot read results\.json"):
        from_acro_results(tmp_path)


def test_rule_names_round_trip() -> None:
    assert {CHECK_TO_RULE[check] for check in RULE_TO_CHECK.values()} == set(RULE_TO_CHECK)
    assert RULE_TO_CHECK["threshold"] == "MinimumThresholdCheck"
    assert RULE_TO_CHECK["p_percent"] == "PPercentCheck"


def test_other_kinds_export_with_their_envelope() -> None:
    table = check_table(survey(), "region").to_dict()
    envelope = {k: table[k] for k in ("schema", "schema_version", "status", "summary", "notes")}
    envelope |= {"created": table["created"], "parameters": table["parameters"]}
    model = envelope | {
        "kind": "model",
        "output_type": "regression",
        "output": {"format": "csv", "sha256": "0" * 64},
        "evidence": {"df_resid": 17, "n": 20},
    }
    plot = model | {
        "kind": "survival",
        "output_type": "survival",
        "output": {"format": "png", "sha256": "1" * 64},
    }
    results = to_acro_results([model, plot])["results"]
    assert results["output_0"]["type"] == "regression"
    assert results["output_0"]["properties"] == {"method": "regression", "dof": 17}
    assert results["output_0"]["files"] == [{"name": "output_0_0.csv", "sdc": {}}]
    assert results["output_1"]["type"] == "survival plot"
    [imported, _] = from_acro_results(to_acro_results([model, plot]))
    assert imported.enclave == model and imported.flagged == {}


def test_real_model_records_export() -> None:
    """A model's request has no index or columns: the export must not assume a table's."""
    from output_checker import check_model

    frame = survey(n=400)
    fitted = sm.OLS(frame["size"].astype(float), sm.add_constant(frame[["x"]])).fit()
    record = check_model(fitted).to_dict()
    [exported] = to_acro_results([record])["results"].values()
    assert exported["fair"]["independent"] == [] and exported[NAMESPACE] == record


def test_unknown_acro_check_with_flagged_cells_is_not_ignored() -> None:
    raw = {
        "status": "pass",
        "files": [
            {
                "name": "t.csv",
                "sdc": {"cells": {"FutureCheck": [[0, 1]], "PresenceOfLinkedTableCheck": []}},
            }
        ],
    }
    [output] = from_acro_results(
        {"version": "1.0.2", "results": {"o": raw}}, base_dir=Path("/nonexistent")
    )
    assert output.other_checks["FutureCheck"] == ((0, 1),)
    assert "unknown ACRO check FutureCheck flags 1 cell(s)" in output.problems
    assert output.status == Status.REVIEW
