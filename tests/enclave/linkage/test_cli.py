"""``enclave synth`` and ``enclave link ...`` end to end through the command line: output
files, one line per input problem with file and line, exit code 2 and nothing written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from enclave.cli import main
from enclave.linkage import evaluate
from enclave.linkage.keys import MASTER_KEY_ENV, MASTER_KEY_FILE_ENV
from tests.enclave.linkage.helpers import febrl_subset


def write_pair(folder: Path) -> tuple[Path, Path]:
    """FEBRL4 subsets; FEBRL's own impossible dates of birth in B are made missing, as a
    custodian would have to before sending."""
    a, b = febrl_subset(0, 300, 100)
    valid = pd.to_datetime(b["date_of_birth"], format="%Y%m%d", errors="coerce").notna()
    b = b.assign(date_of_birth=b["date_of_birth"].where(valid))
    folder.mkdir(parents=True, exist_ok=True)
    a.to_csv(folder / "A.csv", index=False)
    b.to_csv(folder / "B.csv", index=False)
    return folder / "A.csv", folder / "B.csv"


def bad_date(text: str) -> str:
    """The first record's date of birth made impossible (31 February)."""
    lines = text.split("\n")
    cells = lines[1].split(",")
    cells[9] = "19150231"  # rec_id is column 0, date_of_birth column 9
    lines[1] = ",".join(cells)
    return "\n".join(lines)


def test_link_files_writes_every_record_with_its_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = write_pair(tmp_path / "in")
    out, report, model = tmp_path / "links.csv", tmp_path / "report.html", tmp_path / "m.json"
    code = main(
        [
            "link",
            "files",
            "--unregistered-input",
            str(a),
            str(b),
            "--id-column",
            "rec_id",
            "--out",
            str(out),
            "--report",
            str(report),
            "--save-model",
            str(model),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    links = pd.read_csv(out, dtype=str)
    assert list(links.columns) == ["source", "record_id", "cluster_id"]
    assert len(links) == 600 and set(links["source"]) == {"A", "B"}
    clusters = links.rename(columns={"record_id": "record_key"})
    truth = clusters[["source", "record_key"]].assign(
        entity=clusters["record_key"].str.extract(r"rec-(\d+)-")[0]
    )
    scores = evaluate.score_clusters(clusters, truth)
    assert scores.f1 >= 0.99
    assert "<svg" in report.read_text()
    # the saved model links again without training, to the same clusters
    again = tmp_path / "again.csv"
    assert (
        main(
            [
                "link",
                "files",
                "--unregistered-input",
                str(a),
                str(b),
                "--id-column",
                "rec_id",
                "--out",
                str(again),
                "--model",
                str(model),
                "--quiet",
            ]
        )
        == 0
    )
    pd.testing.assert_frame_equal(pd.read_csv(again, dtype=str), links)


def test_column_overrides_name_unusual_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = write_pair(tmp_path / "in")
    for path in (a, b):
        frame = pd.read_csv(path, dtype=str).rename(
            columns={"surname": "family", "date_of_birth": "born"}
        )
        frame.to_csv(path, index=False)
    out = tmp_path / "links.csv"
    code = main(
        [
            "link",
            "files",
            "--unregistered-input",
            str(a),
            str(b),
            "--id-column",
            "rec_id",
            "--out",
            str(out),
            "--column",
            "surname=family",
            "--column",
            "date_of_birth=born",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert pd.read_csv(out)["cluster_id"].nunique() < 600


@pytest.mark.parametrize(
    "damage,expected",
    [
        (
            lambda text: text.replace("rec-5-org", "rec-6-org"),
            "rec_id: duplicate record id 'rec-6-org'",
        ),
        (lambda text: text + "rec-9999-org,x\n", "expected 11 fields, found 2"),
        (
            bad_date,
            "A.csv:2: date_of_birth: '19150231' is not a valid date (%Y%m%d)",
        ),
        (
            lambda text: text.split("\n")[0] + "\n",
            "A.csv:2: the file has a header but no data rows",
        ),
        (lambda text: "", "A.csv:1: the file is empty"),
    ],
)
def test_bad_input_exits_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: object, expected: str
) -> None:
    a, b = write_pair(tmp_path / "in")
    a.write_text(damage(a.read_text()))  # type: ignore[operator]
    out = tmp_path / "links.csv"
    code = main(
        [
            "link",
            "files",
            "--unregistered-input",
            str(a),
            str(b),
            "--id-column",
            "rec_id",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err, err
    assert "nothing was linked or registered" in err
    assert not out.exists()


def test_invalid_dates_can_be_read_as_missing_but_never_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = write_pair(tmp_path / "in")
    a.write_text(bad_date(a.read_text()))
    out = tmp_path / "links.csv"
    args = [
        "link",
        "files",
        "--unregistered-input",
        str(a),
        str(b),
        "--id-column",
        "rec_id",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main([*args, "--invalid-dates", "missing"]) == 0
    err = capsys.readouterr().err
    assert "'19150231' is not a valid date (%Y%m%d) (read as missing)" in err
    assert len(pd.read_csv(out)) == 600


def test_wrong_encoding_is_reported_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = write_pair(tmp_path / "in")
    lines = a.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b",", b",M\xfcller ", 1)
    a.write_bytes(b"\n".join(lines))
    out = tmp_path / "links.csv"
    assert (
        main(
            [
                "link",
                "files",
                "--unregistered-input",
                str(a),
                str(b),
                "--id-column",
                "rec_id",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 2
    )
    assert "A.csv:4: not valid utf-8: byte 0xfc" in capsys.readouterr().err
    assert (
        main(
            [
                "link",
                "files",
                "--unregistered-input",
                str(a),
                str(b),
                "--id-column",
                "nope",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 2
    )


def test_synth_then_ingest_run_and_extract_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ENCLAVE_DATABASE_URL", raising=False)
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    monkeypatch.delenv(MASTER_KEY_FILE_ENV, raising=False)
    synth = tmp_path / "synth"
    assert (
        main(["synth", "--population", "800", "--seed", "2", "--out", str(synth), "--quiet"]) == 0
    )
    assert (synth / "truth" / "links.csv").exists() and (
        synth / "deliveries" / "health" / "delivery.json"
    ).exists()
    assert main(["synth", "--population", "10", "--out", str(synth), "--quiet"]) == 2  # not empty
    assert main(["admin", "init"]) == 0
    assert (
        main(
            [
                "admin",
                "bootstrap",
                "--email",
                "ada@example.org",
                "--name",
                "Ada",
                "--organisation",
                "E",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "admin",
                "create-person",
                "--as",
                "ada@example.org",
                "--email",
                "cas@example.org",
                "--name",
                "Cas",
                "--organisation",
                "H",
                "--role",
                "data_custodian",
            ]
        )
        == 0
    )
    common = [
        "--as",
        "ada@example.org",
        "--custodian",
        "cas@example.org",
        "--purpose",
        "social_research",
        "--quiet",
        "--unregistered-input",
    ]
    for source in ("health", "education"):
        assert main(["link", "ingest", str(synth / "deliveries" / source), *common]) == 0
    bad = synth / "deliveries" / "justice"
    (bad / "custody.csv").write_text("record_key,reception_date,release_date\nnope,2020-02-30,\n")
    capsys.readouterr()
    assert main(["link", "ingest", str(bad), *common]) == 2
    err = capsys.readouterr().err
    assert "justice/custody.csv:2: reception_date: '2020-02-30': not a valid date" in err
    assert "justice/custody.csv:2: record_key: record key not in the identifier file" in err
    assert "quarantined rows and error report in" in err
    assert main(["admin", "list-datasets", "--as", "ada@example.org"]) == 0
    assert "justice" not in capsys.readouterr().out
    assert main(["link", "run", "--truth", str(synth / "truth" / "links.csv"), "--quiet"]) == 0
    assert "against the truth: precision" in capsys.readouterr().out
    assert main(["link", "extract", "--as", "ada@example.org", "--project", "none"]) == 2
    assert "no linkage master key" in capsys.readouterr().err
