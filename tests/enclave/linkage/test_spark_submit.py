"""The documented spark-submit example (deploy/spark/link_job.py) through the virtualenv's real
``spark-submit --master local[2]``: deliveries from ``enclave synth`` are ingested and linked
on DuckDB, then the job scores them again on Spark with the DuckDB model and must give the same
persons (the same person index) and the same quality against the truth."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from enclave.cli import main
from enclave.synth.ministries import MINISTRIES
from tests.enclave.linkage.test_spark import _ensure_java

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[3]
JOB = ROOT / "deploy" / "spark" / "link_job.py"
BIN = Path(sys.executable).parent
ADMIN, CUSTODIAN = "admin@example.org", "cas@example.org"


def enclave(*argv: str) -> None:
    assert main(list(argv)) == 0


def spark_submit(
    tmp_path: Path, config: Path, *job_args: str, jars: bool = True
) -> subprocess.CompletedProcess[str]:
    jar = subprocess.run(
        [sys.executable, str(JOB), "--print-jar"], capture_output=True, text=True, check=True
    ).stdout.strip()
    command = [
        str(BIN / "spark-submit"),
        "--master",
        "local[2]",
        "--conf",
        "spark.ui.enabled=false",
    ]
    if jars:
        command += ["--jars", jar]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "ENCLAVE_CONFIG": str(config)}
    return subprocess.run(
        [*command, str(JOB), *job_args],
        cwd=tmp_path,  # Spark's warehouse directory lands in the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def test_spark_submit_job_links_like_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _ensure_java()
    data_dir = tmp_path / "data"
    config = tmp_path / "enclave.toml"
    config.write_text(f'data_dir = "{data_dir}"\n', encoding="utf-8")
    monkeypatch.setenv("ENCLAVE_CONFIG", str(config))
    enclave("admin", "init")
    enclave("admin", "bootstrap", "--email", ADMIN, "--name", "Ada", "--organisation", "E")
    enclave(
        "admin", "create-person", "--as", ADMIN, "--email", CUSTODIAN, "--name", "Cas",
        "--organisation", "Health", "--role", "data_custodian",
    )  # fmt: skip
    synth = tmp_path / "synth"
    enclave("synth", "--population", "400", "--seed", "3", "--out", str(synth), "--quiet")
    for source in MINISTRIES:
        enclave(
            "link", "ingest", str(synth / "deliveries" / source), "--as", ADMIN,
            "--custodian", CUSTODIAN, "--purpose", "social_research", "--quiet",
            "--unregistered-input",
        )  # fmt: skip
    truth = synth / "truth" / "links.csv"
    capsys.readouterr()
    enclave("link", "run", "--truth", str(truth), "--quiet")
    duck_out = capsys.readouterr().out
    linkage = data_dir / "linkage"
    model = tmp_path / "duckdb-model.json"
    model.write_bytes((linkage / "model.json").read_bytes())
    duck_index = pd.read_parquet(linkage / "person_index.parquet")

    done = spark_submit(tmp_path, config, "--model", str(model), "--truth", str(truth), "--quiet")

    assert done.returncode == 0, done.stderr[-3000:]
    f1 = re.search(r"F1 (\d\.\d+)", done.stdout)
    assert f1 is not None and float(f1.group(1)) >= 0.95
    assert f1.group(0) in duck_out  # the same quality as on DuckDB
    spark_index = pd.read_parquet(linkage / "person_index.parquet")
    key = ["source", "record_key"]
    assert len(spark_index) == len(duck_index) > 500
    merged = duck_index.merge(spark_index, on=key, suffixes=("_duck", "_spark"))
    assert len(merged) == len(duck_index)
    assert (merged["person_id_duck"] == merged["person_id_spark"]).all()
    assert not list((linkage / "work").glob("spark-checkpoints-*"))  # spilled ids removed
    runs = (linkage / "runs.jsonl").read_text().splitlines()
    duck_run, spark_run = (json.loads(line) for line in runs)
    assert (duck_run["backend"], spark_run["backend"]) == ("duckdb", "spark")
    assert spark_run["persons"] == duck_run["persons"]


def test_spark_submit_job_refuses_without_splinks_jar(tmp_path: Path) -> None:
    _ensure_java()
    config = tmp_path / "enclave.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")

    done = spark_submit(tmp_path, config, jars=False)

    assert done.returncode == 2
    # spark-submit's Python runner merges the job's stderr into its own stdout
    assert "link_job: error: Splink's jar is missing: pass --jars " in done.stdout
    assert not (tmp_path / "data" / "linkage").exists()
