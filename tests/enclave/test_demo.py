"""`enclave demo`: the checker demonstration works end to end and writes valid manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.cli import main
from output_checker.manifest import read_json, validate


def test_demo_checks_outputs_and_writes_valid_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--rows", "20000", "--out", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    manifests = sorted(tmp_path.glob("*.json"))
    assert len(manifests) == 4
    for path in manifests:
        record = read_json(path)
        assert isinstance(record, dict)
        validate(record)
        assert record["status"] in {"pass", "review", "fail"}
    assert "fail" in shown  # the small cohort always has unsafe cells to show
    assert "*" in shown
