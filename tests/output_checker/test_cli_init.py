"""``output-checker init``: creates or upgrades the review queue's tables once the control
plane's exist (``enclave admin init``), after which the queue app starts; a second run changes
nothing; every problem is one line on stderr and exit code 2."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from enclave.cli import main as enclave_main
from enclave.control.db import make_engine
from enclave.control.web.state import EXTENSION, WebState
from enclave.settings import Settings
from output_checker.cli import main
from output_checker.queue import db
from output_checker.queue.models import QUEUE_TABLES
from output_checker.queue.web import create_app
from tests.enclave.control.dbfixtures import BACKENDS, temporary_database
from tests.enclave.control.web.test_serve import free_port

SECRET = "k" * 40


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temporary_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def env(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    for name in list(os.environ):
        if name.startswith(("ENCLAVE_", "JUPYTERHUB_")):
            monkeypatch.delenv(name)
    values = {"ENCLAVE_DATA_DIR": str(tmp_path / "data"), "ENCLAVE_DATABASE_URL": database_url}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    yield values


def _schema(url: str) -> tuple[str | None, set[str]]:
    """The queue's revision and the queue tables present."""
    engine = make_engine(url)
    try:
        names = set(inspect(engine).get_table_names())
        return db.current_revision(engine), names & QUEUE_TABLES
    finally:
        engine.dispose()


def test_init_needs_the_control_plane_first(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run `enclave admin init`" in err and "[schema]" in err
    assert _schema(env["ENCLAVE_DATABASE_URL"]) == (None, set())


def test_init_makes_the_queue_serve_ready_and_a_second_run_changes_nothing(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = env["ENCLAVE_DATABASE_URL"]
    settings = Settings(data_dir=tmp_path / "data", database_url=url, secret_key=SECRET)
    assert enclave_main(["admin", "init"]) == 0
    assert _schema(url) == (None, set())
    capsys.readouterr()

    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert out == f"queue schema ready at revision {db.head_revision()} (was empty)\n"
    assert _schema(url) == (db.head_revision(), set(QUEUE_TABLES))
    state: WebState = create_app(settings).extensions[EXTENSION]  # serve-ready: both current
    state.context.close()

    assert main(["init"]) == 0
    assert capsys.readouterr().out == f"queue schema already at revision {db.head_revision()}\n"
    assert _schema(url) == (db.head_revision(), set(QUEUE_TABLES))


def test_init_reads_the_config_file(
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    elsewhere = tmp_path / "elsewhere.sqlite3"
    config = tmp_path / "enclave.toml"
    config.write_text(f'database_url = "sqlite:///{elsewhere}"\n')
    monkeypatch.delenv("ENCLAVE_DATABASE_URL")  # the file decides
    assert enclave_main(["admin", "init", "--config", str(config)]) == 0
    assert main(["init", "--config", str(config)]) == 0
    assert "ready at revision" in capsys.readouterr().out
    assert _schema(f"sqlite:///{elsewhere}")[0] == db.head_revision()


def test_init_reports_an_unreachable_database_in_one_line(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "ENCLAVE_DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    )
    assert main(["init"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open the database" in err
    assert "Traceback" not in err


def test_init_reports_a_bad_config_in_one_line(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("no_such_setting = 1\n")
    assert main(["init", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such_setting" in err
