"""The check-table command-line contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checker.cli import main


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    n = 3000
    frame = pd.DataFrame(
        {
            "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.497, 0.003]),
            "sex": rng.choice(["F", "M"], n),
            "year": rng.choice([2020, 2021], n),
            "income": rng.lognormal(9, 1, n),
            "person": rng.integers(0, 1500, n),
        }
    )
    path = tmp_path / "micro.parquet"
    frame.to_parquet(path)
    return path


def test_check_table_writes_the_contract(
    data_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    code = main(
        [
            "check-table",
            str(data_file),
            "--index",
            "region",
            "--columns",
            "sex",
            "year",
            "--values",
            "income",
            "--agg",
            "mean",
            "--entity",
            "person",
            "--margins",
            "--json",
            str(out),
        ]
    )
    record = json.loads(out.read_text())
    assert code == 1  # the tiny 'east' region fails the threshold
    assert record["status"] == "fail"
    assert "threshold" in capsys.readouterr().out
    cells = record["cells"]
    assert len(cells) == 4 * 5  # (3 regions + All) x (2 sexes x 2 years + All)
    for cell in cells:
        assert set(cell) >= {
            "index",
            "columns",
            "value",
            "rules_failed",
            "primary",
            "suppressed",
            "interval",
        }
        assert len(cell["index"]) == 1 and len(cell["columns"]) == 2
        assert set(cell["rules_failed"]) <= {
            "threshold",
            "nk",
            "p_percent",
            "class_disclosure",
            "zero",
            "missing",
            "negative",
        }
        assert cell["suppressed"] is False and cell["interval"] is None
    east = [c for c in cells if c["index"] == ["east"] and "All" not in c["columns"]]
    assert east and all(c["primary"] and "threshold" in c["rules_failed"] for c in east)
    grand = [c for c in cells if c["index"] == ["All"] and c["columns"] == ["All", "All"]]
    frame = pd.read_parquet(data_file)
    assert grand[0]["value"] == pytest.approx(frame["income"].mean())
    assert len(record["output"]["sha256"]) == 64


def test_check_table_one_way_count_passes(data_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    code = main(["check-table", str(data_file), "--index", "sex", "--json", str(out)])
    record = json.loads(out.read_text())
    assert code == 0 and record["status"] == "pass"
    assert [c["columns"] for c in record["cells"]] == [[], []]
    assert sum(c["value"] for c in record["cells"]) == 3000


def test_console_script_runs(data_file: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("output-checker")
    out = tmp_path / "out.json"
    done = subprocess.run(
        [
            str(script),
            "check-table",
            str(data_file),
            "--index",
            "sex",
            "--conventions",
            "acro",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["parameters"]["conventions"] == "acro"
