"""``output-checker workers``: the outbox watcher and the release worker without the web app.
It turns a finalised bundle into a pending request (and releases nothing unreviewed), stops on
SIGTERM with exit 0, and refuses a bad configuration or an old schema in one line, exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from enclave.control.context import Context
from enclave.control.db import make_engine, transaction
from enclave.control.db import upgrade as upgrade_control
from output_checker.cli import main
from output_checker.queue import models as m
from output_checker.queue import service
from output_checker.queue.workflow import Status
from tests.output_checker.queue.factories import QueueWorld, passing_output, write_bundle


def _clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCLAVE_", "JUPYTERHUB_"))}
    return {**env, **values}


def _request_ids(ctx: Context) -> list[str]:
    with transaction(ctx.engine, readonly=True) as session:
        return list(session.scalars(select(m.Request.uuid)))


@pytest.mark.slow
def test_workers_take_a_bundle_release_nothing_unreviewed_and_stop_on_sigterm(
    ctx: Context, qw: QueueWorld, database_url: str
) -> None:
    write_bundle(qw, "researcher", "beds-1", (passing_output(qw),))
    process = subprocess.Popen(
        [sys.executable, "-m", "output_checker.cli", "workers"],
        env=_clean_env(ENCLAVE_DATABASE_URL=database_url, ENCLAVE_DATA_DIR=str(qw.data_dir)),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90  # a loaded 2-core machine imports slowly
        while not _request_ids(ctx):  # the watcher's first scan runs at start
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the watcher never took the bundle"
            time.sleep(0.2)
        (request_id,) = _request_ids(ctx)
        detail = service.get_request(ctx, qw.author, request_id)
        assert detail.summary.status is Status.PENDING  # waits for two reviews: not released
        assert not (qw.data_dir / "projects" / qw.project / "released").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "release worker running" in err and "stopping" in err and "Traceback" not in err


def test_workers_refuse_an_unreadable_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["workers", "--config", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read settings file" in err


def test_workers_refuse_a_database_without_the_queue_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("ENCLAVE_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'enclave.sqlite3'}"
    monkeypatch.setenv("ENCLAVE_DATABASE_URL", url)
    monkeypatch.setenv("ENCLAVE_DATA_DIR", str(tmp_path / "data"))
    assert main(["workers"]) == 2
    assert "enclave admin init" in capsys.readouterr().err
    engine = make_engine(url)
    upgrade_control(engine)  # the control plane's tables, but not the queue's
    engine.dispose()
    assert main(["workers"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "queue schema" in err and "[schema]" in err
